"""ctid.ami_ingest: AMI events per second parsed and applied to ctid's call state, on one core.

The stream repeats the recorded Asterisk 20 call scenarios (traces 03-13) with fresh Uniqueids, Linkedids
and bridge ids in each repetition, so the state really grows and shrinks. The same bytes are parsed by
panoramisk (the reference; installed in .venv) in the same run. CPU time (process_time), best of 5.
The reference is panoramisk's protocol path (parse + dispatch, no state); its bare parse loop is reported too.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

from support import REPO, Env, result

sys.path.insert(0, str(REPO / "ctid"))

TRACES = REPO / "ctid" / "tests" / "data" / "asterisk-traces"
REPEAT = 150
READ = 65536
TARGET = 50_000.0
_UID = re.compile(rb"17954166(\d\d\.\d+)")
_BRIDGE = re.compile(
    rb"(BridgeUniqueid|BridgeId|DestBridgeUniqueid|OrigBridgeUniqueid|SecondBridgeUniqueid): "
    rb"[0-9a-f]{8}"
)


def stream(repeat: int = REPEAT) -> tuple[list[bytes], int]:
    from testkit.ami.traces import Trace, trace_names

    events = b""
    count = 0
    for name in trace_names(TRACES):
        if name < "03":
            continue
        for m in Trace.load(TRACES, name).messages:
            if "Event" in m.message and "ActionID" not in m.message:
                events += m.raw
                count += 1
    parts = []
    for rep in range(repeat):
        prefix = b"%08d" % (20000000 + rep)
        data = _UID.sub(lambda mo, p=prefix: p + mo.group(1), events)
        data = _BRIDGE.sub(lambda mo, p=prefix: mo.group(1) + b": " + p, data)
        parts.append(data)
    data = b"".join(parts)
    return [data[i : i + READ] for i in range(0, len(data), READ)], count * repeat


def ours(reads: list[bytes]) -> tuple[int, Any]:
    from ctid.ami.parser import AMIParser
    from ctid.state.tracker import CallTracker

    parser = AMIParser(expect_banner=False)
    tracker = CallTracker()
    apply_many = tracker.apply_many
    n = 0
    for r in reads:
        msgs = parser.feed(r)
        apply_many(msgs)
        n += len(msgs)
        tracker.drain()  # what ctid's fan-out does after each burst
    return n, tracker


def panoramisk(reads: list[bytes]) -> int:
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
    """panoramisk's whole AMIProtocol.data_received (parse, then its dispatch to a no-op factory): what a
    panoramisk-based daemon pays per event before it keeps any state."""
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


def _best(fn: Any, reads: list[bytes], runs: int = 5) -> tuple[Any, float]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.process_time()
        out = fn(reads)
        best = min(best, time.process_time() - start)
    return out, best


def ami_ingest(env: Env) -> dict[str, Any]:
    reads, expected = stream()
    (n, tracker), seconds = _best(ours, reads)
    if n != expected:
        raise RuntimeError(f"parsed {n} events, expected {expected}")
    if tracker.channels or tracker.calls:
        raise RuntimeError(f"state not empty after the stream: {len(tracker.channels)} channels")
    rate = n / seconds
    try:
        pn, pseconds = _best(panoramisk_protocol, reads)
        reference = pn / pseconds
        parse_n, parse_seconds = _best(panoramisk, reads)
        parse_only = parse_n / parse_seconds
    except ImportError:  # not in the runtime set: only in .venv
        reference = parse_only = 0.0
    ok = rate >= TARGET and (reference == 0.0 or rate >= 3 * reference)
    return result(
        "ctid.ami_ingest",
        rate,
        "events/s",
        reference,
        TARGET,
        events=n,
        ok=ok,
        times_reference=round(rate / reference, 2) if reference else None,
        reference_name="panoramisk AMIProtocol.data_received (parse + dispatch)",
        panoramisk_parse_only=round(parse_only),
        times_panoramisk_parse_only=round(rate / parse_only, 2) if parse_only else None,
    )
