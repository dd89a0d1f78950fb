"""Users, their lines and agents, as ctid knows them (a read model loaded from the database).

A plain object: `db.DirectoryLoader` fills it off the reactor thread; the CTI side reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    cti_login: str | None = None
    cti_password_hash: str | None = field(default=None, repr=False)
    enabled: bool = True
    lines: tuple[str, ...] = ()
    """Line (PJSIP endpoint) names, the main line first."""
    exten: str | None = None
    uuid: str = ""
    context: str | None = None
    """The dialplan context of the main line: where dial and transfers go."""

    @property
    def main_line(self) -> str | None:
        return self.lines[0] if self.lines else None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> User:
        return cls(
            id=row["id"],
            name=row["name"],
            cti_login=row.get("cti_login"),
            cti_password_hash=row.get("cti_password_hash"),
            enabled=bool(row.get("enabled", True)),
            lines=tuple(row.get("lines") or ()),
            exten=row.get("exten"),
            uuid=row.get("uuid") or "",
            context=row.get("context"),
        )


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    number: str
    user_id: int | None
    queues: tuple[str, ...] = ()


class Directory:
    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.by_login: dict[str, User] = {}
        self.line_users: dict[str, set[int]] = {}
        self.agents_by_user: dict[int, Agent] = {}
        self.loaded = False

    def replace_all(self, users: Iterable[User], agents: Iterable[Agent] = ()) -> set[int]:
        """Replace everything; returns the ids of users that changed, appeared or disappeared."""
        fresh = {u.id: u for u in users}
        changed = {uid for uid in set(fresh) | set(self.users) if fresh.get(uid) != self.users.get(uid)}
        self.users = {}
        self.by_login = {}
        self.line_users = {}
        for user in fresh.values():
            self._add(user)
        self.agents_by_user = {a.user_id: a for a in agents if a.user_id is not None}
        self.loaded = True
        return changed

    def update_users(self, ids: Iterable[int], users: Iterable[User]) -> set[int]:
        """Replace the users of ``ids`` with ``users`` (those of ``ids`` missing from it were deleted)."""
        fresh = {u.id: u for u in users}
        changed = set()
        for uid in set(ids) | set(fresh):
            old = self.users.get(uid)
            new = fresh.get(uid)
            if old == new:
                continue
            changed.add(uid)
            if old is not None:
                self._remove(old)
            if new is not None:
                self._add(new)
        return changed

    def replace_agents(self, agents: Iterable[Agent]) -> None:
        self.agents_by_user = {a.user_id: a for a in agents if a.user_id is not None}

    def users_of_line(self, line: str) -> set[int]:
        return self.line_users.get(line, set())

    def _add(self, user: User) -> None:
        self.users[user.id] = user
        if user.cti_login:
            self.by_login[user.cti_login] = user
        for line in user.lines:
            self.line_users.setdefault(line, set()).add(user.id)

    def _remove(self, user: User) -> None:
        self.users.pop(user.id, None)
        if user.cti_login and self.by_login.get(user.cti_login) is user:
            del self.by_login[user.cti_login]
        for line in user.lines:
            ids = self.line_users.get(line)
            if ids is not None:
                ids.discard(user.id)
                if not ids:
                    del self.line_users[line]


# Phone status of a user from the Asterisk device states of their lines: the most "busy" line wins.
_PRECEDENCE = {
    "RINGING": (6, "ringing"),
    "RINGINUSE": (6, "ringing"),
    "ONHOLD": (5, "on_hold"),
    "INUSE": (4, "in_use"),
    "BUSY": (4, "in_use"),
    "NOT_INUSE": (3, "available"),
    "UNAVAILABLE": (2, "unavailable"),
    "INVALID": (1, "unknown"),
    "UNKNOWN": (1, "unknown"),
}
PHONE_STATUSES = ("ringing", "on_hold", "in_use", "available", "unavailable", "unknown")


def phone_status(device_states: Iterable[str]) -> str:
    best = (0, "unknown")
    for state in device_states:
        rank = _PRECEDENCE.get(state, (1, "unknown"))
        if rank[0] > best[0]:
            best = rank
    return best[1]
