"""Feeds AMI events to the `CallTracker`, and resynchronises it from Asterisk's lists after each login.

After each (re)connection: ``CoreShowChannels``, ``DeviceStateList`` and ``QueueStatus`` are asked at once.
Live events that arrive meanwhile are held (at most ``max_held``) and replayed on top of the snapshot once
all three lists are in, so nothing that happened during the resync is lost. A list that fails (timeout,
error) leaves that part of the state as it was, and the failure is logged; the next reconnection retries.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import DeferredList
from twisted.logger import Logger

from ctid.ami.message import Message
from ctid.state.tracker import CallTracker

log = Logger()


class AMIStateSync:
    def __init__(self, tracker: CallTracker, *, list_timeout: float = 10.0, max_held: int = 200_000) -> None:
        self.tracker = tracker
        self.list_timeout = list_timeout
        self.max_held = max_held
        self._held: list[Message] | None = None
        self._overflow = False
        self.resyncs = 0
        self.in_sync = False

    def on_event(self, msg: Message) -> None:
        if self._held is None:
            self.tracker.apply(msg)
        elif len(self._held) < self.max_held:
            self._held.append(msg)
        else:
            self._overflow = True

    def disconnected(self, client: Any, reason: Any) -> None:
        # The state is kept (Asterisk may well still have those calls); the next login replaces it.
        self.in_sync = False
        if self._held is not None:
            self._release(None)

    def connected(self, client: Any) -> Any:
        self._held = []
        self._overflow = False
        self.in_sync = False
        t = self.list_timeout
        lists = [
            client.send_list_action("CoreShowChannels", timeout=t),
            client.send_list_action("DeviceStateList", timeout=t),
            client.send_list_action("QueueStatus", timeout=t),
        ]
        return DeferredList(lists, consumeErrors=True).addCallback(self._apply)

    def _apply(self, results: list[tuple[bool, Any]]) -> None:
        names = ("CoreShowChannels", "DeviceStateList", "QueueStatus")
        parts: list[Any] = []
        for name, (ok, value) in zip(names, results, strict=True):
            if ok:
                parts.append(list(value))
            else:
                log.warn(
                    "AMI: resync: {name} failed ({err}); that part of the state is kept",
                    name=name,
                    err=value.getErrorMessage(),
                )
                parts.append(None)
        channels, devices, members = parts
        if members is not None:
            members = [m for m in members if m.get("Event") == "QueueMember"]
        self._release((channels, devices, members))

    def _release(self, snapshot: tuple[Any, Any, Any] | None) -> None:
        held, self._held = self._held or [], None
        if snapshot is not None:
            self.tracker.resync(*snapshot)
            self.resyncs += 1
            self.in_sync = not self._overflow and all(p is not None for p in snapshot)
        for msg in held:
            self.tracker.apply(msg)
        if self._overflow:
            log.warn(
                "AMI: more than {n} events during the resync; state may be off until the next one",
                n=self.max_held,
            )
