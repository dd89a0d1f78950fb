"""`CallTracker`: AMI events in, call state out. A plain object: no Twisted, no I/O, no clock.

Channels are keyed by Uniqueid, calls by Linkedid (a channel moves to another call when an event shows a
new Linkedid, as after an attended transfer), bridges by BridgeUniqueid. Device states, queue members and
the results of originates are tracked too.

Changes are not pushed one by one: the tracker marks what changed, calls ``on_dirty`` once when the first
change after a `drain` happens, and `drain` hands over everything that changed since, coalesced. A burst of
AMI events thus costs one notification per call, not one per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ctid.state.model import Bridge, Call, Channel, QueueMember, line_of

Message = Mapping[str, str]

# Events that carry a full channel snapshot (Channel, Uniqueid, Linkedid, ChannelStateDesc, ...).
_SNAPSHOT_FIELDS = (
    ("ChannelStateDesc", "state"),
    ("CallerIDNum", "callerid_num"),
    ("CallerIDName", "callerid_name"),
    ("ConnectedLineNum", "connected_num"),
    ("ConnectedLineName", "connected_name"),
    ("Context", "context"),
    ("Exten", "exten"),
)
_MAX_NOTICES = 1000


@dataclass
class Changes:
    calls: dict[str, Call] = field(default_factory=dict)
    """Calls that changed and still exist, by Linkedid."""
    ended: dict[str, Call] = field(default_factory=dict)
    """Calls that ended (their last channel hung up), by Linkedid."""
    devices: dict[str, str] = field(default_factory=dict)
    """Device -> new state, e.g. ``PJSIP/1001 -> INUSE``."""
    members: dict[tuple[str, str], QueueMember | None] = field(default_factory=dict)
    """(queue, interface) -> member, or None when it was removed."""
    notices: list[dict[str, Any]] = field(default_factory=list)
    """Transfers and originate results, in order."""

    def __bool__(self) -> bool:
        return bool(self.calls or self.ended or self.devices or self.members or self.notices)


class CallTracker:
    def __init__(self, on_dirty: Callable[[], object] | None = None) -> None:
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, str] = {}
        self.members: dict[tuple[str, str], QueueMember] = {}
        self.on_dirty = on_dirty or (lambda: None)
        self.events_applied = 0
        self._changes = Changes()
        self._dirty = False
        self._handlers: dict[str, Callable[[Message], None]] = {
            "Newchannel": self._newchannel,
            "Hangup": self._hangup,
            "Rename": self._rename,
            "BridgeCreate": self._bridge_create,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "BridgeDestroy": self._bridge_destroy,
            "DeviceStateChange": self._device_state,
            "QueueMemberStatus": self._queue_member,
            "QueueMemberAdded": self._queue_member,
            "QueueMember": self._queue_member,
            "QueueMemberPause": self._queue_member,
            "QueueMemberPenalty": self._queue_member,
            "QueueMemberRemoved": self._queue_member_removed,
            "LocalOptimizationBegin": self._local_optimization_begin,
            "LocalOptimizationEnd": self._local_optimization_end,
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            "OriginateResponse": self._originate_response,
        }
        # Newexten, DialBegin, DialEnd and the rest repeat a snapshot of a channel these already keep current.
        for name in ("Newstate", "NewCallerid", "NewConnectedLine"):
            self._handlers[name] = self._snapshot

    # -- input

    def apply(self, msg: Message) -> None:
        """Apply one AMI event. Unknown events are ignored; an event about an unknown channel is ignored
        unless it carries a full snapshot, which then (re)creates the channel."""
        handler = self._handlers.get(msg.get("Event", ""))
        if handler is not None:
            handler(msg)
        self.events_applied += 1

    def apply_many(self, msgs: Iterable[Message]) -> None:
        """`apply` for each message, in order (the fast path for a burst)."""
        get = self._handlers.get
        n = 0
        for msg in msgs:
            handler = get(msg.get("Event", ""))
            if handler is not None:
                handler(msg)
            n += 1
        self.events_applied += n

    def drain(self) -> Changes:
        """Everything that changed since the last drain."""
        changes, self._changes = self._changes, Changes()
        self._dirty = False
        return changes

    # -- resynchronisation from AMI lists

    def resync(
        self,
        channels: Iterable[Message] | None = None,
        devices: Iterable[Message] | None = None,
        members: Iterable[Message] | None = None,
    ) -> None:
        """Replace the state with what Asterisk lists: ``CoreShowChannel`` items, ``DeviceStateChange``
        items of DeviceStateList, ``QueueMember`` items of QueueStatus. A None list leaves that part as is.
        Calls that disappeared are reported as ended; every remaining call as changed."""
        if channels is not None:
            old_calls = self.calls
            self.channels, self.calls, self.bridges = {}, {}, {}
            for item in channels:
                uid = item.get("Uniqueid")
                if not uid:
                    continue
                chan = self._create(item)
                bridge_id = item.get("BridgeId") or None
                if bridge_id:
                    chan.bridge = bridge_id
                    self.bridges.setdefault(bridge_id, Bridge(bridge_id)).channels.add(uid)
            for linkedid, call in old_calls.items():
                if linkedid not in self.calls:
                    self._mark_ended(call)
            for call in self.calls.values():
                self._mark_call(call)
        if devices is not None:
            fresh = {d["Device"]: d.get("State", "") for d in devices if d.get("Device")}
            for device, state in fresh.items():
                if self.devices.get(device) != state:
                    self._mark_device(device, state)
            for device in set(self.devices) - set(fresh):
                self._mark_device(device, "UNKNOWN")
            self.devices = fresh
        if members is not None:
            old = self.members
            self.members = {}
            for item in members:
                self._queue_member(item)
            for key in set(old) - set(self.members):
                self._mark_member(key, None)

    def forget_all(self) -> None:
        """AMI is gone: nothing known is trustworthy. Calls end; devices become UNKNOWN."""
        self.resync(channels=(), devices=(), members=None)

    # -- queries

    def peer_channels(self, chan: Channel) -> list[Channel]:
        """The other channels in ``chan``'s bridge."""
        if chan.bridge is None or chan.bridge not in self.bridges:
            return []
        return [
            self.channels[u]
            for u in self.bridges[chan.bridge].channels
            if u != chan.uniqueid and u in self.channels
        ]

    # -- marking

    def _dirtied(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.on_dirty()

    def _mark_call(self, call: Call) -> None:
        calls = self._changes.calls
        if call.linkedid in calls:
            return
        calls[call.linkedid] = call
        self._changes.ended.pop(call.linkedid, None)
        self._dirtied()

    def _mark_ended(self, call: Call) -> None:
        self._changes.calls.pop(call.linkedid, None)
        self._changes.ended[call.linkedid] = call
        self._dirtied()

    def _mark_device(self, device: str, state: str) -> None:
        self._changes.devices[device] = state
        self._dirtied()

    def _mark_member(self, key: tuple[str, str], member: QueueMember | None) -> None:
        self._changes.members[key] = member
        self._dirtied()

    def _notice(self, notice: dict[str, Any]) -> None:
        notices = self._changes.notices
        if len(notices) >= _MAX_NOTICES:
            del notices[0]
        notices.append(notice)
        self._dirtied()

    # -- channels and calls

    def _create(self, msg: Message) -> Channel:
        uid = msg["Uniqueid"]
        linkedid = msg.get("Linkedid") or uid
        chan = Channel(uid, msg.get("Channel", ""), linkedid)
        for header, attr in _SNAPSHOT_FIELDS:
            value = msg.get(header)
            if value is not None:
                setattr(chan, attr, value)
        self.channels[uid] = chan
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid)
        call.channels[uid] = chan
        return chan

    def _newchannel(self, msg: Message) -> None:
        if "Uniqueid" not in msg:
            return
        old = self.channels.get(msg["Uniqueid"])
        if old is not None:
            self._snapshot(msg)
            return
        chan = self._create(msg)
        self._mark_call(self.calls[chan.linkedid])

    def _snapshot(self, msg: Message) -> None:
        uid = msg.get("Uniqueid")
        if uid is None:
            return
        chan = self.channels.get(uid)
        if chan is None:
            if "Channel" not in msg or "ChannelStateDesc" not in msg:
                return
            chan = self._create(msg)
        else:
            get = msg.get
            if (value := get("ChannelStateDesc")) is not None:
                chan.state = value
            if (value := get("CallerIDNum")) is not None:
                chan.callerid_num = value
            if (value := get("CallerIDName")) is not None:
                chan.callerid_name = value
            if (value := get("ConnectedLineNum")) is not None:
                chan.connected_num = value
            if (value := get("ConnectedLineName")) is not None:
                chan.connected_name = value
            if (value := get("Context")) is not None:
                chan.context = value
            if (value := get("Exten")) is not None:
                chan.exten = value
            name = get("Channel")
            if name and name != chan.name:
                chan.name = name
            linkedid = msg.get("Linkedid")
            if linkedid and linkedid != chan.linkedid:
                self._move(chan, linkedid)
        self._mark_call(self.calls[chan.linkedid])

    def _move(self, chan: Channel, linkedid: str) -> None:
        old = self.calls.get(chan.linkedid)
        if old is not None:
            old.channels.pop(chan.uniqueid, None)
            if old.channels:
                self._mark_call(old)
            else:
                del self.calls[old.linkedid]
                self._mark_ended(old)
        chan.linkedid = linkedid
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid)
        call.channels[chan.uniqueid] = chan
        if old is not None:
            call.transfers = max(call.transfers, old.transfers)

    def _hangup(self, msg: Message) -> None:
        chan = self.channels.pop(msg.get("Uniqueid", ""), None)
        if chan is None:
            return
        if chan.bridge is not None and (bridge := self.bridges.get(chan.bridge)) is not None:
            bridge.channels.discard(chan.uniqueid)
        call = self.calls.get(chan.linkedid)
        if call is None:
            return
        call.channels.pop(chan.uniqueid, None)
        if call.channels:
            self._mark_call(call)
        else:
            del self.calls[call.linkedid]
            self._mark_ended(call)

    def _rename(self, msg: Message) -> None:
        chan = self.channels.get(msg.get("Uniqueid", ""))
        new = msg.get("Newname")
        if chan is not None and new:
            chan.name = new
            self._mark_call(self.calls[chan.linkedid])

    # -- bridges

    def _bridge_create(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        if bid:
            self.bridges.setdefault(bid, Bridge(bid))

    def _bridge_enter(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        self._snapshot(msg)
        chan = self.channels.get(msg.get("Uniqueid", ""))
        if not bid or chan is None:
            return
        if chan.bridge and chan.bridge != bid and (old := self.bridges.get(chan.bridge)) is not None:
            old.channels.discard(chan.uniqueid)
        self.bridges.setdefault(bid, Bridge(bid)).channels.add(chan.uniqueid)
        chan.bridge = bid

    def _bridge_leave(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        self._snapshot(msg)
        chan = self.channels.get(msg.get("Uniqueid", ""))
        if bid and (bridge := self.bridges.get(bid)) is not None:
            bridge.channels.discard(msg.get("Uniqueid", ""))
        if chan is not None and chan.bridge == bid:
            chan.bridge = None

    def _bridge_destroy(self, msg: Message) -> None:
        bridge = self.bridges.pop(msg.get("BridgeUniqueid", ""), None)
        if bridge is None:
            return
        for uid in bridge.channels:
            chan = self.channels.get(uid)
            if chan is not None and chan.bridge == bridge.uniqueid:
                chan.bridge = None
                self._mark_call(self.calls[chan.linkedid])

    # -- Local channel optimisation and transfers

    def _local_optimization_begin(self, msg: Message) -> None:
        for prefix in ("LocalOne", "LocalTwo"):
            chan = self.channels.get(msg.get(prefix + "Uniqueid", ""))
            if chan is not None:
                chan.optimizing = True

    def _local_optimization_end(self, msg: Message) -> None:
        # On success the Local pair hangs up next (Hangup events follow) and the real channels have
        # already been swapped into the bridges by BridgeEnter/BridgeLeave. On failure it stays.
        for prefix in ("LocalOne", "LocalTwo"):
            chan = self.channels.get(msg.get(prefix + "Uniqueid", ""))
            if chan is not None:
                chan.optimizing = False
                self._mark_call(self.calls[chan.linkedid])

    def _blind_transfer(self, msg: Message) -> None:
        ok = msg.get("Result") == "Success"
        transferee = self.channels.get(msg.get("TransfereeUniqueid", ""))
        lines = self._parties(msg, ("Transferer", "Transferee"))
        if ok and transferee is not None:
            call = self.calls[transferee.linkedid]
            call.transfers += 1
            self._mark_call(call)
        self._notice(
            {
                "kind": "blind_transfer",
                "result": msg.get("Result", ""),
                "transferer": msg.get("TransfererUniqueid", ""),
                "transferee": msg.get("TransfereeUniqueid", ""),
                "exten": msg.get("Extension", ""),
                "context": msg.get("Context", ""),
                "call_id": _call_id(transferee, msg, "Transferee", "Transferer"),
                "lines": lines,
            }
        )

    def _attended_transfer(self, msg: Message) -> None:
        ok = msg.get("Result") == "Success"
        transferee = self.channels.get(msg.get("TransfereeUniqueid", ""))
        target = self.channels.get(msg.get("TransferTargetUniqueid", ""))
        lines = self._parties(msg, ("OrigTransferer", "SecondTransferer", "Transferee", "TransferTarget"))
        if ok and transferee is not None:
            call = self.calls[transferee.linkedid]
            call.transfers += 1
            # Asterisk moves the target into the transferee's call (its Linkedid follows in later
            # events); do it now so that no event shows a half-transferred state.
            if target is not None and target.linkedid != transferee.linkedid:
                self._move(target, transferee.linkedid)
            self._mark_call(call)
        self._notice(
            {
                "kind": "attended_transfer",
                "result": msg.get("Result", ""),
                "transferer": msg.get("OrigTransfererUniqueid", ""),
                "transferee": msg.get("TransfereeUniqueid", ""),
                "target": msg.get("TransferTargetUniqueid", ""),
                "call_id": _call_id(transferee, msg, "Transferee", "OrigTransferer"),
                "lines": lines,
            }
        )

    def _parties(self, msg: Message, prefixes: tuple[str, ...]) -> frozenset[str]:
        """The lines of everyone in the calls of a transfer's channels, as they are before it applies: the
        transfer is reported to all of them, even those whose channel hangs up right after."""
        lines: set[str] = set()
        for prefix in prefixes:
            chan = self.channels.get(msg.get(prefix + "Uniqueid", ""))
            call = self.calls.get(chan.linkedid) if chan is not None else None
            if call is not None:
                lines |= call.lines()
            if (line := line_of(msg.get(prefix + "Channel", ""))) is not None:
                lines.add(line)
        return frozenset(lines)

    def _originate_response(self, msg: Message) -> None:
        self._notice(
            {
                "kind": "originate",
                "action_id": msg.get("ActionID", ""),
                "result": msg.get("Response", ""),
                "reason": msg.get("Reason", ""),
                "uniqueid": msg.get("Uniqueid", ""),
                "channel": msg.get("Channel", ""),
            }
        )

    # -- devices and queues

    def _device_state(self, msg: Message) -> None:
        device = msg.get("Device")
        state = msg.get("State", "")
        if device and self.devices.get(device) != state:
            self.devices[device] = state
            self._mark_device(device, state)

    def _queue_member(self, msg: Message) -> None:
        queue = msg.get("Queue")
        interface = msg.get("Interface") or msg.get("Location")
        if not queue or not interface:
            return
        key = (queue, interface)
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = QueueMember(queue, interface)
        name = msg.get("MemberName") or msg.get("Name")
        if name is not None:
            member.name = name
        member.status = _int(msg.get("Status"), member.status)
        member.penalty = _int(msg.get("Penalty"), member.penalty)
        if "Paused" in msg:
            member.paused = msg["Paused"] in ("1", "true", "yes")
        if "PausedReason" in msg:
            member.paused_reason = msg["PausedReason"]
        if "InCall" in msg:
            member.in_call = msg["InCall"] == "1"
        if "Membership" in msg:
            member.membership = msg["Membership"]
        self._mark_member(key, member)

    def _queue_member_removed(self, msg: Message) -> None:
        key = (msg.get("Queue", ""), msg.get("Interface", ""))
        if self.members.pop(key, None) is not None:
            self._mark_member(key, None)


def _call_id(chan: Channel | None, msg: Message, *prefixes: str) -> str | None:
    """The call of a transfer: the known channel's, else the first Linkedid the event carries."""
    if chan is not None:
        return chan.linkedid
    return next((v for p in prefixes if (v := msg.get(p + "Linkedid"))), None)


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default
