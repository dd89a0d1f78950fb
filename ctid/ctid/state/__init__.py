"""Call state: plain objects fed with AMI events (no Twisted, no I/O)."""

from ctid.state.model import Bridge, Call, Channel, QueueMember, line_of
from ctid.state.tracker import CallTracker

__all__ = ["Bridge", "Call", "CallTracker", "Channel", "QueueMember", "line_of"]
