"""Devices by MAC address and the lines on their keys."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from confdb.cli.main import main
from confdb.validation import ValidationError
from confdb.writer import devices, lines
from confdb.writer.errors import Conflict, NotFound
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def test_create_find_update_delete(conn) -> None:
    device = devices.create_device(conn, "00-04-13-2A-3B-4C", "D785", vendor="Snom")
    assert devices.find_device(conn, "0004132a3b4c") == device == devices.find_device(conn, str(device))
    with pytest.raises(Conflict, match="00:04:13:2a:3b:4c already exists"):
        devices.create_device(conn, "00:04:13:2a:3b:4c", "D785")
    with pytest.raises(ValidationError, match=r"device\.mac"):
        devices.create_device(conn, "00:04:13", "D785")
    with pytest.raises(ValidationError, match=r"device\.model"):
        devices.create_device(conn, "00:04:13:2a:3b:4d", "")
    assert devices.update_device(conn, device, {"description": "reception"}) == ["description"]
    devices.delete_device(conn, device)
    with pytest.raises(NotFound):
        devices.find_device(conn, str(device))


def test_attach_detach_lines(conn) -> None:
    device = devices.create_device(conn, "00:15:65:00:00:01", "T54W", vendor="Yealink")
    first, second = lines.create_line(conn), lines.create_line(conn)
    assert devices.attach_line(conn, device, first.name) == 1
    assert devices.attach_line(conn, device, second.name) == 2
    with pytest.raises(Conflict, match="position 1"):
        devices.attach_line(conn, device, second.name, 1)
    assert devices.attach_line(conn, device, first.name, 1) == 1  # same place: no change
    assert devices.list_devices(conn)[0]["lines"] == [
        {"position": 1, "line": first.name},
        {"position": 2, "line": second.name},
    ]
    other = devices.create_device(conn, "00:15:65:00:00:02", "T54W")
    assert devices.attach_line(conn, other, second.name, 3) == 3  # moves it
    devices.detach_line(conn, first.name)
    with pytest.raises(Conflict, match="not on a device"):
        devices.detach_line(conn, first.name)
    devices.delete_device(conn, other)
    assert conn.execute(
        "SELECT device_id, device_position FROM lines WHERE name = %s", (second.name,)
    ).fetchone() == (None, None)
    events = [
        r[0]
        for r in conn.execute(
            "SELECT routing_key FROM outbox WHERE routing_key LIKE 'device.%' "
            "OR routing_key = 'line.updated' ORDER BY id"
        )
    ]
    assert events.count("line.updated") == 6 and events[-1] == "device.deleted"


def test_cli(pbx_db: PbxDatabase, tmp_path: Path, capsys) -> None:
    base = ["--config", str(tmp_path / "absent.yml"), "--dsn", pbx_db.dsn()]
    with psycopg.connect(pbx_db.dsn()) as conn:
        line = lines.create_line(conn)
    assert main([*base, "device", "add", "00:04:13:2a:3b:4c", "--model", "D785", "--vendor", "Snom"]) == 0
    assert main([*base, "device", "attach", "0004132a3b4c", line.name, "--position", "2"]) == 0
    assert main([*base, "device", "list"]) == 0
    assert f"2:{line.name}" in capsys.readouterr().out
    assert main([*base, "device", "detach", line.name]) == 0
    assert main([*base, "device", "delete", "00:04:13:2a:3b:4c"]) == 0
    assert main([*base, "device", "set", "00:04:13:2a:3b:4c", "--model", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
