"""Feeds AMI events to the `CallTracker`, and rebuilds it from Asterisk's lists after each login.

Asterisk's manager accepts logins while its modules still load, and the action of a module not loaded yet
fails ("Invalid/unknown command"). So after each login ctid waits for ``FullyBooted`` (class ``system``;
sent right after the login when Asterisk is up, at the end of its boot otherwise), at most
``boot_timeout``, applying events as they come. Then a round asks ``CoreShowChannels``, ``DeviceStateList``
and ``QueueStatus`` at once; live events that arrive meanwhile are held (at most ``max_held``) and replayed
on top of the lists that came back. A list that failed (error, timeout) is logged, its part of the state
is kept as it was, and it is asked again in a later round (``retry_initial`` doubling to ``retry_max``)
until it succeeds or the connection ends. Nothing here waits: timers and Deferreds only.

``Shutdown`` (Asterisk stopping): no call survives it, so calls end at once and devices become UNKNOWN;
`ready` is False (CTI commands are refused) until the next FullyBooted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from ctid.ami.message import Message
from ctid.state.tracker import CallTracker

log = Logger()
LISTS = ("CoreShowChannels", "DeviceStateList", "QueueStatus")


class AMIStateSync:
    """`phase`: ``disconnected``, ``booting`` (logged in, before FullyBooted), ``up``, ``shutdown``."""

    def __init__(
        self,
        tracker: CallTracker,
        *,
        clock: Any = None,
        list_timeout: float = 10.0,
        max_held: int = 200_000,
        boot_timeout: float = 30.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.tracker = tracker
        self.clock = clock
        self.list_timeout = list_timeout
        self.max_held = max_held
        self.boot_timeout = boot_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.phase = "disconnected"
        self.booted = False
        """FullyBooted was seen on this connection."""
        self.in_sync = False
        """Every list came back since the login, with no event lost meanwhile."""
        self.resyncs = 0
        self.list_failures = 0
        self._client: Any = None
        self._generation = 0
        self._needed: set[str] = set()
        self._round = False
        self._again = False
        self._held: list[Message] | None = None
        self._overflow = False
        self._boot_timer: IDelayedCall | None = None
        self._retry_timer: IDelayedCall | None = None
        self._retry_delay = retry_initial

    @property
    def ready(self) -> bool:
        """Asterisk is booted and not stopping: commands may be sent."""
        return self.phase == "up"

    # -- from the AMI client

    def on_event(self, msg: Message) -> None:
        name = msg.get("Event")
        if name == "FullyBooted":
            self._fully_booted(msg)
        elif name == "Shutdown":
            self._shutdown(msg)
        elif self._held is None:
            self.tracker.apply(msg)
        elif len(self._held) < self.max_held:
            self._held.append(msg)
        else:
            self._overflow = True

    def connected(self, client: Any) -> None:
        self._stop_timers()
        self._release(None)
        self._generation += 1
        self._client = client
        self.phase = "booting"
        self.booted = False
        self.in_sync = False
        self._needed = set(LISTS)
        self._round = self._again = False
        self._retry_delay = self.retry_initial
        self._boot_timer = self.clock.callLater(self.boot_timeout, self._boot_timed_out)

    def disconnected(self, client: Any, reason: Any) -> None:
        # The state is kept (Asterisk may well still have those calls); the next login replaces it.
        self._stop_timers()
        self._release(None)
        self._client = None
        self.phase = "disconnected"
        self.in_sync = False
        self._round = False

    # -- Asterisk's boot and shutdown

    def _fully_booted(self, msg: Message) -> None:
        if self._client is None:
            return
        if self.booted:  # a second one (login raced the end of the boot): the lists are already asked
            return
        self.booted = True
        self._cancel(self._boot_timer)
        self._boot_timer = None
        self.phase = "up"
        log.info("AMI: Asterisk is fully booted (up {uptime} s); resynchronising", uptime=msg.get("Uptime"))
        self._needed = set(LISTS)
        self._start_round()

    def _boot_timed_out(self) -> None:
        self._boot_timer = None
        log.warn(
            "AMI: no FullyBooted within {t:g} s of the login (does ctid's AMI user read the 'system' class?);"
            " resynchronising anyway",
            t=self.boot_timeout,
        )
        self.phase = "up"
        self._start_round()

    def _shutdown(self, msg: Message) -> None:
        log.warn(
            "AMI: Asterisk is shutting down ({how}, restart: {restart}); its calls end here,"
            " commands are refused until it is back",
            how=msg.get("Shutdown", "?"),
            restart=msg.get("Restart", "?"),
        )
        self._stop_timers()
        self._release(None)
        self.phase = "shutdown"
        self.in_sync = False
        self.tracker.forget_all()

    # -- rounds of list actions

    def _start_round(self) -> None:
        if self._round:
            self._again = True  # FullyBooted during a round: ask everything again once it is in
            return
        self._cancel(self._retry_timer)
        self._retry_timer = None
        parts = [name for name in LISTS if name in self._needed]
        if self._client is None or self.phase != "up" or not parts:
            return
        self._round, self._again = True, False
        if self._held is None:
            self._held, self._overflow = [], False
        started = self.clock.seconds()
        asked = [self._client.send_list_action(name, timeout=self.list_timeout) for name in parts]
        DeferredList(asked, consumeErrors=True).addCallback(
            self._round_done, self._generation, parts, started
        )

    def _round_done(
        self, results: list[tuple[bool, Any]], generation: int, parts: list[str], started: float
    ) -> None:
        if generation != self._generation:
            return
        self._round = False
        if self.phase != "up" or self._client is None or not self._client.ready:
            self._release(None)  # the connection is going, or Asterisk is stopping: the lists are moot
            return
        got: dict[str, list[Message]] = {}
        failed: list[tuple[str, str]] = []
        for name, (ok, value) in zip(parts, results, strict=True):
            if ok:
                got[name] = list(value)
                self._needed.discard(name)
            else:
                failed.append((name, value.getErrorMessage()))
        members = got.get("QueueStatus")
        if members is not None:
            members = [m for m in members if m.get("Event") == "QueueMember"]
        lost = self._release((got.get("CoreShowChannels"), got.get("DeviceStateList"), members))
        if self._again:
            self._needed = set(LISTS)
            self._start_round()
            return
        if failed:
            self.list_failures += len(failed)
            delay, self._retry_delay = self._retry_delay, min(self.retry_max, self._retry_delay * 2)
            for name, error in failed:
                log.warn(
                    "AMI: resync: {name} failed ({error}); that part of the state is kept, asking again"
                    " in {delay:g} s",
                    name=name,
                    error=error,
                    delay=delay,
                )
            self._retry_timer = self.clock.callLater(delay, self._retry)
            return
        self._retry_delay = self.retry_initial
        self.in_sync = not lost
        log.info(
            "AMI: resynchronised in {ms:.0f} ms: {calls} calls, {devices} devices, {members} queue members",
            ms=(self.clock.seconds() - started) * 1000,
            calls=len(self.tracker.calls),
            devices=len(self.tracker.devices),
            members=len(self.tracker.members),
        )

    def _retry(self) -> None:
        self._retry_timer = None
        self._start_round()

    def _release(self, snapshot: tuple[Any, Any, Any] | None) -> bool:
        """Apply ``snapshot`` (parts may be None), then the held events; True if events were lost."""
        held, self._held = self._held, None
        if held is None:
            return False
        if snapshot is not None and any(part is not None for part in snapshot):
            self.tracker.resync(*snapshot)
            self.resyncs += 1
        self.tracker.apply_many(held)
        if self._overflow:
            log.warn(
                "AMI: more than {n} events during the resync; state may be off until the next one",
                n=self.max_held,
            )
        return self._overflow

    # -- timers

    def _stop_timers(self) -> None:
        for timer in (self._boot_timer, self._retry_timer):
            self._cancel(timer)
        self._boot_timer = self._retry_timer = None

    @staticmethod
    def _cancel(timer: IDelayedCall | None) -> None:
        if timer is not None and timer.active():
            timer.cancel()
