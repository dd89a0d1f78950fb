"""Book-keeping for one action in flight, and the result type of list actions."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from ctid.ami.message import Message


class EventList(list[Message]):
    """The answer to a list action (CoreShowChannels, QueueStatus, PJSIPShowEndpoints, ...).

    The list holds the events carrying the action's ActionID; `response` is the ``Response: Success`` /
    ``EventList: start`` message and `complete` the final ``...Complete`` event (``EventList: Complete``).
    """

    def __init__(self, response: Message) -> None:
        super().__init__()
        self.response = response
        self.complete: Message | None = None

    @property
    def list_items(self) -> int | None:
        """``ListItems`` of the Complete event, if Asterisk sent a number."""
        value = (self.complete or {}).get("ListItems", "")
        return int(value) if value.isdigit() else None


class PendingAction:
    """One sent (or queued) action waiting for its answer."""

    __slots__ = ("action", "action_id", "data", "deferred", "events", "queued", "timer")

    def __init__(self, action: str, action_id: str, data: bytes, deferred: Deferred) -> None:
        self.action = action
        self.action_id = action_id
        self.data = data
        self.deferred = deferred
        self.events: EventList | None = None
        self.queued = False
        self.timer: IDelayedCall | None = None
