"""The local stack's up/status/down, in a temporary run directory on free ports."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest

from harness import stack
from harness.pbxconf import RTP_PORTS
from harness.ports import accepts, free_port, free_udp_range


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pbx-test-stack-"))
    path.chmod(0o755)  # like run/ in the repo: PostgreSQL runs as "postgres" and must reach run/postgres
    try:
        yield path
    finally:
        stack.main(["down", "--run-dir", str(path)])
        shutil.rmtree(path, ignore_errors=True)


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key: value.strip("'") for key, value in pairs}


def test_up_status_down_up(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports = [free_port() for _ in range(8)] + [free_port(udp=True)]
    flags = ["--run-dir", str(run_dir), "--no-demo", "--pg-port", str(ports[0]), "--amqp-port", str(ports[1])]
    flags += ["--rabbitmq-dist-port", str(ports[2]), "--epmd-port", str(ports[3])]
    flags += ["--agid-port", str(ports[4]), "--confgend-port", str(ports[5]), "--cti-port", str(ports[6])]
    flags += [
        "--ami-port",
        str(ports[7]),
        "--sip-port",
        str(ports[8]),
        "--rtp-start",
        str(free_udp_range(RTP_PORTS)),
    ]
    assert stack.main(["up", *flags]) == 0
    env = _env(run_dir / "stack.env")
    with psycopg.connect(env["PBX_PG_SUPERUSER_DSN"]) as conn:
        conn.execute("CREATE TABLE kept (v int)")
    pika.BlockingConnection(pika.URLParameters(env["PBX_AMQP_URL"])).close()

    assert stack.main(["status", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    # PostgreSQL, RabbitMQ, the event relay, agid, confgend, ctid and Asterisk (AMI and SIP over TCP)
    assert out.count("running (pid") == 7, out
    assert all(accepts(port) for port in ports[4:])
    assert "Asterisk Ready" in (run_dir / "asterisk" / "console.log").read_text()

    assert stack.main(["down", "--run-dir", str(run_dir)]) == 0
    assert not any(accepts(port) for port in ports[:2] + ports[7:])
    capsys.readouterr()
    assert stack.main(["status", "--run-dir", str(run_dir)]) == 0
    assert capsys.readouterr().out.count("stopped") == 7

    assert stack.main(["up", *flags]) == 0
    assert _env(run_dir / "stack.env")["PBX_AMQP_URL"] == env["PBX_AMQP_URL"]
    with psycopg.connect(env["PBX_PG_SUPERUSER_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
