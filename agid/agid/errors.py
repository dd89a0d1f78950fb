"""Typed errors raised by the AGI protocol layer and the session API.

Hierarchy::

    AGIError
    ├── AGIProtocolError        the peer broke the protocol; the connection is closed
    ├── AGIConnectionLost       the socket was closed or reset
    ├── AGIArgumentError        a command argument cannot be sent safely (also a ValueError)
    ├── AGIHangup               the channel has hung up
    │   └── AGIDeadChannel      "511 Command Not Permitted on a dead channel ..."
    ├── AGICommandError         Asterisk refused the command (carries the reply)
    │   ├── AGIUnknownCommand   "510 Invalid or unknown command"
    │   ├── AGIUsageError       "520 Invalid command syntax" (+ usage text)
    │   └── AGIDeadChannel      (also an AGIHangup)
    └── AGICommandFailed        "200 result=-1" (or another documented failure result)

and, apart, DBUnavailable: the database could not answer in time (handlers degrade on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agid.protocol import AGIReply


class AGIError(Exception):
    """Base class of every error of this package."""


class AGIProtocolError(AGIError):
    """The peer sent bytes that are not valid FastAGI. Fatal for the connection."""


class AGIConnectionLost(AGIError):
    """The peer closed or reset the connection."""


class AGIArgumentError(AGIError, ValueError):
    """A command or an argument cannot be sent without changing its meaning.

    Raised before anything is written: a value containing CR, LF or NUL (which could smuggle a second
    command into the stream), a line longer than Asterisk's buffer, too many arguments.
    """


class AGIHangup(AGIError):
    """The channel hung up: after ``HANGUP`` a command that needs a live channel is refused."""


class AGICommandError(AGIError):
    """Asterisk answered a command with a non-200 code."""

    def __init__(self, message: str, reply: AGIReply) -> None:
        super().__init__(message)
        self.reply = reply


class AGIUnknownCommand(AGICommandError):
    """``510 Invalid or unknown command``."""


class AGIUsageError(AGICommandError):
    """``520 Invalid command syntax``; :attr:`usage` holds the usage text Asterisk sent (may be empty)."""

    @property
    def usage(self) -> str:
        return "\n".join(self.reply.usage)


class AGIDeadChannel(AGICommandError, AGIHangup):
    """``511 Command Not Permitted on a dead channel or intercept routine``."""


class AGICommandFailed(AGIError):
    """Asterisk ran the command and reported failure (usually ``200 result=-1``)."""

    def __init__(self, message: str, reply: AGIReply) -> None:
        super().__init__(message)
        self.reply = reply


class DBUnavailable(Exception):
    """The database could not answer within the time given (down, slow, frozen, pool exhausted)."""
