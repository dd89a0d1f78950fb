"""The threaded AMI test server, driven by a plain blocking socket (as a non-Twisted component would)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ctid.ami.parser import AMIParser
from testkit.ami.server_threaded import ThreadedAMITestServer
from testkit.ami.traces import Trace

TRACE_DIR = Path(__file__).parent / "data" / "asterisk-traces"


def receive_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_messages(sock: socket.socket, parser: AMIParser, count: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    while len(out) < count:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        out += parser.feed(chunk)
    return out


def test_records_actions_and_answers_scripted_replies() -> None:
    with ThreadedAMITestServer(username="confgend", secret="s3cret") as server:
        server.reply_with(
            "Command", {"Response": "Success", "Message": "Command output follows", "Output": "ok"}
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            parser = AMIParser()
            sock.sendall(b"Action: Login\r\nActionID: 1\r\nUsername: confgend\r\nSecret: s3cret\r\n\r\n")
            login, booted = read_messages(sock, parser, 2)
            assert parser.banner == "Asterisk Call Manager/9.0.0"
            assert login == {"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"}
            assert booted["Event"] == "FullyBooted"
            sock.sendall(b"Action: Command\r\nActionID: 2\r\nCommand: pjsip reload\r\n\r\n")
            [answer] = read_messages(sock, parser, 1)
            assert (answer["ActionID"], answer["Output"]) == ("2", "ok")
            assert server.wait_for_action("command", timeout=5)["Command"] == "pjsip reload"
            assert server.send_event({"Event": "Reload", "Module": "res_pjsip.so"}) == 1
            [event] = read_messages(sock, parser, 1)
            assert event == {"Event": "Reload", "Module": "res_pjsip.so"}
            sock.sendall(b"Action: Logoff\r\nActionID: 3\r\n\r\n")
            [bye] = read_messages(sock, parser, 1)
            assert bye["Response"] == "Goodbye"
            assert sock.recv(100) == b""
        assert [a.name for a in server.actions] == ["Login", "Command", "Logoff"]
        assert server.wait_until(lambda: not server.open_connections, 5)
        with pytest.raises(TimeoutError):
            server.wait_for_action("Never", timeout=0.05)


def test_replays_a_trace_byte_for_byte() -> None:
    name = "06-pjsip-register"
    trace = Trace.load(TRACE_DIR, name)
    with ThreadedAMITestServer(username="refadmin", secret="refadmin-secret", trace=trace) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall((TRACE_DIR / f"{name}.ami-sent.raw").read_bytes())
            assert receive_all(sock) == (TRACE_DIR / f"{name}.ami.raw").read_bytes()
        assert server.logins == 1


def test_refused_login_closes_and_stop_drops_connections() -> None:
    server = ThreadedAMITestServer(secret="right")
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"Action: Login\r\nUsername: ctid\r\nSecret: wrong\r\n\r\n")
            data = receive_all(sock)
        assert data.endswith(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n")
        assert server.login_failures == 1
        held = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        server.wait_until(lambda: server.open_connections, 5)
    finally:
        server.stop()
    with held:
        assert receive_all(held) == b"Asterisk Call Manager/9.0.0\r\n"
