"""Asterisk Manager Interface (Asterisk 20, AMI 9.0.0): parser, framing, client, reconnecting service.

See docs/ami.md for what the client guarantees.
"""

from ctid.ami.client import AMIClient
from ctid.ami.config import AMIConfig, AMIConfigError
from ctid.ami.errors import (
    AMIActionError,
    AMIBackpressureError,
    AMIConnectionLostError,
    AMIError,
    AMIListTooLongError,
    AMINotConnectedError,
    AMIProtocolError,
    AMITimeoutError,
    AsteriskNotReadyError,
)
from ctid.ami.message import AMIEncodeError, Message, command_output, encode_message, kind, values
from ctid.ami.parser import AMIParseError, AMIParser
from ctid.ami.pending import EventList
from ctid.ami.protocol import AMIProtocol, AMISink
from ctid.ami.service import AMIService, Backoff

__all__ = [
    "AMIActionError",
    "AMIBackpressureError",
    "AMIClient",
    "AMIConfig",
    "AMIConfigError",
    "AMIConnectionLostError",
    "AMIEncodeError",
    "AMIError",
    "AMIListTooLongError",
    "AMINotConnectedError",
    "AMIParseError",
    "AMIParser",
    "AMIProtocol",
    "AMIProtocolError",
    "AMIService",
    "AMISink",
    "AMITimeoutError",
    "AsteriskNotReadyError",
    "Backoff",
    "EventList",
    "Message",
    "command_output",
    "encode_message",
    "kind",
    "values",
]
