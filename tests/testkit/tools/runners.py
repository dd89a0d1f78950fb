"""Run the proxy in a thread of the test process, or a tool as a separate process, and wait on them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pbxtools
from pbxtools.output import OutputSink
from pbxtools.proxy import ProxyConfig, ProxyServer, SessionObserver

from . import WAIT

TOOLS_DIR = Path(pbxtools.__file__).resolve().parent.parent


class SharedBuffer:
    """A bytes sink that several threads can write to, and the test thread wait on."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._cond = threading.Condition()
        self.writes = 0

    def write(self, data: bytes) -> int:
        with self._cond:
            self._data += data
            self.writes += 1
            self._cond.notify_all()
        return len(data)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        with self._cond:
            return bytes(self._data)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = WAIT) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(bytes(self._data)), timeout):
                raise TimeoutError(
                    f"output condition not met within {timeout} s; output: {bytes(self._data)[-500:]!r}"
                )
            return bytes(self._data)


class ProxyThread:
    """A :class:`ProxyServer` in its own event loop thread, driven from the (blocking) test thread.

    ``make_observer(sink)`` builds the observer inside the loop; ``notes`` collects the status notes.
    """

    def __init__(self, config: ProxyConfig, make_observer: Callable[[OutputSink], SessionObserver]) -> None:
        self.config = config
        self.make_observer = make_observer
        self.notes: list[str] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.sink_error: OSError | None = None
        self.server: ProxyServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxy", daemon=True)

    def __enter__(self) -> ProxyThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> tuple[str, int]:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise TimeoutError("proxy did not start listening")
        if self.error is not None:
            raise self.error
        assert self.server is not None and self.server.address is not None
        return self.server.address

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.address is not None
        return self.server.address[1]

    def note(self, message: str) -> None:
        self.notes.append(message)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        sink = OutputSink()
        sink.start()
        self.server = ProxyServer(self.config, self.make_observer(sink), self.note)
        task = asyncio.create_task(self.server.serve())
        waiter = asyncio.create_task(self.server.wait_listening())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            self._ready.set()
        else:
            waiter.cancel()
        try:
            self.status = await task
        finally:
            await sink.close()
            self.sink_error = sink.error

    def wait(self, timeout: float = WAIT) -> int | None:
        """Wait until the proxy ends by itself; return its status."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("proxy did not end")
        if self.error is not None:
            raise self.error
        return self.status

    def stop(self, timeout: float = WAIT) -> int | None:
        if self._thread.is_alive() and self.loop is not None and self.server is not None:
            self.loop.call_soon_threadsafe(self.server.stop)
        return self.wait(timeout)


class ToolProcess:
    """One of the tools (``python -m pbxtools.<module>``) as a child process, its output collected."""

    def __init__(
        self, module: str, *args: str, cwd: str | os.PathLike[str] | None = None, broken_stdout: bool = False
    ) -> None:
        """``broken_stdout``: standard output is a pipe nobody reads, as after ``| head`` exited."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLS_DIR), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("COLUMNS", "100")
        self.args = [sys.executable, "-m", f"pbxtools.{module}", *args]
        stdout: int = subprocess.PIPE
        if broken_stdout:
            read_end, stdout = os.pipe()
            os.close(read_end)
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
            )
        finally:
            if broken_stdout:
                os.close(stdout)
        self.stdout = SharedBuffer()
        self.stderr = SharedBuffer()
        assert self.proc.stderr is not None
        self._readers = [threading.Thread(target=_copy, args=(self.proc.stderr, self.stderr), daemon=True)]
        if self.proc.stdout is not None:
            self._readers.append(
                threading.Thread(target=_copy, args=(self.proc.stdout, self.stdout), daemon=True)
            )
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> ToolProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)

    def wait_stderr(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        regex = re.compile(pattern)
        self.stderr.wait_for(lambda data: regex.search(data.decode("utf-8", "replace")) is not None, timeout)
        match = regex.search(self.stderr.getvalue().decode("utf-8", "replace"))
        assert match is not None
        return match

    def wait_stdout(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        regex = re.compile(pattern)
        self.stdout.wait_for(lambda data: regex.search(data.decode("utf-8", "replace")) is not None, timeout)
        match = regex.search(self.stdout.getvalue().decode("utf-8", "replace"))
        assert match is not None
        return match

    def listening_port(self, timeout: float = WAIT) -> int:
        """The port the tool listens on, from its "listening on HOST:PORT" note."""
        return int(self.wait_stderr(r"listening on \S+:(\d+),", timeout).group(1))

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    @property
    def out(self) -> str:
        return self.stdout.getvalue().decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.getvalue().decode("utf-8", "replace")


def _copy(stream: BinaryIO, into: SharedBuffer) -> None:
    while True:
        data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not data:
            return
        into.write(data)


def run_tool(
    module: str, *args: str, stdin: bytes = b"", timeout: float = WAIT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool to completion (for lockgraph and --help); ``env`` adds to the environment."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLS_DIR), env.get("PYTHONPATH")]))
    env.setdefault("COLUMNS", "100")
    return subprocess.run(
        [sys.executable, "-m", f"pbxtools.{module}", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
