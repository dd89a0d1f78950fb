"""Limits on login attempts: failures per client address, and a backoff per account.

`LoginRateLimiter`: at most ``max_failures`` failed logins from one address in any ``window`` seconds.

`AccountBackoff` (guessing one account from many addresses): after ``free_attempts`` attempts for one login
that did not succeed, each further attempt for it waits 1 s, then 2, 4, ... up to ``max_delay`` (60 s) after
the previous one. A success resets it, so does a pause of ``quiet`` seconds beyond the wait. It is a wait,
never a lock: an attacker gets at most one guess per ``max_delay`` per account, and the real user at most
that wait. The addresses the account last logged in from are not held back at all, so an attack from
elsewhere never keeps the user out of the places he uses (they keep their per-address limit). Every
login string is counted alike, known or not: the answer tells nothing about which accounts exist.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class LoginRateLimiter:
    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        *,
        max_addresses: int = 10000,
        now: Callable[[], float],
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_addresses = max_addresses
        self._now = now
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """0 when ``address`` may try now, otherwise the seconds to wait."""
        times = self._failures.get(address)
        if not times:
            return 0.0
        now = self._now()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.max_failures:
            return 0.0
        return max(0.001, times[0] + self.window - now)

    def failed(self, address: str) -> None:
        times = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
        times.append(self._now())
        self._failures[address] = times  # most recent last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class AccountBackoff:
    def __init__(
        self,
        free_attempts: int = 5,
        max_delay: float = 60.0,
        quiet: float = 60.0,
        *,
        max_accounts: int = 10000,
        trusted_per_account: int = 4,
        now: Callable[[], float],
    ) -> None:
        self.free_attempts = free_attempts
        self.max_delay = max_delay
        self.quiet = quiet
        self.max_accounts = max_accounts
        self.trusted_per_account = trusted_per_account
        self._now = now
        self._attempts: OrderedDict[str, tuple[int, float]] = OrderedDict()  # login -> (count, last)
        self._trusted: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # login -> addresses

    def delay(self, count: int) -> float:
        """The wait after ``count`` attempts that did not succeed."""
        if count < self.free_attempts:
            return 0.0
        return min(self.max_delay, 2.0 ** min(count - self.free_attempts, 32))

    def retry_after(self, login: str, address: str) -> float:
        """0 when ``address`` may try ``login`` now, otherwise the seconds to wait."""
        entry = self._current(login)
        if entry is None or address in self._trusted.get(login, ()):
            return 0.0
        count, last = entry
        wait = last + self.delay(count) - self._now()
        return wait if wait > 0 else 0.0

    def attempted(self, login: str) -> None:
        """An attempt starts: it counts as failed until it succeeds (so parallel guesses count too)."""
        count, _ = self._current(login) or (0, 0.0)
        self._attempts.pop(login, None)
        self._attempts[login] = (count + 1, self._now())  # most recent last
        while len(self._attempts) > self.max_accounts:
            self._attempts.popitem(last=False)

    def succeeded(self, login: str, address: str) -> None:
        self._attempts.pop(login, None)
        trusted = (*(a for a in self._trusted.pop(login, ()) if a != address), address)
        self._trusted[login] = trusted[-self.trusted_per_account :]  # most recent last
        while len(self._trusted) > self.max_accounts:
            self._trusted.popitem(last=False)

    def _current(self, login: str) -> tuple[int, float] | None:
        entry = self._attempts.get(login)
        if entry is not None and self._now() - entry[1] >= self.delay(entry[0]) + self.quiet:
            del self._attempts[login]  # quiet long enough: forgotten
            return None
        return entry
