"""The objects of the call state: channels, calls (by Linkedid), bridges, queue members."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def line_of(channel_name: str) -> str | None:
    """``PJSIP/1001-0000000a`` -> ``1001``; ``Local/...`` or anything else -> None."""
    if not channel_name.startswith("PJSIP/"):
        return None
    rest = channel_name[6:]
    name, sep, _ = rest.rpartition("-")
    return name if sep and name else None


def line_of_device(device: str) -> str | None:
    """``PJSIP/1001`` (a device or queue member interface) -> ``1001``."""
    return device[6:] or None if device.startswith("PJSIP/") else None


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    state: str = ""
    callerid_num: str = ""
    callerid_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    bridge: str | None = None
    optimizing: bool = False
    """A Local channel between LocalOptimizationBegin and End."""

    @property
    def line(self) -> str | None:
        return line_of(self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "uniqueid": self.uniqueid,
            "channel": self.name,
            "line": self.line,
            "state": self.state,
            "callerid_num": self.callerid_num,
            "callerid_name": self.callerid_name,
            "connected_num": self.connected_num,
            "connected_name": self.connected_name,
            "bridge": self.bridge,
        }


@dataclass(slots=True)
class Call:
    linkedid: str
    channels: dict[str, Channel] = field(default_factory=dict)
    transfers: int = 0

    def lines(self) -> set[str]:
        return {line for c in self.channels.values() if (line := c.line) is not None}

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.linkedid,
            "channels": [c.to_json() for c in self.channels.values()],
            "transfers": self.transfers,
        }


@dataclass(slots=True)
class Bridge:
    uniqueid: str
    channels: set[str] = field(default_factory=set)
    """Uniqueids of the channels in it."""


@dataclass(slots=True)
class QueueMember:
    queue: str
    interface: str
    name: str = ""
    status: int = 0
    """Asterisk's device status number (1 not in use, 2 in use, 6 ringing, 5 unavailable, ...)."""
    paused: bool = False
    paused_reason: str = ""
    penalty: int = 0
    in_call: bool = False
    membership: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "interface": self.interface,
            "name": self.name,
            "status": self.status,
            "paused": self.paused,
            "paused_reason": self.paused_reason,
            "penalty": self.penalty,
            "in_call": self.in_call,
            "membership": self.membership,
        }
