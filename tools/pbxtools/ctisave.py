"""ctisave: save what a CTI client and the CTI server send each other, in two files."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO

from . import proxycli
from .framing import Frame, LineFramer
from .manpage import ManPageParser
from .messages import MessageFilter, decode, to_bytes, to_json
from .output import OutputSink
from .proxy import Direction, Session, SessionObserver, describe_error

PROG = "ctisave"

SUMMARY = "save the CTI messages of a client and of the CTI server in two files"

DESCRIPTION = """
ctisave writes what the client sends to CLIENT_FILE and what the server sends to SERVER_FILE, for careful
analysis after the fact. Both files are created (or truncated) when the tool starts; with --loop, the
sessions follow one another in the same files.

Without --strip, each file is an exact copy of the bytes sent, whatever they are. With --strip, each
message is written on one line as JSON without the stripped fields (key order as received, non-ASCII text
as is), so that the files of two sessions can be compared with a diff tool: fields such as timenow,
commandid and replyid differ on every run and would hide the real differences. Lines that are not JSON
objects are then written unchanged; a line longer than --max-message-size is replaced by a line starting
with "#ctisave:" that gives its size.

Each session's start and end are noted on standard error, with the number of bytes each side sent.
"""

EXAMPLES = """
Save a session between a CTI client and the server on host xivo-new:

    ctisave xivo-new /tmp/cti-client /tmp/cti-server

Save two sessions in a comparable form, then compare what the server sent:

    strip="--strip timenow --strip commandid --strip replyid"
    ctisave xivo-new /tmp/a-client /tmp/a-server $strip
    ctisave xivo-new /tmp/b-client /tmp/b-server $strip
    vimdiff /tmp/a-server /tmp/b-server
"""


def stripped_line(frame: Frame, flt: MessageFilter, max_message_size: int) -> bytes:
    """What --strip mode writes for one framed line."""
    if frame.oversized:
        return to_bytes(f"#ctisave: line of {frame.size} bytes over --max-message-size, not saved\n")
    newline = b"\n" if frame.complete else b""
    message = decode(frame, max_message_size)
    if message.fields is None:
        return frame.data + newline
    try:
        return to_bytes(to_json(flt.stripped(message.fields))) + newline
    except (RecursionError, ValueError):  # decodable but too deep to re-encode: keep it unchanged
        return frame.data + newline


class SaveObserver(SessionObserver):
    def __init__(
        self,
        files: dict[Direction, BinaryIO],
        sink: OutputSink,
        note: Callable[[str], None],
        flt: MessageFilter | None = None,
        max_message_size: int = proxycli.DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.files = files
        self.filter = flt or MessageFilter()
        self.max_message_size = max_message_size
        self._sink = sink
        self._note = note
        self._framers: dict[Direction, LineFramer] = {}

    @property
    def stripping(self) -> bool:
        return bool(self.filter.strip)

    async def session_started(self, session: Session) -> None:
        self._framers = {d: LineFramer(self.max_message_size) for d in Direction}
        self._note(f"session {session.number} started: client {session.client}, server {session.server}")

    async def data(self, session: Session, direction: Direction, data: bytes) -> None:
        if not self.stripping:
            await self._sink.write(self.files[direction], data)
            return
        for frame in self._framers[direction].feed(data):
            await self._write(direction, frame)

    async def session_ended(self, session: Session) -> None:
        if self.stripping:
            for direction, framer in self._framers.items():
                for frame in framer.close():
                    await self._write(direction, frame)
        self._note(
            f"session {session.number} ended after {session.duration:.3f} s: {session.reason or 'closed'}; "
            f"client sent {session.bytes[Direction.CLIENT]} bytes, "
            f"server sent {session.bytes[Direction.SERVER]}"
        )

    async def _write(self, direction: Direction, frame: Frame) -> None:
        await self._sink.write(
            self.files[direction], stripped_line(frame, self.filter, self.max_message_size)
        )


def build_parser() -> ManPageParser:
    parser = proxycli.make_parser(PROG, SUMMARY, DESCRIPTION, EXAMPLES)
    parser.add_argument("client_file", metavar="CLIENT_FILE", help="file for what the client sends")
    parser.add_argument("server_file", metavar="SERVER_FILE", help="file for what the server sends")
    proxycli.add_strip_option(parser)
    proxycli.add_common_options(parser)
    return parser


def _open_files(paths: dict[Direction, str], note: Callable[[str], None]) -> dict[Direction, BinaryIO] | None:
    files: dict[Direction, BinaryIO] = {}
    for direction, path in paths.items():
        try:
            files[direction] = open(path, "wb")  # noqa: SIM115 - closed by main() when the proxy ends
        except OSError as exc:
            note(f"cannot open {path}: {describe_error(exc)}")
            _close_files(files, note)
            return None
    return files


def _close_files(files: dict[Direction, BinaryIO], note: Callable[[str], None]) -> bool:
    ok = True
    for stream in files.values():
        try:
            stream.close()
        except OSError as exc:
            note(f"cannot write {stream.name}: {describe_error(exc)}")
            ok = False
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.client_file == args.server_file:
        parser.error("CLIENT_FILE and SERVER_FILE must be different files")
    note = proxycli.stderr_note(PROG)
    files = _open_files({Direction.CLIENT: args.client_file, Direction.SERVER: args.server_file}, note)
    if files is None:
        return proxycli.EXIT_FAILURE
    flt = MessageFilter.from_options(strip=args.strip)

    def make_observer(sink: OutputSink, note: Callable[[str], None]) -> SaveObserver:
        return SaveObserver(files, sink, note, flt, args.max_message_size)

    try:
        status = proxycli.run(PROG, proxycli.proxy_config(args), make_observer)
    finally:
        closed = _close_files(files, note)
    return status if closed else proxycli.EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
