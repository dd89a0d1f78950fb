"""Parse speed on the recorded Asterisk 20 traces, repeated; compared with panoramisk when installed.

Run: ``python ctid/tests/bench_parser.py [repeat]``. Not collected by pytest (no test_ prefix).
Both parsers get the same bytes in 64 KiB reads; CPU time (process_time), best of 7 runs. "panoramisk 1.4" is
its parsing core only (the fairest to it); "data_received" is its whole protocol path with dispatch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ctid.ami.client import AMIClient
from ctid.ami.config import AMIConfig
from ctid.ami.parser import AMIParser

TRACE_DIR = Path(__file__).parent / "data" / "asterisk-traces"
READ = 65536


def corpus(repeat: int) -> list[bytes]:
    bodies = [p.read_bytes().split(b"\r\n", 1)[1] for p in sorted(TRACE_DIR.glob("*.ami.raw"))]
    data = b"".join(bodies) * repeat
    return [data[i : i + READ] for i in range(0, len(data), READ)]


def ours(reads: list[bytes]) -> int:
    parser = AMIParser(expect_banner=False)
    return sum(len(parser.feed(r)) for r in reads)


def ours_dispatched(reads: list[bytes]) -> int:
    """Parsing plus the client's correlation/dispatch path (events to a no-op subscriber)."""
    client = AMIClient(AMIConfig(username="bench", secret="bench"), on_event=lambda msg: None)
    parser = AMIParser(expect_banner=False)
    receive = client.message_received
    n = 0
    for r in reads:
        for msg in parser.feed(r):
            receive(msg)
            n += 1
    return n


def panoramisk(reads: list[bytes]) -> int:
    """panoramisk 1.4's AMIProtocol.data_received parsing (decode, split, Message.from_line)."""
    from panoramisk.message import Message

    pending, n = "", 0
    for r in reads:
        data = pending + r.decode("ascii", "ignore")
        chunks = data.split("\r\n\r\n")
        pending = chunks.pop(-1)
        for chunk in chunks:
            if Message.from_line(chunk.strip()):
                n += 1
    return n


def panoramisk_protocol(reads: list[bytes]) -> int:
    """panoramisk 1.4's whole AMIProtocol.data_received, events dispatched to a no-op factory."""
    from panoramisk.ami_protocol import AMIProtocol

    class Counting(AMIProtocol):
        handled = 0

        def handle_message(self, message: object) -> None:
            self.handled += 1
            super().handle_message(message)

    class Factory:
        def dispatch(self, message: object) -> None:
            pass

    protocol = Counting()
    protocol.connection_made(None)
    protocol.factory = Factory()
    protocol.version = "9.0.0"
    for r in reads:
        protocol.data_received(r)
    return protocol.handled


def best_rate(fn, reads: list[bytes]) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        n = fn(reads)
        best = min(best, time.process_time() - start)
    return n, n / best


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    reads = corpus(repeat)
    size = sum(map(len, reads))
    print(f"{size / 1e6:.1f} MB: the 14 traces x {repeat}")
    n, rate = best_rate(ours, reads)
    print(f"ctid AMIParser          {n} messages  {rate:>10,.0f} msg/s  {rate * size / n / 1e6:6.1f} MB/s")
    _, dispatched = best_rate(ours_dispatched, reads)
    print(f"ctid parse + dispatch   {n} messages  {dispatched:>10,.0f} msg/s")
    try:
        pn, prate = best_rate(panoramisk, reads)
    except ImportError:
        print("panoramisk not installed: no comparison")
        return
    print(f"panoramisk 1.4          {pn} messages  {prate:>10,.0f} msg/s   ratio {rate / prate:.2f}x")
    pn, prate = best_rate(panoramisk_protocol, reads)
    ratio = dispatched / prate
    print(
        f"panoramisk data_received {pn} messages {prate:>10,.0f} msg/s   ratio {ratio:.2f}x (with dispatch)"
    )


if __name__ == "__main__":
    main()
