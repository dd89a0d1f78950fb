"""ctispy: show the CTI messages between a client and the CTI server as they pass."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from . import proxycli
from .framing import Frame, LineFramer
from .manpage import ManPageParser
from .messages import (
    CtiMessage,
    MessageFilter,
    decode,
    escape_bytes,
    is_blank,
    parse_include,
    to_bytes,
    to_json,
)
from .output import OutputSink
from .proxy import Direction, Session, SessionObserver

PROG = "ctispy"

SUMMARY = "show the CTI messages between a client and the CTI server, as they pass"

DESCRIPTION = """
ctispy prints the messages that a CTI client and the CTI server exchange, in real time, one decoded
message per line on standard output, prefixed with "client:" for what the client sends and "server:" for
what the server sends. Each session starts and ends with a line beginning with "#".

Messages are shown as one-line JSON, with their fields in the order received. Undecodable lines are shown
as "[undecodable: REASON]" followed by the line's bytes, with non-printable bytes escaped (\\n, \\r, \\t,
\\\\, \\xNN). Lines longer than --max-message-size are shown as too large, with their first bytes only.
"""

EXAMPLES = """
Watch the traffic between a CTI client and the server on host xivo-new; then point the client at port
50030 of this machine:

    ctispy xivo-new

Pretty-print, without the fields that change on every run:

    ctispy xivo-new --pretty-print --strip timenow --strip commandid --strip replyid

Only the getlist messages, and only what the server sends:

    ctispy xivo-new --include class=getlist --no-client

The bytes exactly as they pass, one line per TCP read:

    ctispy xivo-new --raw

Accept clients from other hosts on port 50031, and keep going between sessions:

    ctispy ctid.example.org --listen-address 0.0.0.0 --port 50031 --loop
"""


@dataclass(frozen=True)
class SpyOptions:
    pretty: bool = False
    raw: bool = False
    filter: MessageFilter = field(default_factory=MessageFilter)
    show: frozenset[Direction] = frozenset(Direction)
    max_message_size: int = proxycli.DEFAULT_MAX_MESSAGE_SIZE


def format_message(direction: Direction, message: CtiMessage, flt: MessageFilter, pretty: bool) -> str:
    """One displayed message (several lines when pretty), without the final newline."""
    prefix = f"{direction.value}: "
    if message.fields is None:
        tail = "..." if message.frame.oversized else ""
        return f"{prefix}[undecodable: {message.error}] {escape_bytes(message.frame.data)}{tail}"
    try:
        text = to_json(flt.stripped(message.fields), pretty=pretty)
    except (RecursionError, ValueError):  # decodable, but too deep to re-encode
        text = escape_bytes(message.frame.data)
    return prefix + text


def format_raw(direction: Direction, data: bytes) -> str:
    return f"{direction.value}: [{len(data)} bytes] {escape_bytes(data)}"


class SpyObserver(SessionObserver):
    def __init__(self, options: SpyOptions, sink: OutputSink, out: BinaryIO) -> None:
        self.options = options
        self._sink = sink
        self._out = out
        self._framers: dict[Direction, LineFramer] = {}

    async def session_started(self, session: Session) -> None:
        self._framers = {d: LineFramer(self.options.max_message_size) for d in Direction}
        await self._emit(
            f"# session {session.number} started: client {session.client}, server {session.server}"
        )

    async def data(self, session: Session, direction: Direction, data: bytes) -> None:
        if direction not in self.options.show:
            return
        if self.options.raw:
            await self._emit(format_raw(direction, data))
            return
        for frame in self._framers[direction].feed(data):
            await self._show(direction, frame)

    async def session_ended(self, session: Session) -> None:
        if not self.options.raw:
            for direction in Direction:
                if direction in self.options.show and direction in self._framers:
                    for frame in self._framers[direction].close():
                        await self._show(direction, frame)
        await self._emit(
            f"# session {session.number} ended after {session.duration:.3f} s: {session.reason or 'closed'}"
        )

    async def _show(self, direction: Direction, frame: Frame) -> None:
        if is_blank(frame):
            return
        message = decode(frame, self.options.max_message_size)
        if self.options.filter.matches(message):
            await self._emit(format_message(direction, message, self.options.filter, self.options.pretty))

    async def _emit(self, text: str) -> None:
        await self._sink.write(self._out, to_bytes(text + "\n"))


def build_parser() -> ManPageParser:
    parser = proxycli.make_parser(PROG, SUMMARY, DESCRIPTION, EXAMPLES)
    parser.add_argument(
        "--pretty-print",
        action="store_true",
        help="show each message as indented JSON, over several lines",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="show the bytes as they pass, one line per read, without decoding; --pretty-print, --strip "
        "and --include are then inactive",
    )
    proxycli.add_strip_option(parser)
    parser.add_argument(
        "--include",
        metavar="KEY=VALUE",
        action="append",
        type=_include_arg,
        default=[],
        help="show only the messages whose top-level field KEY is VALUE (repeatable: values given for "
        "the same key are alternatives, different keys must all match); non-string values compare as "
        "JSON text, for instance ok=true",
    )
    parser.add_argument("--no-client", action="store_true", help="do not show what the client sends")
    parser.add_argument("--no-server", action="store_true", help="do not show what the server sends")
    proxycli.add_common_options(parser)
    return parser


def _include_arg(text: str) -> tuple[str, str]:
    try:
        return parse_include(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    note = proxycli.stderr_note(PROG)
    if args.raw:
        inactive = [
            name
            for name, given in (
                ("--pretty-print", args.pretty_print),
                ("--strip", args.strip),
                ("--include", args.include),
            )
            if given
        ]
        if inactive:
            note(f"{', '.join(inactive)} inactive with --raw: the messages are not decoded")
    show = frozenset(
        d
        for d, hidden in ((Direction.CLIENT, args.no_client), (Direction.SERVER, args.no_server))
        if not hidden
    )
    options = SpyOptions(
        pretty=args.pretty_print,
        raw=args.raw,
        filter=MessageFilter.from_options(strip=args.strip, include=args.include),
        show=show,
        max_message_size=args.max_message_size,
    )

    def make_observer(sink: OutputSink, _note: Callable[[str], None]) -> SpyObserver:
        return SpyObserver(options, sink, sys.stdout.buffer)

    return proxycli.run(PROG, proxycli.proxy_config(args), make_observer)


if __name__ == "__main__":
    sys.exit(main())
