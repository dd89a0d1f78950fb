"""Recorded Asterisk AMI traffic (``NN-name.ami.raw`` / ``NN-name.ami-sent.raw``) and its replay.

A `Trace` keeps every recorded message byte for byte. A `TraceReplay` plays one trace to one client:
messages go out in recorded order, but the answer to the trace's k-th action waits until the client
sends an action of the same name (in the trace's order); that answer and every later message carrying
the trace's ActionID (``ref-k``) then carry the client's ActionID instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ctid.ami.message import Message
from ctid.ami.parser import SEPARATOR, AMIParser


@dataclass(frozen=True)
class TraceMessage:
    raw: bytes
    """The message exactly as recorded, ending with the empty line."""
    message: Message


@dataclass(frozen=True)
class Trace:
    name: str
    banner: bytes
    """The banner line as recorded, CRLF included."""
    messages: list[TraceMessage]
    actions: list[Message]
    """What the recording client sent, in order."""

    @classmethod
    def load(cls, directory: str | Path, name: str) -> Trace:
        directory = Path(directory)
        received = (directory / f"{name}.ami.raw").read_bytes()
        sent = (directory / f"{name}.ami-sent.raw").read_bytes()
        banner, _, body = received.partition(b"\r\n")
        chunks = [c + SEPARATOR for c in body.split(SEPARATOR)]
        if chunks[-1] != SEPARATOR:
            raise ValueError(f"{name}: the recording does not end with a complete message")
        parser = AMIParser(expect_banner=False)
        messages = [TraceMessage(raw, parser.feed(raw)[0]) for raw in chunks[:-1]]
        actions = AMIParser(expect_banner=False).feed(sent)
        return cls(name, banner + b"\r\n", messages, actions)

    def action_ids(self) -> set[str]:
        return {a["ActionID"] for a in self.actions if "ActionID" in a}


def trace_names(directory: str | Path) -> list[str]:
    """Names of the traces in ``directory`` that have both a received and a sent file."""
    directory = Path(directory)
    return sorted(
        p.name.removesuffix(".ami.raw")
        for p in directory.glob("*.ami.raw")
        if (directory / p.name.replace(".ami.raw", ".ami-sent.raw")).exists()
    )


@dataclass
class TraceReplay:
    """Replay state of one trace on one connection."""

    trace: Trace
    position: int = 0
    matched: int = 0
    id_map: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._trace_ids = self.trace.action_ids()

    @property
    def expected_action(self) -> str | None:
        """Name of the next recorded action the replay waits for (None when all were matched)."""
        if self.matched < len(self.trace.actions):
            return self.trace.actions[self.matched].get("Action")
        return None

    def expects(self, name: str) -> bool:
        expected = self.expected_action
        return expected is not None and expected.lower() == name.lower()

    def match(self, client_action_id: str | None) -> tuple[bytes, Message | None]:
        """The client sent the expected action: return the bytes to send now, and the recorded answer."""
        recorded = self.trace.actions[self.matched]
        self.matched += 1
        trace_id = recorded.get("ActionID")
        answer: Message | None = None
        if trace_id is not None:
            self.id_map[trace_id] = client_action_id
            answer = next(
                (m.message for m in self.trace.messages if m.message.get("ActionID") == trace_id), None
            )
        return self.advance(), answer

    def advance(self) -> bytes:
        """All messages from the current position up to the next answer to an unmatched action."""
        out: list[bytes] = []
        messages = self.trace.messages
        while self.position < len(messages):
            tm = messages[self.position]
            trace_id = tm.message.get("ActionID")
            if trace_id is not None and trace_id in self._trace_ids:
                if trace_id not in self.id_map:
                    break
                out.append(_substitute(tm.raw, trace_id, self.id_map[trace_id]))
            else:
                out.append(tm.raw)
            self.position += 1
        return b"".join(out)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.trace.messages)


def _substitute(raw: bytes, old: str, new: str | None) -> bytes:
    line = b"\r\nActionID: " + old.encode() + b"\r\n"
    replacement = (
        b"\r\n" if new is None else b"\r\nActionID: " + new.encode("utf-8", "surrogateescape") + b"\r\n"
    )
    return raw.replace(line, replacement)
