"""What every CTI command handler is given: the request and a narrow view of the session sending it.

A handler never sees the session or the server "hub": it answers through `Request` and acts through the
small environment its module declares (`LoginEnv`, `CallsEnv`, ...), built once by the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from ctid.ami.errors import (
    AMIActionError,
    AMIBackpressureError,
    AMIConnectionLostError,
    AMINotConnectedError,
    AMITimeoutError,
    AsteriskNotReadyError,
)
from ctid.directory import User

log = Logger()

AMISender = Callable[[str, Any], Deferred]
"""Send one AMI action (name, headers); fails at once when AMI or Asterisk is not ready."""


class Client(Protocol):
    """The session, as handlers see it: who it is, whether it is gone, and how to reply to it."""

    user: User | None
    peer: str
    closed: bool
    logging_in: bool

    def send(self, obj: dict[str, Any]) -> None: ...

    def respond(self, rid: Any, request: str, **data: Any) -> None: ...

    def error(self, rid: Any, request: str | None, code: str, message: str, **extra: Any) -> None: ...

    def logged_in(self, user: User) -> None: ...


@dataclass(frozen=True)
class Request:
    """One valid request: its ``id`` (``rid``), its class and its fields, and the client it came from."""

    client: Client
    rid: Any
    cls: str
    msg: dict[str, Any]

    @property
    def user(self) -> User:
        """The logged-in user (every command but ``login`` and ``ping`` runs only after a login)."""
        user = self.client.user
        assert user is not None
        return user

    def ok(self, **data: Any) -> None:
        self.client.respond(self.rid, self.cls, **data)

    def fail(self, code: str, message: str, **extra: Any) -> None:
        self.client.error(self.rid, self.cls, code, message, **extra)


def run_actions(
    req: Request,
    ami_action: AMISender,
    actions: list[tuple[str, Any]],
    on_ok: Callable[[], None],
    on_error: Callable[[], None] | None = None,
) -> None:
    """Send ``actions`` together; ``on_ok`` when all succeed (and the client is still there), else one
    error reply saying whether Asterisk was unreachable, slow or refused."""
    if not actions:
        on_ok()
        return
    d: Deferred = gatherResults([ami_action(a, h) for a, h in actions], consumeErrors=True)

    def ok(_: Any) -> None:
        if not req.client.closed:
            on_ok()

    def failed(failure: Failure) -> None:
        if on_error is not None:
            on_error()
        exc = failure.value
        exc = getattr(exc, "subFailure", None).value if hasattr(exc, "subFailure") else exc
        if isinstance(exc, AsteriskNotReadyError):
            req.fail("ami_unavailable", "Asterisk is starting or stopping; retry shortly")
        elif isinstance(exc, AMINotConnectedError | AMIConnectionLostError | AMIBackpressureError):
            req.fail("ami_unavailable", "Asterisk is not reachable right now; retry later")
        elif isinstance(exc, AMITimeoutError):
            req.fail("ami_unavailable", "Asterisk did not answer in time")
        elif isinstance(exc, AMIActionError):
            reason = exc.response.get("Message", "refused") if hasattr(exc, "response") else str(exc)
            req.fail("ami_error", f"Asterisk refused: {reason}"[:300])
        else:
            log.failure("CTI: {request} failed", failure, request=req.cls)
            req.fail("ami_error", "the request failed")

    d.addCallbacks(ok, failed)
