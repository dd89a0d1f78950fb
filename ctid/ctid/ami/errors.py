"""Errors an AMI action's Deferred can fail with. All derive from `AMIError`."""

from __future__ import annotations

from ctid.ami.message import Message


class AMIError(Exception):
    """Base class of AMI client errors."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``; `response` is that message."""

    def __init__(self, action: str, response: Message) -> None:
        self.action = action
        self.response = response
        super().__init__(f"AMI {action} failed: {response.get('Message', '(no message)')}")


class AMITimeoutError(AMIError):
    """No complete answer within the action's timeout; a late answer is dropped."""

    def __init__(self, action: str, action_id: str, timeout: float) -> None:
        self.action = action
        self.action_id = action_id
        self.timeout = timeout
        super().__init__(f"AMI {action} (ActionID {action_id}) got no complete answer within {timeout:g} s")


class AMINotConnectedError(AMIError):
    """The client has no logged-in AMI session right now."""


class AsteriskNotReadyError(AMINotConnectedError):
    """Logged in, but Asterisk is still booting (no FullyBooted yet) or shutting down."""


class AMIConnectionLostError(AMIError):
    """The AMI connection closed before the action was answered."""


class AMIBackpressureError(AMIError):
    """Refused at once: too many actions in flight, or the bounded write queue is full."""


class AMIListTooLongError(AMIError):
    """A list action returned more events than the configured bound; the rest were dropped."""


class AMIProtocolError(AMIError):
    """The peer does not speak AMI as expected (bad banner, unexpected answer)."""
