"""The TCP proxy shared by ctispy, ctisave and ctistat.

The proxy listens (by default on 127.0.0.1:50030). When a CTI client connects, it connects to the CTI
server, then relays the bytes both ways, unchanged, and shows each chunk to a :class:`SessionObserver`:
the tool's display, file writer or statistics.

Guarantees:

* Traffic is never altered, dropped or reordered, whatever the observer does. An observer that fails
  (output error, bug) is switched off and the relay goes on.
* Memory is bounded. Each socket reads at most ``read_size`` bytes at a time; when the write buffer of
  one side is above ``buffer_limit``, the relay stops reading from the other side until it drains.
* One session at a time. A client that connects while a session is running is closed at once, with a note.
* Closing is relayed: when one side half-closes, the other side gets EOF, and the relay waits up to
  ``linger`` seconds for the rest of the traffic before closing both connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_PORT = 50030
DEFAULT_SERVER_PORT = 5003
DEFAULT_LISTEN_ADDRESS = "127.0.0.1"
DEFAULT_BUFFER_LIMIT = 64 * 1024
DEFAULT_READ_SIZE = 16 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_LINGER = 5.0
_CLOSE_TIMEOUT = 5.0


class Direction(enum.Enum):
    """Who sent the bytes: the client (towards the server) or the server (towards the client)."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def arrow(self) -> str:
        return "client -> server" if self is Direction.CLIENT else "server -> client"


@dataclass(frozen=True)
class ProxyConfig:
    server_host: str
    server_port: int = DEFAULT_SERVER_PORT
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    listen_port: int = DEFAULT_PORT
    loop: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    linger: float = DEFAULT_LINGER
    buffer_limit: int = DEFAULT_BUFFER_LIMIT
    read_size: int = DEFAULT_READ_SIZE


def _counters() -> dict[Direction, int]:
    return dict.fromkeys(Direction, 0)


@dataclass
class Session:
    """One client connection and its server connection, with relay counters."""

    number: int
    client: str
    server: str
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    ended: float | None = None
    reason: str | None = None
    bytes: dict[Direction, int] = field(default_factory=_counters)
    reads: dict[Direction, int] = field(default_factory=_counters)
    # How often the relay in that direction had to wait for the receiving side (backpressure), and the
    # largest write buffer it saw towards that side. Both are for tests and diagnostics.
    backpressure: dict[Direction, int] = field(default_factory=_counters)
    peak_buffer: dict[Direction, int] = field(default_factory=_counters)

    @property
    def duration(self) -> float:
        end = self.ended if self.ended is not None else time.monotonic()
        return end - self.started


class SessionObserver:
    """What the tools plug into the proxy. Methods may wait (for output space): the relay then waits."""

    async def session_started(self, session: Session) -> None:
        """The client is accepted and the server connected."""

    async def data(self, session: Session, direction: Direction, data: bytes) -> None:
        """``data`` was relayed in ``direction`` (already handed to the receiving socket)."""

    async def session_ended(self, session: Session) -> None:
        """Both connections are closed; ``session.reason`` says why."""


class ProxyError(Exception):
    """The proxy cannot run at all (for instance, it cannot listen)."""


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # asyncio's connect errors carry a longer, less useful strerror
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def stderr_note(prog: str) -> Callable[[str], None]:
    def note(message: str) -> None:
        print(f"{prog}: {message}", file=sys.stderr, flush=True)

    return note


@dataclass(frozen=True)
class _End:
    direction: Direction
    eof: bool
    detail: str = ""

    def describe(self) -> str:
        who = self.direction.value
        if self.eof:
            return f"{who} closed the connection"
        return f"{who} connection failed: {self.detail}"


class ProxyServer:
    """Listen, accept one client at a time, connect to the server and relay."""

    def __init__(
        self,
        config: ProxyConfig,
        observer: SessionObserver,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.observer = observer
        self._note = note or stderr_note("proxy")
        self.address: tuple[str, int] | None = None
        self.sessions: list[Session] = []
        self.failed_connects = 0
        self.observer_error: BaseException | None = None
        self._stop = asyncio.Event()  # asyncio events bind to the running loop on first use
        self._listening = asyncio.Event()
        self._session_lock = asyncio.Lock()
        self._claimed_by: asyncio.Task[object] | None = None  # the client being served, if any
        self._handlers: set[asyncio.Task[object]] = set()

    # -- life cycle ------------------------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until the session ends (or, with ``loop``, until :meth:`stop`). Return the exit status."""
        cfg = self.config
        try:
            server = await asyncio.start_server(
                self._on_client,
                cfg.listen_address,
                cfg.listen_port,
                limit=cfg.buffer_limit,
                reuse_address=True,
            )
        except OSError as exc:
            raise ProxyError(
                f"cannot listen on {format_address((cfg.listen_address, cfg.listen_port))}: "
                f"{describe_error(exc)}"
            ) from exc
        sockname = server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        self._note(
            f"listening on {format_address(self.address)}, "
            f"relaying to {format_address((cfg.server_host, cfg.server_port))}"
        )
        self._listening.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            handlers = [task for task in self._handlers if not task.done()]
            for task in handlers:
                task.cancel()
            if handlers:
                await asyncio.wait(handlers)
            await server.wait_closed()
        failed = self.failed_connects > 0 or self.observer_error is not None
        return 1 if failed else 0

    def stop(self) -> None:
        """Stop listening; a running session is closed (its end is still reported)."""
        self._stop.set()

    async def wait_listening(self) -> tuple[str, int]:
        await self._listening.wait()
        assert self.address is not None
        return self.address

    # -- sessions --------------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = format_address(writer.get_extra_info("peername"))
        task = asyncio.current_task()
        assert task is not None
        # The claim is taken with no await since the check: two clients can never both pass.
        if self._stop.is_set() or self._claimed_by is not None:
            self._note(f"refusing client {peer}: one session at a time, and a session is in progress")
            await self._close(writer)
            return
        self._claimed_by = task
        self._handlers.add(task)
        try:
            # The previous session may still be reporting its end: wait for it, so outputs never mix.
            async with self._session_lock:
                if self._stop.is_set():
                    await self._close(writer)
                    return
                await self._run_session(reader, writer, peer)
        except Exception as exc:  # a bug here must not leave sockets open or the tool hanging
            self._note(f"internal error in session: {type(exc).__name__}: {exc}")
            writer.transport.abort()
        finally:
            self._release(task)
            self._handlers.discard(task)
            if not self.config.loop:
                self._stop.set()

    def _release(self, task: asyncio.Task[object] | None) -> None:
        if task is not None and self._claimed_by is task:
            self._claimed_by = None

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        cfg = self.config
        server_name = format_address((cfg.server_host, cfg.server_port))
        self._tune(writer)
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.server_host, cfg.server_port, limit=cfg.buffer_limit),
                cfg.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            reason = (
                f"no answer within {cfg.connect_timeout:g} s"
                if isinstance(exc, asyncio.TimeoutError)
                else describe_error(exc)
            )
            self.failed_connects += 1
            self._note(f"cannot connect to server {server_name}: {reason}; closing client {peer}")
            await self._close(writer)
            return
        except BaseException:
            writer.transport.abort()
            raise
        self._tune(server_writer)

        session = Session(number=len(self.sessions) + 1, client=peer, server=server_name)
        self.sessions.append(session)
        pumps: set[asyncio.Task[_End]] = set()
        try:
            await self._observe(self.observer.session_started, session)
            pumps = {
                asyncio.create_task(self._pump(reader, server_writer, Direction.CLIENT, session)),
                asyncio.create_task(self._pump(server_reader, writer, Direction.SERVER, session)),
            }
            session.reason = await self._relay(pumps)
        except asyncio.CancelledError:
            session.reason = "interrupted"
            raise
        finally:
            for pump in pumps:
                pump.cancel()
            if pumps:
                await asyncio.wait(pumps)
            await asyncio.gather(self._close(writer), self._close(server_writer))
            session.ended = time.monotonic()
            self._release(asyncio.current_task())  # the next client may come in while this end is reported
            await self._observe(self.observer.session_ended, session)

    async def _relay(self, pumps: set[asyncio.Task[_End]]) -> str:
        done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        ends = sorted((task.result() for task in done), key=lambda end: end.direction.value)
        first = ends[0]
        if first.eof and pending:
            # Half-close relayed: let the other direction finish, within the linger time.
            done, pending = await asyncio.wait(pending, timeout=self.config.linger)
            if pending:
                other = "server" if first.direction is Direction.CLIENT else "client"
                return f"{first.describe()}; the {other} did not close within {self.config.linger:g} s"
        return first.describe()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
        session: Session,
    ) -> _End:
        cfg = self.config
        receiver = Direction.SERVER if direction is Direction.CLIENT else Direction.CLIENT
        while True:
            try:
                data = await reader.read(cfg.read_size)
            except OSError as exc:
                return _End(direction, eof=False, detail=describe_error(exc))
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof() and not writer.transport.is_closing():
                        writer.write_eof()
                return _End(direction, eof=True)
            writer.write(data)
            session.bytes[direction] += len(data)
            session.reads[direction] += 1
            buffered = writer.transport.get_write_buffer_size()
            session.peak_buffer[direction] = max(session.peak_buffer[direction], buffered)
            if buffered > cfg.buffer_limit:
                session.backpressure[direction] += 1
            await self._observe(self.observer.data, session, direction, data)
            try:
                await writer.drain()
            except (OSError, RuntimeError) as exc:  # RuntimeError: the transport was closed under us
                return _End(receiver, eof=False, detail=describe_error(exc))

    async def _observe(self, method: Callable[..., object], *args: object) -> None:
        if self.observer_error is not None:
            return
        try:
            await method(*args)  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.observer_error = exc
            if isinstance(exc, OSError):  # output.OutputError included
                what = f"cannot write output: {describe_error(exc)}"
            else:
                what = f"internal error in the output: {type(exc).__name__}: {exc}"
            self._note(f"{what}; output stopped, the traffic is still relayed")

    def _tune(self, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(high=self.config.buffer_limit)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
        except (TimeoutError, OSError):
            writer.transport.abort()
