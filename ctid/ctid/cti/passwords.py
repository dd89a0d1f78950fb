"""CTI password checks off the reactor: a small dedicated thread pool and a bounded waiting line.

scrypt is deliberately slow (tens of milliseconds, 16 MiB). At most ``threads`` checks run at once and at
most ``max_waiting`` wait; beyond that a login fails at once with `PasswordCheckBusy`. An unknown login is
checked against a dummy hash, so its answer takes as long as a wrong password's.
"""

from __future__ import annotations

import threading
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from confdb import passwords


class PasswordCheckBusy(Exception):
    pass


class PasswordChecker:
    def __init__(self, threads: int = 2, max_waiting: int = 64, reactor: Any = None) -> None:
        self._reactor = reactor or global_reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="ctid-passwords")
        self.max_waiting = threads + max_waiting
        self._in_flight = 0
        self._dummy: str | None = None
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._pool.start()

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._pool.stop()

    def _dummy_hash(self) -> str:
        with self._lock:
            if self._dummy is None:
                self._dummy = passwords.hash_password("ctid-dummy-password")
            return self._dummy

    def check(self, password: str, encoded: str | None) -> Deferred:
        """Fires with True or False; fails with `PasswordCheckBusy` when too many checks wait."""
        if self._in_flight >= self.max_waiting:
            return fail(PasswordCheckBusy())
        self.start()
        self._in_flight += 1

        def work() -> bool:
            if encoded is None:
                passwords.verify_password(password, self._dummy_hash())
                return False
            return passwords.verify_password(password, encoded)

        def done(result: Any) -> Any:
            self._in_flight -= 1
            return result

        return deferToThreadPool(self._reactor, self._pool, work).addBoth(done)
