"""`AMIStateSync` without sockets: a fake AMI client and a fake clock drive the boot wait, the rounds of
list actions, their retries, Shutdown and connection loss (the socket tests are in test_cti_boot.py)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ctid.ami.errors import AMIActionError, AMIConnectionLostError
from ctid.ami.pending import EventList
from ctid.resync import LISTS, AMIStateSync
from ctid.state.tracker import CallTracker

BOOTED = {"Event": "FullyBooted", "Uptime": "5", "Status": "Fully Booted"}


class FakeClient:
    def __init__(self) -> None:
        self.ready = True
        self.asked: list[tuple[str, Deferred]] = []

    def send_list_action(self, name: str, timeout: float | None = None) -> Deferred:
        d: Deferred = Deferred()
        self.asked.append((name, d))
        return d

    def names(self) -> list[str]:
        return [name for name, _ in self.asked]

    def answer(self, name: str, items: list[dict[str, str]] | None = None) -> None:
        d = self._pending(name)
        result = EventList({"Response": "Success", "EventList": "start"})
        result.extend(items or [])
        d.callback(result)

    def refuse(self, name: str) -> None:
        self._pending(name).errback(
            AMIActionError(name, {"Response": "Error", "Message": f"Invalid/unknown command: {name}."})
        )

    def lose(self) -> None:
        self.ready = False
        for _, d in self.asked:
            if not d.called:
                d.errback(AMIConnectionLostError("lost"))

    def _pending(self, name: str) -> Deferred:
        return next(d for n, d in self.asked if n == name and not d.called)


def channel(uid: str, line: str = "1001") -> dict[str, str]:
    return {
        "Event": "Newchannel",
        "Channel": f"PJSIP/{line}-{uid}",
        "Uniqueid": uid,
        "Linkedid": uid,
        "ChannelStateDesc": "Up",
    }


def make(**kwargs: Any) -> tuple[AMIStateSync, FakeClient, Clock]:
    clock = Clock()
    sync = AMIStateSync(CallTracker(), clock=clock, **kwargs)
    client = FakeClient()
    sync.connected(client)
    return sync, client, clock


def answer_all(client: FakeClient) -> None:
    for name in LISTS:
        client.answer(name)


def test_nothing_is_asked_before_fully_booted_and_events_apply_meanwhile() -> None:
    sync, client, clock = make()
    sync.on_event(channel("1.1"))
    assert "1.1" in sync.tracker.channels and not sync.ready
    clock.advance(10)
    assert client.asked == []
    sync.on_event(BOOTED)
    assert sync.ready and client.names() == list(LISTS)
    sync.on_event(BOOTED)  # a second one (the login raced the end of the boot) asks nothing more
    assert len(client.asked) == 3


def test_events_during_a_round_are_replayed_on_top_of_the_lists() -> None:
    sync, client, _ = make()
    sync.on_event(channel("1.1"))
    sync.on_event(BOOTED)
    sync.on_event(channel("2.1"))  # held
    assert "2.1" not in sync.tracker.channels
    client.answer("CoreShowChannels", [{**channel("3.1"), "Event": "CoreShowChannel"}])
    client.answer("DeviceStateList")
    assert "2.1" not in sync.tracker.channels
    client.answer("QueueStatus")
    assert set(sync.tracker.channels) == {"3.1", "2.1"}  # 1.1 is gone: Asterisk no longer lists it
    assert sync.in_sync and sync.resyncs == 1


def test_a_failed_list_is_asked_again_alone_with_a_bounded_backoff() -> None:
    sync, client, clock = make(retry_initial=0.5, retry_max=2.0)
    sync.on_event(BOOTED)
    client.answer("CoreShowChannels")
    client.answer("DeviceStateList")
    delays = []
    for _ in range(5):
        client.refuse("QueueStatus")
        asked = len(client.asked)
        waited = 0.0
        while len(client.asked) == asked:
            clock.advance(0.25)
            waited += 0.25
        delays.append(waited)
        assert client.names()[-1] == "QueueStatus"
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert not sync.in_sync and sync.list_failures == 5
    client.answer("QueueStatus", [{"Event": "QueueMember", "Queue": "q", "Location": "PJSIP/1001"}])
    assert sync.in_sync and ("q", "PJSIP/1001") in sync.tracker.members
    clock.advance(60)
    assert len(client.asked) == 3 + 5


def test_fully_booted_after_the_boot_timeout_asks_everything_again() -> None:
    sync, client, clock = make(boot_timeout=30.0)
    clock.advance(30)
    assert sync.ready and client.names() == list(LISTS)  # resynced without FullyBooted
    sync.on_event(BOOTED)  # during that round
    assert len(client.asked) == 3
    answer_all(client)
    assert client.names() == list(LISTS) * 2
    answer_all(client)
    assert sync.in_sync


def test_shutdown_ends_calls_and_ignores_the_answers_still_due() -> None:
    sync, client, _ = make()
    sync.on_event(BOOTED)
    answer_all(client)
    sync.on_event(channel("1.1"))
    sync.tracker.apply({"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "INUSE"})
    sync.tracker.drain()
    sync.on_event({"Event": "Shutdown", "Shutdown": "Uncleanly", "Restart": "True"})
    changes = sync.tracker.drain()
    assert list(changes.ended) == ["1.1"] and changes.devices == {"PJSIP/1001": "UNKNOWN"}
    assert not sync.ready and sync.tracker.calls == {}


def test_connection_lost_mid_round_applies_held_events_and_stops_retrying() -> None:
    sync, client, clock = make()
    sync.on_event(BOOTED)
    client.refuse("QueueStatus")
    sync.on_event(channel("2.1"))  # held: the other lists are still out
    client.lose()
    sync.disconnected(client, None)
    assert "2.1" in sync.tracker.channels and sync.phase == "disconnected"
    clock.advance(120)
    assert len(client.asked) == 3
    again = FakeClient()
    sync.connected(again)
    sync.on_event(BOOTED)
    assert again.names() == list(LISTS)
