"""Newline framing of a byte stream, with a bound on the buffered line.

The CTI protocol sends one JSON object per line. TCP delivers arbitrary pieces: half a line, or several
lines in one segment. :class:`LineFramer` turns those pieces back into lines.

The framer only observes: the proxies forward the bytes themselves, unchanged, whatever happens here. A line
longer than ``max_line`` is not buffered whole; only its first ``head`` bytes are kept (for display) and the
rest is counted, so memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HEAD = 256


@dataclass(frozen=True)
class Frame:
    """One line of the stream.

    ``data`` is the line without its newline, or only its first bytes when ``oversized``. ``size`` is the
    number of bytes the line took on the wire, newline included. ``complete`` is False for the unterminated
    tail that remains when the stream ends.
    """

    data: bytes
    size: int
    oversized: bool = False
    complete: bool = True


class LineFramer:
    """Split a byte stream into :class:`Frame` objects, buffering at most ``max_line`` bytes."""

    def __init__(self, max_line: int, head: int = DEFAULT_HEAD) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self.head = min(head, max_line)
        self._buffer = bytearray()
        self._skipping = False  # inside an oversized line: keep only the head, count the rest
        self._skipped = 0

    @property
    def buffered(self) -> int:
        """Bytes held for the current, unterminated line (never more than ``max_line``)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the lines they complete."""
        frames: list[Frame] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            self._add(piece)
            if end < 0:
                break
            frames.append(self._take(complete=True, newline=1))
            start = end + 1
        return frames

    def close(self) -> list[Frame]:
        """End of stream: return the unterminated tail, if any."""
        if not self._buffer and not self._skipping:
            return []
        return [self._take(complete=False, newline=0)]

    def _add(self, piece: bytes) -> None:
        if self._skipping:
            self._skipped += len(piece)
            return
        if len(self._buffer) + len(piece) <= self.max_line:
            self._buffer += piece
            return
        # The line outgrows the bound: keep its head only.
        total = len(self._buffer) + len(piece)
        self._buffer += piece[: max(0, self.head - len(self._buffer))]
        del self._buffer[self.head :]
        self._skipping = True
        self._skipped = total - len(self._buffer)

    def _take(self, complete: bool, newline: int) -> Frame:
        data = bytes(self._buffer)
        size = len(data) + self._skipped + newline
        frame = Frame(data=data, size=size, oversized=self._skipping, complete=complete)
        self._buffer.clear()
        self._skipping = False
        self._skipped = 0
        return frame
