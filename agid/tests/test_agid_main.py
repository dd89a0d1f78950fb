"""The agid command: a real process, configured by files and flags, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import agid
from testkit.fastagi import WAIT, FakeAsterisk

# run the agid under test, installed or not, from whatever directory pytest was started in
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(agid.__file__).parents[1]), *sys.path])}


def test_agid_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("listen_port: 4573\nmax_sessions: 5\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-test.yml").write_text("log_level: debug\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "agid", "--config-dir", str(tmp_path), "--listen-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        match = None
        while match is None and len(lines) < 20:
            lines.append(process.stderr.readline())
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", lines[-1])
        assert match, lines
        port = int(match.group(1))
        env = b"agi_network: yes\nagi_network_script: ping\nagi_channel: Local/p-1;2\n\n"
        transcript = FakeAsterisk(("127.0.0.1", port), WAIT).run(env)
        assert transcript.variables() == {"AGID_PONG": "pong", "AGID_STATUS": "OK"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
        rest = process.stderr.read()
        assert "INFO agid: stopping" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)


def test_agid_process_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("listen_port: nope\n")
    result = subprocess.run(
        [sys.executable, "-m", "agid", "--config-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=ENV,
    )
    assert result.returncode == 2
    assert f"{tmp_path}/config.yml: listen_port: expected an integer, got 'nope'" in result.stderr


def test_agid_process_address_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "agid", "--config-dir", str(tmp_path), "--listen-port", str(port)],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env=ENV,
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
