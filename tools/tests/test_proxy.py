"""The proxy core over real sockets: relaying, closing, refusals, backpressure, failing output."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxtools.ctispy import SpyObserver, SpyOptions, format_message
from pbxtools.framing import LineFramer
from pbxtools.messages import MessageFilter, decode, is_blank
from pbxtools.output import OutputSink
from pbxtools.proxy import Direction, ProxyConfig, Session, SessionObserver
from testkit.tools import WAIT
from testkit.tools.cti import CtiClient, FakeCtid, closed_port
from testkit.tools.runners import ProxyThread, SharedBuffer


def spy(out: SharedBuffer, **options: object) -> Callable[[OutputSink], SessionObserver]:
    return lambda sink: SpyObserver(SpyOptions(**options), sink, out)  # type: ignore[arg-type]


def config(ctid_port: int, **kwargs: object) -> ProxyConfig:
    return ProxyConfig(server_host="127.0.0.1", server_port=ctid_port, listen_port=0, **kwargs)  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def ctid() -> Iterator[FakeCtid]:
    with FakeCtid() as server:
        yield server


def test_relays_both_ways_unchanged_and_shows_each_message(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(ctid.port), spy(out)) as proxy:
        with CtiClient(proxy.port) as client:
            client.send(b'{"class": "login", "commandid": 1}\n{"class": "burst", "count": 4}\n')
            replies = client.read_lines(6)
            client.send(b'{"class": "split", "pie', b'ce": 2}\nnot json \xff\n')
            replies += client.read_lines(2)
            client.send({"class": "bye"})
            replies += client.read_lines(1)
            assert client.read_until_closed() == b""
        assert proxy.wait() == 0
    connection = ctid.wait_connection()
    assert bytes(connection.received) == (
        b'{"class": "login", "commandid": 1}\n{"class": "burst", "count": 4}\n'
        b'{"class": "split", "piece": 2}\nnot json \xff\n{"class": "bye"}\n'
    )
    assert b"\n".join(replies) + b"\n" == bytes(connection.sent)

    lines = out.getvalue().decode().splitlines()
    assert lines[0].startswith("# session 1 started: client 127.0.0.1:")
    assert lines[-1].startswith("# session 1 ended after ") and lines[-1].endswith(
        "server closed the connection"
    )
    shown = lines[1:-1]
    assert [line.split(":", 1)[0] for line in shown].count("client") == 5
    assert [line.split(":", 1)[0] for line in shown].count("server") == 9
    assert 'client: {"class": "split", "piece": 2}' in shown
    assert "client: [undecodable: invalid UTF-8 at byte 9] not json \\xff" in shown
    assert sum(1 for line in shown if line.startswith('server: {"class": "event", "n": ')) == 4


def test_server_refuses(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(closed_port()), spy(out)) as proxy:
        with CtiClient(proxy.port) as client:
            client.send({"class": "login"})
            assert client.read_until_closed() == b""
        assert proxy.wait() == 1
    assert any("cannot connect to server 127.0.0.1:" in n and "Connection refused" in n for n in proxy.notes)
    assert any("closing client 127.0.0.1:" in n for n in proxy.notes)
    assert out.getvalue() == b""


def test_server_not_answering_times_out() -> None:
    # A listening socket whose backlog is full: the kernel drops the proxy's SYN, connect() hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(silent.getsockname())
            cfg = config(silent.getsockname()[1], connect_timeout=0.5)
            with ProxyThread(cfg, spy(SharedBuffer())) as proxy:
                with CtiClient(proxy.port) as client:
                    assert client.read_until_closed() == b""
                assert proxy.wait() == 1
        finally:
            for filler in fillers:
                filler.close()
    assert any("no answer within 0.5 s; closing client" in note for note in proxy.notes), proxy.notes


def test_client_half_close_lets_the_reply_through(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(ctid.port), spy(out)) as proxy:
        with CtiClient(proxy.port) as client:
            client.send({"class": "ping", "commandid": 7})
            client.shutdown_write()
            data = client.read_until_closed()
        assert proxy.wait() == 0
    assert data.startswith(b'{"class": "pong", "replyid": 7') and data.endswith(b"\n")
    assert out.getvalue().decode().rstrip().endswith(": client closed the connection")
    assert proxy.server is not None and proxy.server.sessions[0].reason == "client closed the connection"


def test_client_closing_ends_the_tool_and_the_server_sees_eof(ctid: FakeCtid) -> None:
    with ProxyThread(config(ctid.port), spy(SharedBuffer())) as proxy:
        client = CtiClient(proxy.port)
        client.send({"class": "login"})
        client.read_lines(1)
        client.close()
        assert proxy.wait() == 0
    ctid.wait_connection().wait_eof()


def test_loop_serves_sessions_one_after_the_other(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(ctid.port, loop=True), spy(out)) as proxy:
        for number in (1, 2, 3):
            with CtiClient(proxy.port) as client:
                client.send({"class": "ping", "commandid": number})
                assert client.read_messages(1)[0]["replyid"] == number
            out.wait_for(lambda data, n=number: f"# session {n} ended".encode() in data)
        assert proxy.stop() == 0
    text = out.getvalue().decode()
    markers = [line.split(" after ")[0].split(":")[0] for line in text.splitlines() if line.startswith("#")]
    assert markers == [f"# session {n} {event}" for n in (1, 2, 3) for event in ("started", "ended")]
    assert proxy.server is not None and len(proxy.server.sessions) == 3


def test_second_client_is_refused_while_a_session_runs(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(ctid.port, loop=True), spy(out)) as proxy:
        with CtiClient(proxy.port) as first:
            first.send({"class": "ping", "commandid": 1})
            first.read_lines(1)
            with CtiClient(proxy.port) as second:
                assert second.read_until_closed() == b""
            first.send({"class": "ping", "commandid": 2})
            assert first.read_messages(1)[0]["replyid"] == 2
        assert proxy.stop() == 0
    assert any(n.startswith("refusing client 127.0.0.1:") for n in proxy.notes)
    assert len(ctid.connections) == 1


def test_stop_interrupts_a_session_and_reports_its_end(ctid: FakeCtid) -> None:
    out = SharedBuffer()
    with ProxyThread(config(ctid.port, loop=True), spy(out)) as proxy, CtiClient(proxy.port) as client:
        client.send({"class": "login"})
        client.read_lines(1)
        assert proxy.stop() == 0
        assert client.read_until_closed() == b""
    assert out.getvalue().decode().rstrip().endswith(": interrupted")
    ctid.wait_connection().wait_eof()


def test_linger_bounds_a_peer_that_never_closes() -> None:
    with (
        FakeCtid(silent=True) as ctid,
        ProxyThread(config(ctid.port, linger=0.2), spy(SharedBuffer())) as proxy,
    ):
        # The fake server closes on EOF; keep it from doing so by not reading at all.
        with CtiClient(proxy.port) as client:
            connection = ctid.wait_connection()
            connection.reading.clear()
            client.send({"class": "x"})
            client.shutdown_write()
            assert client.read_until_closed() == b""
        assert proxy.wait() == 0
        assert proxy.server is not None
        assert (
            proxy.server.sessions[0].reason
            == "client closed the connection; the server did not close within 0.2 s"
        )


class _Exploding(SessionObserver):
    async def data(self, session: Session, direction: Direction, data: bytes) -> None:
        raise RuntimeError("boom")


def test_failing_observer_does_not_stop_the_traffic(ctid: FakeCtid) -> None:
    with ProxyThread(config(ctid.port), lambda sink: _Exploding()) as proxy:
        with CtiClient(proxy.port) as client:
            for n in range(3):
                client.send({"class": "ping", "commandid": n})
                assert client.read_messages(1)[0]["replyid"] == n
        assert proxy.wait() == 1
    assert (
        proxy.notes.count(
            "internal error in the output: RuntimeError: boom; output stopped, the traffic is still relayed"
        )
        == 1
    )


class _BlockingStream:
    """An output stream whose writes block until released: a paused terminal."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.entered.set()
        if not self.release.wait(WAIT):
            raise OSError("never released")
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_slow_output_holds_the_relay_back_instead_of_buffering(ctid: FakeCtid) -> None:
    stream = _BlockingStream()
    with ProxyThread(config(ctid.port), spy(stream)) as proxy:  # type: ignore[arg-type]
        with CtiClient(proxy.port) as client:
            client.send({"class": "burst", "count": 20000, "commandid": 1})
            assert stream.entered.wait(WAIT)
            time.sleep(0.5)  # a window in which a relay without backpressure would forward everything
            assert proxy.server is not None
            session = proxy.server.sessions[0]
            # 20000 events are about 1.2 MB; the output queue and one read are a few tens of KB.
            assert session.bytes[Direction.SERVER] < 300_000
            stream.release.set()
            client.read_lines(20001)
            client.send({"class": "bye"})
            client.read_lines(1)
        assert proxy.wait() == 0
    assert stream.data.count(b'server: {"class": "event"') == 20000


@pytest.mark.parametrize("direction", [Direction.CLIENT, Direction.SERVER])
def test_backpressure_bounds_the_buffer_of_a_slow_reader(direction: Direction) -> None:
    limit = 64 * 1024
    chunk = hashlib.sha256(b"pattern").digest() * 2048  # 64 KiB
    with (
        FakeCtid(silent=True) as ctid,
        ProxyThread(config(ctid.port, buffer_limit=limit), spy(SharedBuffer())) as proxy,
    ):
        client = CtiClient(proxy.port)
        connection = ctid.wait_connection()
        assert proxy.server is not None
        wait_until(lambda: bool(proxy.server and proxy.server.sessions), "the session")
        session = proxy.server.sessions[0]
        if direction is Direction.CLIENT:
            connection.reading.clear()
            send: Callable[[bytes], None] = client.sock.sendall
        else:
            send = connection.send
        sent = 0
        stop = threading.Event()

        def sender() -> None:
            nonlocal sent
            while not stop.is_set():
                send(chunk)
                sent += len(chunk)

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        wait_until(lambda: session.backpressure[direction] > 0, "backpressure")
        stop.set()
        assert session.peak_buffer[direction] <= limit + proxy.config.read_size

        # The slow side reads again: everything arrives, unchanged.
        if direction is Direction.CLIENT:
            connection.reading.set()
            thread.join(WAIT)
            received = connection.wait_received(lambda data: len(data) >= sent)
        else:
            data = bytearray()
            deadline = time.monotonic() + WAIT
            while thread.is_alive() or len(data) < sent:
                assert time.monotonic() < deadline, "the client did not get everything"
                client.sock.settimeout(WAIT)
                data += client.sock.recv(1 << 20)
            thread.join(WAIT)
            received = bytes(data)
        assert len(received) == sent
        assert received == chunk * (sent // len(chunk))
        client.close()
        assert proxy.wait() == 0


# -- framing over real sockets, fuzzed ---------------------------------------------------------------------

_line = st.one_of(
    st.dictionaries(
        st.sampled_from(["class", "commandid", "timenow", "x"]), st.integers() | st.text(max_size=6)
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
)


@pytest.fixture(scope="module")
def fuzz_proxy() -> Iterator[tuple[FakeCtid, ProxyThread, SharedBuffer]]:
    out = SharedBuffer()
    with (
        FakeCtid(silent=True) as ctid,
        ProxyThread(
            config(ctid.port, loop=True), spy(out, filter=MessageFilter.from_options(strip=["timenow"]))
        ) as proxy,
    ):
        yield ctid, proxy, out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(_line, max_size=8),
    tail=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_fuzzed_stream_is_relayed_unchanged_and_shown_message_by_message(
    fuzz_proxy: tuple[FakeCtid, ProxyThread, SharedBuffer], lines: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    ctid, proxy, out = fuzz_proxy
    stream = b"".join(line + b"\n" for line in lines) + tail
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    before = len(ctid.connections)
    session_number = before + 1
    with CtiClient(proxy.port) as client:
        for a, b in itertools.pairwise(bounds):
            client.sock.sendall(stream[a:b])
        client.shutdown_write()
        assert client.read_until_closed() == b""
    marker = f"# session {session_number} ended".encode()
    text = out.wait_for(lambda data: marker in data).decode("utf-8", "replace")
    connection = ctid.wait_connection(session_number)
    assert bytes(connection.wait_eof()) == stream

    block = text.split(f"# session {session_number} started")[1].split("\n", 1)[1]
    shown = block.split(marker.decode())[0].splitlines()
    flt = MessageFilter.from_options(strip=["timenow"])
    framer = LineFramer(4 * 1024 * 1024)
    expected = [
        format_message(Direction.CLIENT, decode(f), flt, pretty=False)
        for f in framer.feed(stream) + framer.close()
        if not is_blank(f)
    ]
    assert shown == [line for e in expected for line in e.split("\n")]
