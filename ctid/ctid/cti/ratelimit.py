"""Per-address limit of failed logins: at most ``max_failures`` in any ``window`` seconds."""

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
