"""ctispy as a process, between the CTI test server and a client, over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from testkit.tools.cti import CtiClient, FakeCtid, closed_port
from testkit.tools.runners import ToolProcess


@pytest.fixture
def ctid() -> Iterator[FakeCtid]:
    with FakeCtid() as server:
        yield server


def ctispy(ctid_port: int, *options: str) -> ToolProcess:
    return ToolProcess("ctispy", "127.0.0.1", "--server-port", str(ctid_port), "--port", "0", *options)


def session(tool: ToolProcess) -> None:
    """A short scripted session: login, a burst of events in one segment, a split message, bye."""
    with CtiClient(tool.listening_port()) as client:
        client.send({"class": "login", "commandid": 1, "timenow": 1.5})
        assert client.read_messages(1)[0]["class"] == "login"
        client.send({"class": "burst", "count": 3, "commandid": 2})
        assert [m["class"] for m in client.read_messages(4)] == ["event"] * 3 + ["burst_done"]
        client.send({"class": "split", "commandid": 3})
        assert client.read_messages(1)[0]["split"] is True
        client.send({"class": "bye", "commandid": 4})
        client.read_messages(1)
        assert client.read_until_closed() == b""


def shown(tool: ToolProcess) -> list[str]:
    return [line for line in tool.out.splitlines() if not line.startswith("#")]


def test_default_output_one_message_per_line(ctid: FakeCtid) -> None:
    with ctispy(ctid.port) as tool:
        session(tool)
        assert tool.wait() == 0
    lines = shown(tool)
    assert lines[0] == 'client: {"class": "login", "commandid": 1, "timenow": 1.5}'
    assert lines[1].startswith('server: {"class": "login", "replyid": 1, "timenow": ')
    assert sum(line.startswith('server: {"class": "event", "n": ') for line in lines) == 3
    assert sum(line.startswith('server: {"class": "event", "split": true') for line in lines) == 1
    for line in lines:
        json.loads(line.split(": ", 1)[1])
    assert tool.out.splitlines()[0].startswith("# session 1 started: client 127.0.0.1:")
    assert tool.out.splitlines()[-1].endswith("server closed the connection")
    assert "listening on 127.0.0.1:" in tool.err


def test_strip_include_and_hiding_a_side(ctid: FakeCtid) -> None:
    with ctispy(
        ctid.port,
        "--strip",
        "timenow",
        "--strip",
        "replyid",
        "--include",
        "class=event",
        "--include",
        "class=bye",
        "--no-client",
    ) as tool:
        session(tool)
        assert tool.wait() == 0
    assert shown(tool) == [
        'server: {"class": "event", "n": 0}',
        'server: {"class": "event", "n": 1}',
        'server: {"class": "event", "n": 2}',
        'server: {"class": "event", "split": true}',
        'server: {"class": "bye"}',
    ]


def test_no_server(ctid: FakeCtid) -> None:
    with ctispy(ctid.port, "--no-server", "--strip", "commandid") as tool:
        session(tool)
        assert tool.wait() == 0
    assert shown(tool) == [
        'client: {"class": "login", "timenow": 1.5}',
        'client: {"class": "burst", "count": 3}',
        'client: {"class": "split"}',
        'client: {"class": "bye"}',
    ]


def test_pretty_print(ctid: FakeCtid) -> None:
    with ctispy(ctid.port, "--pretty-print", "--no-server") as tool:
        with CtiClient(tool.listening_port()) as client:
            client.send({"class": "login", "commandid": 1})
            client.read_lines(1)
        assert tool.wait() == 0
    assert shown(tool) == ["client: {", '  "class": "login",', '  "commandid": 1', "}"]


def test_raw_shows_bytes_and_says_what_is_inactive(ctid: FakeCtid) -> None:
    with ctispy(ctid.port, "--raw", "--strip", "timenow", "--pretty-print", "--no-server") as tool:
        with CtiClient(tool.listening_port()) as client:
            client.send(b'{"class": "ping"}\n{"class": "ping"}\n')
            client.read_lines(2)
        assert tool.wait() == 0
    assert "ctispy: --pretty-print, --strip inactive with --raw: the messages are not decoded" in tool.err
    raw = "".join(line.split("] ", 1)[1] for line in shown(tool))
    assert raw == '{"class": "ping"}\\n{"class": "ping"}\\n'
    assert all(line.startswith("client: [") and " bytes] " in line for line in shown(tool))


def test_undecodable_line_is_marked_and_still_forwarded(ctid: FakeCtid) -> None:
    with ctispy(ctid.port) as tool:
        with CtiClient(tool.listening_port()) as client:
            client.send(b"hello \x1b[31m\n")
            assert client.read_messages(1) == [{"class": "error", "error": "invalid message"}]
        assert tool.wait() == 0
    assert "client: [undecodable: invalid JSON: Expecting value at column 1] hello \\x1b[31m" in shown(tool)
    assert ctid.wait_connection().wait_received(lambda data: data == b"hello \x1b[31m\n")


def test_server_refusing_closes_the_client_and_fails(ctid: FakeCtid) -> None:
    port = closed_port()
    with ToolProcess("ctispy", "127.0.0.1", "--server-port", str(port), "--port", "0") as tool:
        with CtiClient(tool.listening_port()) as client:
            assert client.read_until_closed() == b""
        assert tool.wait() == 1
    assert (
        f"ctispy: cannot connect to server 127.0.0.1:{port}: Connection refused; closing client" in tool.err
    )


def test_loop_keeps_listening_until_sigint(ctid: FakeCtid) -> None:
    with ctispy(ctid.port, "--loop") as tool:
        port = tool.listening_port()
        for number in (1, 2):
            with CtiClient(port) as client:
                client.send({"class": "ping", "commandid": number})
                client.read_lines(1)
            tool.wait_stdout(f"# session {number} ended")
        tool.interrupt()
        assert tool.wait() == 0
    assert tool.out.count("started: client") == 2
    assert "Traceback" not in tool.err


def test_sigint_during_a_session_reports_its_end(ctid: FakeCtid) -> None:
    with ctispy(ctid.port) as tool, CtiClient(tool.listening_port()) as client:
        client.send({"class": "ping"})
        client.read_lines(1)
        tool.wait_stdout(r'server: \{"class": "pong"')
        tool.interrupt()
        assert tool.wait() == 0
        assert client.read_until_closed() == b""
    assert tool.out.rstrip().endswith(": interrupted")


def test_cannot_listen_twice_on_one_port(ctid: FakeCtid) -> None:
    with ctispy(ctid.port) as first:
        port = first.listening_port()
        with ToolProcess(
            "ctispy", "127.0.0.1", "--server-port", str(ctid.port), "--port", str(port)
        ) as second:
            assert second.wait() == 1
        assert f"ctispy: cannot listen on 127.0.0.1:{port}: Address already in use" in second.err
        first.interrupt()
        assert first.wait() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: SERVER"),
        (["h", "--include", "class"], "expected KEY=VALUE"),
        (["h", "--port", "70000"], "port must be between 0 and 65535"),
        (["h", "--server-port", "0"], "port must be between 1 and 65535"),
        (["h", "--connect-timeout", "-1"], "must be a positive number"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    with ToolProcess("ctispy", *args) as tool:
        assert tool.wait() == 2
    assert message in tool.err


def test_closed_stdout_stops_the_output_but_not_the_traffic(ctid: FakeCtid) -> None:
    args = ["127.0.0.1", "--server-port", str(ctid.port), "--port", "0"]
    with ToolProcess("ctispy", *args, broken_stdout=True) as tool:  # like `ctispy ... | head -1`
        with CtiClient(tool.listening_port()) as client:
            for n in range(20):
                client.send({"class": "burst", "count": 100, "commandid": n})
                assert len(client.read_lines(101)) == 101
        assert tool.wait() == 1
    assert (
        "ctispy: cannot write output: Broken pipe; output stopped, the traffic is still relayed" in tool.err
    )
    assert "Traceback" not in tool.err
