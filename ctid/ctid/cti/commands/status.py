"""``ping`` and ``subscribe``: the session's own state, no AMI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctid.cti.commands.base import Request
from ctid.directory import User


def ping(req: Request, env: None) -> None:
    req.ok()


@dataclass(frozen=True)
class SubscribeEnv:
    set_topics: Callable[[Any, frozenset[str]], None]
    """Subscribe the request's client (the session itself) to exactly these topics."""
    presence_snapshot: Callable[[], list[dict[str, Any]]]
    calls_snapshot: Callable[[User], list[dict[str, Any]]]
    members_snapshot: Callable[[], list[dict[str, Any]]]


def subscribe(req: Request, env: SubscribeEnv) -> None:
    topics = frozenset(req.msg["topics"])
    env.set_topics(req.client, topics)
    snapshot: dict[str, Any] = {"topics": sorted(topics)}
    if "presence" in topics:
        snapshot["presence"] = env.presence_snapshot()
    if "calls" in topics:
        snapshot["calls"] = env.calls_snapshot(req.user)
    if "queues" in topics:
        snapshot["members"] = env.members_snapshot()
    req.ok(**snapshot)
