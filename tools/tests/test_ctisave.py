"""ctisave as a process: the two files, exact copies or stripped for diffing."""

from __future__ import annotations

import json
from pathlib import Path

from pbxtools.ctisave import stripped_line
from pbxtools.framing import Frame
from pbxtools.messages import MessageFilter
from testkit.tools.cti import CtiClient, FakeCtid
from testkit.tools.runners import ToolProcess

STRIP = ["--strip", "timenow", "--strip", "commandid", "--strip", "replyid"]


def save_session(
    tmp_path: Path, name: str, *options: str, commandid: int = 1
) -> tuple[Path, Path, bytes, bytes]:
    client_file, server_file = tmp_path / f"{name}-client", tmp_path / f"{name}-server"
    with FakeCtid() as ctid:
        args = [
            "127.0.0.1",
            str(client_file),
            str(server_file),
            "--server-port",
            str(ctid.port),
            "--port",
            "0",
        ]
        with ToolProcess("ctisave", *args, *options) as tool:
            with CtiClient(tool.listening_port()) as client:
                client.send({"class": "login", "commandid": commandid, "timenow": commandid * 1.5})
                client.read_lines(1)
                client.send({"class": "burst", "count": 3, "commandid": commandid + 1})
                client.read_lines(4)
                client.send(b"not json\n", {"class": "bye", "commandid": commandid + 2})
                client.read_lines(2)
                assert client.read_until_closed() == b""
            assert tool.wait() == 0
        connection = ctid.wait_connection()
        assert "session 1 started" in tool.err and "session 1 ended" in tool.err
        return client_file, server_file, bytes(connection.received), bytes(connection.sent)


def test_without_strip_the_files_are_exact_copies(tmp_path: Path) -> None:
    client_file, server_file, client_sent, server_sent = save_session(tmp_path, "a")
    assert client_file.read_bytes() == client_sent
    assert server_file.read_bytes() == server_sent


def test_strip_makes_two_sessions_comparable(tmp_path: Path) -> None:
    a_client, a_server, _, a_sent = save_session(tmp_path, "a", *STRIP, commandid=1)
    b_client, b_server, _, b_sent = save_session(tmp_path, "b", *STRIP, commandid=100)
    assert a_sent != b_sent  # timenow and replyid differ on the wire...
    assert a_client.read_bytes() == b_client.read_bytes()  # ...but not in the saved files
    assert a_server.read_bytes() == b_server.read_bytes()
    lines = a_client.read_text().splitlines()
    assert lines == ['{"class": "login"}', '{"class": "burst", "count": 3}', "not json", '{"class": "bye"}']
    for line in a_server.read_text().splitlines():
        assert not {"timenow", "replyid"} & set(json.loads(line))


def test_cannot_open_output_file(tmp_path: Path) -> None:
    with ToolProcess(
        "ctisave", "h", str(tmp_path / "missing" / "c"), str(tmp_path / "s"), "--port", "0"
    ) as tool:
        assert tool.wait() == 1
    assert f"ctisave: cannot open {tmp_path / 'missing' / 'c'}: No such file or directory" in tool.err


def test_same_file_twice_is_a_usage_error(tmp_path: Path) -> None:
    with ToolProcess("ctisave", "h", str(tmp_path / "x"), str(tmp_path / "x")) as tool:
        assert tool.wait() == 2
    assert "CLIENT_FILE and SERVER_FILE must be different files" in tool.err


def test_stripped_line_cases() -> None:
    flt = MessageFilter.from_options(strip=["timenow"])
    assert stripped_line(Frame(b'{"class": "a", "timenow": 1}', 29), flt, 1024) == b'{"class": "a"}\n'
    assert stripped_line(Frame(b"\xffraw", 5), flt, 1024) == b"\xffraw\n"
    assert stripped_line(Frame(b"", 1), flt, 1024) == b"\n"
    assert stripped_line(Frame(b'{"cl', 4, complete=False), flt, 1024) == b'{"cl'
    assert stripped_line(Frame(b"xx", 5000, oversized=True), flt, 1024) == (
        b"#ctisave: line of 5000 bytes over --max-message-size, not saved\n"
    )
