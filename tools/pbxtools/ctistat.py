"""ctistat: statistics of a CTI session between a client and the CTI server, printed when it ends."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import proxycli
from .framing import LineFramer
from .manpage import ManPageParser
from .messages import decode, is_blank, safe_text, to_bytes, to_json
from .output import OutputSink
from .proxy import Direction, Session, SessionObserver

PROG = "ctistat"

SUMMARY = "print statistics of a CTI session between a client and the CTI server"

DESCRIPTION = """
ctistat counts what a CTI client and the CTI server exchange and, when the session ends, prints on
standard output: when it started, how long it lasted and how it ended; the number of messages and bytes
each way; the same per message class; and the largest message.

Byte counts are the bytes on the wire, newlines included. Messages without a "class" field are counted as
"(no class)"; lines that are not JSON objects as "(undecodable)"; lines longer than --max-message-size as
"(too large)"; and a last line without its newline as "(incomplete)". Empty lines are not messages, but
their bytes count in the totals.
"""

EXAMPLES = """
Statistics of one session between a CTI client and the server on host xivo-new:

    ctistat xivo-new

One JSON object per session, for every session until Ctrl-C:

    ctistat xivo-new --loop --json >> cti-sessions.jsonl
"""


@dataclass
class Count:
    messages: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.messages += 1
        self.bytes += size


@dataclass(frozen=True)
class Largest:
    direction: Direction
    size: int
    label: str


class SessionStats:
    """Counters of one session, fed with the relayed bytes; no socket needed."""

    def __init__(self, max_message_size: int = proxycli.DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.totals = {d: Count() for d in Direction}
        self.classes: dict[str, dict[Direction, Count]] = {}
        self.largest: Largest | None = None
        self._framers = {d: LineFramer(max_message_size) for d in Direction}

    def feed(self, direction: Direction, data: bytes) -> None:
        self.totals[direction].bytes += len(data)
        for frame in self._framers[direction].feed(data):
            self._count(direction, frame)

    def finish(self) -> None:
        for direction, framer in self._framers.items():
            for frame in framer.close():
                self._count(direction, frame)

    def _count(self, direction: Direction, frame: Any) -> None:
        if is_blank(frame):
            return
        message = decode(frame, self.max_message_size)
        label = message.label
        self.totals[direction].messages += 1
        per_class = self.classes.setdefault(label, {d: Count() for d in Direction})
        per_class[direction].add(message.size)
        if self.largest is None or message.size > self.largest.size:
            self.largest = Largest(direction, message.size, label)

    def sorted_classes(self) -> list[str]:
        def key(label: str) -> tuple[int, str]:
            counts = self.classes[label]
            return (-sum(c.messages for c in counts.values()), label)

        return sorted(self.classes, key=key)

    def as_dict(self, session: Session) -> dict[str, Any]:
        return {
            "session": session.number,
            "client_address": session.client,
            "server_address": session.server,
            "started": _timestamp(session.started_at),
            "duration": round(session.duration, 6),
            "end": session.reason,
            "directions": {
                d.value: {"messages": c.messages, "bytes": c.bytes} for d, c in self.totals.items()
            },
            "classes": {
                label: {
                    d.value: {"messages": c.messages, "bytes": c.bytes}
                    for d, c in self.classes[label].items()
                }
                for label in self.sorted_classes()
            },
            "largest": None
            if self.largest is None
            else {
                "direction": self.largest.direction.value,
                "bytes": self.largest.size,
                "class": self.largest.label,
            },
        }

    def report(self, session: Session) -> str:
        lines = [
            f"session {session.number}: client {session.client}, server {session.server}",
            f"  started   {_timestamp(session.started_at)}",
            f"  duration  {session.duration:.3f} s",
            f"  ended     {session.reason or 'closed'}",
            "",
            f"  {'direction':<18}{'messages':>10}{'bytes':>14}",
        ]
        for direction, count in self.totals.items():
            lines.append(f"  {direction.arrow:<18}{count.messages:>10}{count.bytes:>14}")
        if self.classes:
            width = max(18, *(len(safe_text(label)) + 2 for label in self.classes))
            lines += [
                "",
                f"  {'class':<{width}}{'client msgs':>12}{'client bytes':>14}"
                f"{'server msgs':>13}{'server bytes':>14}",
            ]
            for label in self.sorted_classes():
                c, s = self.classes[label][Direction.CLIENT], self.classes[label][Direction.SERVER]
                lines.append(
                    f"  {safe_text(label):<{width}}{c.messages:>12}{c.bytes:>14}{s.messages:>13}{s.bytes:>14}"
                )
        lines.append("")
        if self.largest is None:
            lines.append("  largest message: none (no messages)")
        else:
            largest = self.largest
            label = safe_text(largest.label)
            lines.append(f"  largest message: {largest.size} bytes, {largest.direction.arrow}, class {label}")
        return "\n".join(lines) + "\n"


def _timestamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


class StatObserver(SessionObserver):
    def __init__(
        self, sink: OutputSink, out: BinaryIO, as_json: bool = False, max_message_size: int = 0
    ) -> None:
        self._sink = sink
        self._out = out
        self.as_json = as_json
        self.max_message_size = max_message_size or proxycli.DEFAULT_MAX_MESSAGE_SIZE
        self.stats: SessionStats | None = None

    async def session_started(self, session: Session) -> None:
        self.stats = SessionStats(self.max_message_size)

    async def data(self, session: Session, direction: Direction, data: bytes) -> None:
        assert self.stats is not None
        self.stats.feed(direction, data)

    async def session_ended(self, session: Session) -> None:
        assert self.stats is not None
        self.stats.finish()
        text = to_json(self.stats.as_dict(session)) + "\n" if self.as_json else self.stats.report(session)
        await self._sink.write(self._out, to_bytes(text))


def build_parser() -> ManPageParser:
    parser = proxycli.make_parser(PROG, SUMMARY, DESCRIPTION, EXAMPLES)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each session's statistics as one line of JSON instead of a table",
    )
    proxycli.add_common_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def make_observer(sink: OutputSink, _note: Callable[[str], None]) -> StatObserver:
        return StatObserver(
            sink, sys.stdout.buffer, as_json=args.json, max_message_size=args.max_message_size
        )

    return proxycli.run(PROG, proxycli.proxy_config(args), make_observer)


if __name__ == "__main__":
    sys.exit(main())
