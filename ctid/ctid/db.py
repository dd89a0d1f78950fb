"""Database access off the reactor thread, and the directory kept fresh from config events.

`Database.run(fn)` runs ``fn(connection)`` in ctid's own small thread pool, with a connection from a small
psycopg pool whose sessions have a ``statement_timeout``; it returns a Deferred. Nothing here blocks the
reactor.

`DirectorySync` loads the users once, then refreshes only what the bus says changed: events are collected
for ``debounce`` seconds, then one query reads just those users. At most one query is in flight; events
that arrive meanwhile wait for the next one. Too many pending ids turn into one full reload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from confdb.read import ctid as queries
from ctid.directory import Agent, Directory, User

T = TypeVar("T")
log = Logger()


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 2,
        statement_timeout_ms: int = 5000,
        connect_timeout: float = 5.0,
        reactor: Any = None,
    ) -> None:
        from psycopg_pool import ConnectionPool

        self._reactor = reactor or global_reactor
        self._threads = ThreadPool(minthreads=0, maxthreads=pool_size, name="ctid-db")
        self._pool = ConnectionPool(
            dsn,
            min_size=0,
            max_size=pool_size,
            open=False,
            timeout=connect_timeout,
            kwargs={
                "options": (
                    f"-c statement_timeout={int(statement_timeout_ms)} -c default_transaction_read_only=on"
                ),
                "connect_timeout": max(1, int(connect_timeout)),
                "autocommit": True,
            },
        )
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._threads.start()
            self._pool.open(wait=False)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._threads.stop()
            self._pool.close(timeout=2)

    def run(self, fn: Callable[[Any], T]) -> Deferred:
        def work() -> T:
            with self._pool.connection() as conn:
                return fn(conn)

        return deferToThreadPool(self._reactor, self._threads, work)


def _load_all(conn: Any) -> tuple[list[User], list[Agent]]:
    users = [User.from_row(r) for r in queries.users(conn)]
    agents = [Agent(a["id"], a["number"], a["user_id"], tuple(a["queues"])) for a in queries.agents(conn)]
    return users, agents


CONFIG_BINDINGS = ("user.*", "line.*", "user_line.*", "agent.*", "queue.*", "queue_member.*")
"""The config events `DirectorySync.config_event` acts on (routing keys on the bus)."""


class DirectorySync:
    def __init__(
        self,
        directory: Directory,
        run: Callable[[Callable[[Any], Any]], Deferred],
        on_change: Callable[[set[int]], object] = lambda ids: None,
        *,
        debounce: float = 0.05,
        max_pending: int = 1000,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        clock: Any = None,
    ) -> None:
        self.directory = directory
        self._run = run
        self.on_change = on_change
        self.debounce = debounce
        self.max_pending = max_pending
        self._clock = clock or global_reactor
        self._users: set[int] = set()
        self._lines: set[int] = set()
        self._agents = False
        self._full = True
        self._timer: IDelayedCall | None = None
        self._busy = False
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry = retry_initial
        self.loads = 0
        self.failures = 0

    # -- input

    def request_full(self) -> None:
        """Reload everything (at start, and after the bus reconnects: events may have been missed)."""
        self._full = True
        self._schedule(0)

    def config_event(self, routing_key: str, payload: Mapping[str, Any]) -> None:
        obj, _, _action = routing_key.partition(".")
        data = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(data, Mapping):
            data = {}
        if obj == "user" and isinstance(data.get("id"), int):
            self._users.add(data["id"])
        elif obj == "user_line" and isinstance(data.get("user_id"), int):
            self._users.add(data["user_id"])
        elif obj == "line":
            if isinstance(data.get("id"), int):
                self._lines.add(data["id"])
            if isinstance(data.get("name"), str):  # a deleted line: its users are known only here
                self._users.update(self.directory.users_of_line(data["name"]))
        elif obj in ("agent", "queue_member", "queue"):
            self._agents = True
        else:
            return
        if len(self._users) + len(self._lines) > self.max_pending:
            self._full = True
        self._schedule(self.debounce)

    # -- loading

    def _schedule(self, delay: float) -> None:
        if self._timer is None and not self._busy:
            self._timer = self._clock.callLater(delay, self._flush)

    @inlineCallbacks
    def _flush(self) -> Any:
        self._timer = None
        if self._busy:
            return
        full, users, lines, agents = self._full, self._users, self._lines, self._agents
        self._full, self._users, self._lines, self._agents = False, set(), set(), False
        if not (full or users or lines or agents):
            return
        self._busy = True
        try:
            if full:
                loaded_users, loaded_agents = yield self._run(_load_all)
                changed = self.directory.replace_all(loaded_users, loaded_agents)
            else:
                changed = set()
                if users or lines:

                    def load(conn: Any) -> tuple[set[int], list[User]]:
                        ids = set(users) | set(queries.users_of_lines(conn, lines) if lines else ())
                        return ids, [User.from_row(r) for r in queries.users(conn, ids)]

                    ids, loaded = yield self._run(load)
                    changed = self.directory.update_users(ids, loaded)
                if agents:
                    loaded_agents = yield self._run(
                        lambda conn: [
                            Agent(a["id"], a["number"], a["user_id"], tuple(a["queues"]))
                            for a in queries.agents(conn)
                        ]
                    )
                    self.directory.replace_agents(loaded_agents)
            self.loads += 1
            self._retry = self._retry_initial
        except Exception as exc:
            self.failures += 1
            # Keep what we had and try again later: the pending work is put back.
            self._full |= full
            self._users |= users
            self._lines |= lines
            self._agents |= agents
            delay, self._retry = self._retry, min(self._retry_max, self._retry * 2)
            log.warn(
                "ctid: reading users from the database failed ({err}); retrying in {delay:.1f} s",
                err=exc,
                delay=delay,
            )
            self._busy = False
            self._timer = self._clock.callLater(delay, self._flush)
            return
        self._busy = False
        if changed:
            try:
                self.on_change(changed)
            except Exception:
                log.failure("ctid: directory change handler failed")
        if self._full or self._users or self._lines or self._agents:
            self._schedule(self.debounce)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
