"""ctistat: the counters, and the tool as a process."""

from __future__ import annotations

import json

from pbxtools.ctistat import SessionStats
from pbxtools.proxy import Direction, Session
from testkit.tools.cti import CtiClient, FakeCtid
from testkit.tools.runners import ToolProcess


def test_counts_per_direction_and_class() -> None:
    stats = SessionStats(max_message_size=1024)
    stats.feed(Direction.CLIENT, b'{"class": "login"}\n{"class": "pi')
    stats.feed(Direction.CLIENT, b'ng"}\n\nnot json\n')
    stats.feed(Direction.SERVER, b'{"class": "login", "ok": true}\n{"x": 1}\n' + b"y" * 2000 + b'\n{"class"')
    stats.finish()
    assert stats.totals[Direction.CLIENT].messages == 3
    assert stats.totals[Direction.CLIENT].bytes == 19 + 18 + 1 + 9
    assert stats.totals[Direction.SERVER].messages == 4
    assert stats.classes["login"][Direction.CLIENT].bytes == 19
    assert stats.classes["login"][Direction.SERVER].bytes == 31
    assert stats.classes["ping"][Direction.CLIENT].messages == 1
    assert stats.classes["(undecodable)"][Direction.CLIENT].messages == 1
    assert stats.classes["(no class)"][Direction.SERVER].messages == 1
    assert stats.classes["(too large)"][Direction.SERVER].bytes == 2001
    assert stats.classes["(incomplete)"][Direction.SERVER].bytes == 8
    assert stats.largest is not None
    assert (stats.largest.direction, stats.largest.size, stats.largest.label) == (
        Direction.SERVER,
        2001,
        "(too large)",
    )

    session = Session(1, "127.0.0.1:1000", "ctid:5003", reason="client closed the connection")
    session.ended = session.started + 2.5
    report = stats.report(session)
    assert "session 1: client 127.0.0.1:1000, server ctid:5003" in report
    assert "duration  2.500 s" in report
    assert "largest message: 2001 bytes, server -> client, class (too large)" in report
    as_dict = stats.as_dict(session)
    assert as_dict["directions"]["client"] == {"messages": 3, "bytes": 47}
    assert as_dict["duration"] == 2.5
    json.dumps(as_dict)


def test_empty_session() -> None:
    stats = SessionStats()
    stats.finish()
    report = stats.report(Session(1, "a:1", "b:2"))
    assert "largest message: none (no messages)" in report


def test_ctistat_prints_statistics_when_the_session_ends() -> None:
    with (
        FakeCtid() as ctid,
        ToolProcess("ctistat", "127.0.0.1", "--server-port", str(ctid.port), "--port", "0") as tool,
    ):
        with CtiClient(tool.listening_port()) as client:
            client.send({"class": "login", "commandid": 1})
            client.read_lines(1)
            client.send({"class": "burst", "count": 10})
            client.read_lines(11)
        assert tool.wait() == 0
        connection = ctid.wait_connection()
        sent, received = len(connection.sent), len(connection.received)
    out = tool.out
    assert out.startswith("session 1: client 127.0.0.1:")
    assert "ended     client closed the connection" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["client"][-2:] == ["2", str(received)]
    assert rows["server"][-2:] == ["12", str(sent)]
    assert rows["event"][1:] == ["0", "0", "10", rows["event"][4]]
    assert "largest message:" in out


def test_ctistat_json_one_line_per_session() -> None:
    with (
        FakeCtid() as ctid,
        ToolProcess(
            "ctistat", "127.0.0.1", "--server-port", str(ctid.port), "--port", "0", "--json", "--loop"
        ) as tool,
    ):
        port = tool.listening_port()
        for number in (1, 2):
            with CtiClient(port) as client:
                client.send({"class": "ping", "commandid": number})
                client.read_lines(1)
            tool.wait_stdout(f'"session": {number},')
        tool.interrupt()
        assert tool.wait() == 0
    reports = [json.loads(line) for line in tool.out.splitlines()]
    assert [r["session"] for r in reports] == [1, 2]
    assert reports[0]["classes"]["ping"]["client"]["messages"] == 1
    assert reports[0]["classes"]["pong"]["server"]["messages"] == 1
    assert reports[1]["largest"]["direction"] in ("client", "server")
