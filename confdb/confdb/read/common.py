"""Row types that more than one read model returns: one definition each, whichever daemon reads them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """A queue or ring group member: a user or an agent, with its penalty (0 for ring groups)."""

    user_id: int | None
    agent_id: int | None
    penalty: int


@dataclass(frozen=True, slots=True)
class Queue:
    """A call queue's settings; ``members`` only where the reader loads them (confgend's snapshot, not
    agid, which needs the options for the ``Queue()`` call)."""

    id: int
    name: str
    display_name: str
    strategy: str
    member_timeout: int
    retry_seconds: int
    wrapup_seconds: int
    max_waiting: int
    max_wait_seconds: int
    music_class: str
    announce_position: bool
    weight: int
    members: tuple[Member, ...] = ()
