"""pbx-confgen against scripted servers: success, every failure, local copy, timeouts, no Twisted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from confgend import client

CONTENT = b"[general]\nx = 1\n"


class Server:
    """One-shot TCP server answering every connection with `answer(request)` (None: say nothing)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    request = conn.recv(1024)
                except OSError:
                    continue
                reply = self.answer(request)
                if reply is None:
                    self.stop.wait(3)
                    continue
                conn.sendall(reply)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(answer):
        server = Server(answer)
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        server.close()


def run(
    port: int, cache: Path, *extra: str, timeout: str = "2", syslog: str | None = None
) -> tuple[int, bytes, str]:
    cmd = [sys.executable, "-m", "confgend.client", "asterisk/pjsip.conf", "--port", str(port)]
    cmd += ["--cache-dir", str(cache), "--connect-timeout", "1", "--timeout", timeout, *extra]
    env = {**os.environ, "PBX_CONFGEN_SYSLOG_SOCKET": syslog or str(cache / "no-syslog-here")}
    proc = subprocess.run(cmd, capture_output=True, timeout=30, check=False, env=env)
    return proc.returncode, proc.stdout, proc.stderr.decode()


def test_success_prints_and_keeps_a_copy(serve, tmp_path: Path) -> None:
    port = serve(
        lambda req: b"OK %d fresh\n" % len(CONTENT) + CONTENT if req == b"asterisk/pjsip.conf\n" else b""
    )
    code, out, err = run(port, tmp_path)
    assert (code, out, err) == (0, CONTENT, "")
    assert (tmp_path / "asterisk/pjsip.conf").read_bytes() == CONTENT
    assert not list((tmp_path / "asterisk").glob("*.tmp"))


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"ERR database down\n", "confgend: database down"),
        (b"OK 100 fresh\n[general]\n", "cut short"),
        (b"garbage\n", "garbled"),
        (b"", "garbled"),
        (None, "no complete answer within 1 s"),
    ],
)
def test_failure_prints_the_local_copy(serve, tmp_path: Path, answer: bytes | None, why: str) -> None:
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    port = serve(lambda req: answer)
    started = time.monotonic()
    code, out, err = run(port, tmp_path, timeout="1")
    assert time.monotonic() - started < 10
    assert (code, out) == (0, b"old copy\n")
    assert why in err and "local copy" in err


def test_a_copy_that_is_not_fresh_is_printed_with_a_warning(serve, tmp_path: Path) -> None:
    """confgend could not generate the file (database down) and sent its last good copy: say so."""
    port = serve(lambda req: b"OK %d cached\n" % len(CONTENT) + CONTENT)
    code, out, err = run(port, tmp_path)
    assert (code, out) == (0, CONTENT)
    assert "not fresh" in err


def test_after_a_timeout_the_next_runs_fall_back_at_once(serve, tmp_path: Path) -> None:
    """Asterisk runs the client ~19 times for pjsip.conf at start: a frozen confgend costs one timeout, the
    other runs wait only the quick timeout; the window ends, and a quick failure does not extend it."""
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    frozen = serve(lambda req: None)
    window = ("--retry-after", "3", "--quick-timeout", "0.2", "--probe-interval", "0")  # every run tries
    started = time.monotonic()
    assert run(frozen, tmp_path, *window, timeout="1.5")[:2] == (0, b"old copy\n")
    assert time.monotonic() - started >= 1.5  # the first run waits the full timeout
    assert (tmp_path / client.UNREACHABLE).exists()
    for _ in range(3):
        started = time.monotonic()
        code, out, err = run(frozen, tmp_path, *window, timeout="1.5")
        assert (code, out) == (0, b"old copy\n") and "within 0.2 s" in err
        assert time.monotonic() - started < 1.2  # the quick timeout (plus the interpreter's start)
    time.sleep(3)  # the window has passed: the quick failures above did not extend it
    started = time.monotonic()
    assert run(frozen, tmp_path, *window, timeout="1.5")[:2] == (0, b"old copy\n")
    assert time.monotonic() - started >= 1.5


def test_within_the_window_one_run_per_probe_interval_tries_the_others_print_the_copy_at_once(
    serve, tmp_path: Path
) -> None:
    """Asterisk answers no SIP request until its start is over, which runs the client ~40 times: after a
    timeout, a failed quick try makes the next runs of the probe interval print the copy without trying;
    once the interval has passed a run tries again, and finds confgend back."""
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    (tmp_path / client.UNREACHABLE).touch()  # a full timeout has just happened
    frozen = serve(lambda req: None)
    asked: list[bytes] = []
    back = serve(lambda req: asked.append(req) or b"OK %d fresh\n" % len(CONTENT) + CONTENT)
    window = ("--retry-after", "60", "--quick-timeout", "0.5", "--probe-interval", "2")
    started = time.monotonic()
    code, out, err = run(frozen, tmp_path, *window)
    assert (code, out) == (0, b"old copy\n") and "within 0.5 s" in err
    assert time.monotonic() - started >= 0.5
    assert (tmp_path / client.PROBED).exists()
    for _ in range(3):  # confgend is back, but the runs of the probe interval do not ask it
        started = time.monotonic()
        code, out, err = run(back, tmp_path, *window)
        assert (code, out) == (0, b"old copy\n") and "did not answer a try" in err
        assert time.monotonic() - started < 0.5  # no try: the interpreter's start only
    assert asked == []
    time.sleep(2)
    assert run(back, tmp_path, *window)[:2] == (0, CONTENT)  # the interval has passed: it tries, fresh
    assert asked == [b"asterisk/pjsip.conf\n"]
    assert not (tmp_path / client.UNREACHABLE).exists() and not (tmp_path / client.PROBED).exists()


def test_a_success_ends_the_window(serve, tmp_path: Path) -> None:
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    (tmp_path / client.UNREACHABLE).touch()
    port = serve(lambda req: b"OK %d fresh\n" % len(CONTENT) + CONTENT)
    assert run(port, tmp_path, "--retry-after", "60")[:2] == (0, CONTENT)  # confgend is back: fresh
    assert not (tmp_path / client.UNREACHABLE).exists()


def test_nothing_listening_and_no_copy_exits_nonzero(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        code, out, err = run(port, tmp_path)
    assert (code, out) == (1, b"")
    assert "cannot connect" in err and "no local copy" in err


def test_usage_error(tmp_path: Path) -> None:
    assert client.main(["../../etc/shadow"]) == 2


def test_client_imports_no_twisted() -> None:
    code = "import sys, confgend.client; print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'confdb', 'psycopg')))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_failure_is_logged_to_the_journal(serve, tmp_path: Path) -> None:
    """The warning goes to the syslog socket (/dev/log: the journal) in syslog's format."""
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(tmp_path / "log.sock"))
    journal.settimeout(5)
    with journal:
        port = serve(lambda req: b"ERR database down\n")
        code, out, _ = run(port, tmp_path, syslog=str(tmp_path / "log.sock"))
        assert (code, out) == (0, b"old copy\n")
        line = journal.recv(4096).decode()
    assert line.startswith("<28>pbx-confgen[") and "confgend: database down" in line and "local copy" in line


def test_no_syslog_socket_is_not_a_failure(tmp_path: Path) -> None:
    """Without /dev/log (a container) the warning is on stderr only; the copy is still printed."""
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        code, out, err = run(sock.getsockname()[1], tmp_path, syslog=str(tmp_path / "missing/log"))
    assert (code, out) == (0, b"old copy\n") and "cannot connect" in err


def test_help_names_every_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "confgend.client", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("--connect-timeout", "--timeout", "--cache-dir", "PBX_CONFGEN_TIMEOUT", "journal",
                 "--quick-timeout", "--retry-after", "--probe-interval"):  # fmt: skip
        assert word in out


def test_literal_addresses_skip_the_resolver(serve, tmp_path: Path) -> None:
    """127.0.0.1 and ::1 are used as they are (getaddrinfo costs most of the CPU budget); names resolve."""
    import _socket

    assert client._addresses("127.0.0.1", 8669) == [(_socket.AF_INET, ("127.0.0.1", 8669))]
    assert client._addresses("::1", 8669) == [(_socket.AF_INET6, ("::1", 8669, 0, 0))]
    assert (_socket.AF_INET, ("127.0.0.1", 8669)) in client._addresses("localhost", 8669)
    port = serve(lambda req: b"OK %d fresh\n" % len(CONTENT) + CONTENT)
    assert client.fetch("asterisk/pjsip.conf", "localhost", port, 1, 2) == CONTENT


def test_connect_timeout_when_confgend_does_not_accept(tmp_path: Path) -> None:
    """A listener whose backlog is full drops the SYN: connect() hangs; the connect timeout ends it."""
    (tmp_path / "asterisk").mkdir()
    (tmp_path / "asterisk/pjsip.conf").write_bytes(b"old copy\n")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the accept queue (never accepted)
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            fillers.append(sock)
        time.sleep(0.2)
        try:
            started = time.monotonic()
            with pytest.raises(client.Failed, match=r"cannot connect .*timed out"):
                client.fetch("asterisk/pjsip.conf", "127.0.0.1", port, 0.5, 30)
            assert time.monotonic() - started < 5  # the connect timeout, not the 30 s total
        finally:
            for sock in fillers:
                sock.close()
