"""The bounded output sink: order, backpressure when the output is slow, failure."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading

import pytest

from pbxtools.output import OutputError, OutputSink
from testkit.tools import WAIT


def test_writes_in_order_and_close_flushes() -> None:
    a, b = io.BytesIO(), io.BytesIO()

    async def main() -> None:
        sink = OutputSink(max_pending=3)
        for n in range(50):
            await sink.write(a if n % 2 else b, b"%d," % n)
        await sink.close()

    asyncio.run(main())
    assert a.getvalue() == b"".join(b"%d," % n for n in range(1, 50, 2))
    assert b.getvalue() == b"".join(b"%d," % n for n in range(0, 50, 2))


class Gate(io.RawIOBase):
    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.entered.set()
        assert self.open.wait(WAIT)
        self.data += data
        return len(data)


def test_a_slow_output_makes_writers_wait_instead_of_queueing_everything() -> None:
    gate = Gate()

    async def main() -> int:
        sink = OutputSink(max_pending=4)
        accepted = 0

        async def producer() -> None:
            nonlocal accepted
            for n in range(1000):
                await sink.write(gate, b"%d\n" % n)  # type: ignore[arg-type]
                accepted += 1

        task = asyncio.create_task(producer())
        while not gate.entered.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # a window in which an unbounded sink would take all 1000
        held_back = accepted
        gate.open.set()
        await asyncio.wait_for(task, WAIT)
        await sink.close()
        return held_back

    held_back = asyncio.run(main())
    assert held_back <= 4 + 64 + 1  # the queue, one batch being written, one waiting put
    assert gate.data == b"".join(b"%d\n" % n for n in range(1000))


class Broken(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        raise OSError(28, "No space left on device")


def test_failure_is_recorded_and_later_writes_fail_fast() -> None:
    async def main() -> OutputSink:
        sink = OutputSink(max_pending=2)
        await sink.write(Broken(), b"x")  # type: ignore[arg-type]
        while sink.error is None:
            await asyncio.sleep(0.01)
        with pytest.raises(OutputError, match="No space left on device"):
            await sink.write(Broken(), b"y")  # type: ignore[arg-type]
        await asyncio.wait_for(sink.close(), WAIT)
        return sink

    sink = asyncio.run(main())
    assert isinstance(sink.error, OSError)


def test_writes_queued_before_a_failure_never_block() -> None:
    async def main() -> None:
        sink = OutputSink(max_pending=2)
        for _ in range(20):  # some go in before the failure is seen, the rest fail fast
            with contextlib.suppress(OutputError):
                await asyncio.wait_for(sink.write(Broken(), b"x"), WAIT)  # type: ignore[arg-type]
        await asyncio.wait_for(sink.close(), WAIT)

    asyncio.run(main())
