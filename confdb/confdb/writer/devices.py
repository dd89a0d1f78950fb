"""Phones (devices) by MAC address, and the lines they carry at numbered positions (line keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from confdb import events, validation
from confdb.writer import lines
from confdb.writer.errors import Conflict, NotFound

MAX_POSITION = 64

DEVICE_FIELDS = {
    "mac": validation.mac_address,
    "vendor": lambda f, v: validation.text(f, v, max_len=64, required=False),
    "model": lambda f, v: validation.text(f, v, max_len=64),
    "description": lambda f, v: validation.text(f, v, required=False),
}


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        checker = DEVICE_FIELDS.get(name)
        if checker is None:
            raise validation.ValidationError(f"device.{name}", "is not a device field")
        clean[name] = checker(f"device.{name}", value)
    return clean


def find_device(conn: psycopg.Connection[Any], ref: str | int) -> int:
    """A device by id or MAC address (any usual spelling)."""
    text = str(ref).strip()
    if text.isdigit():
        row = conn.execute("SELECT id FROM devices WHERE id = %s", (int(text),)).fetchone()
    else:
        mac = validation.mac_address("device", text)
        row = conn.execute("SELECT id FROM devices WHERE mac = %s::macaddr", (mac,)).fetchone()
    if row is None:
        raise NotFound(f"device {validation.shown(text)} does not exist")
    return int(row[0])


def _mac_free(conn: psycopg.Connection[Any], mac: str, device_id: int | None = None) -> None:
    row = conn.execute("SELECT id FROM devices WHERE mac = %s::macaddr", (mac,)).fetchone()
    if row is not None and row[0] != device_id:
        raise Conflict(f"a device with MAC {mac} already exists (id {row[0]})")


def create_device(
    conn: psycopg.Connection[Any], mac: str, model: str, *, vendor: str = "", description: str = ""
) -> int:
    values = validate_fields({"mac": mac, "model": model, "vendor": vendor, "description": description})
    _mac_free(conn, values["mac"])
    row = conn.execute(
        "INSERT INTO devices (mac, vendor, model, description) VALUES (%s, %s, %s, %s) RETURNING id",
        (values["mac"], values["vendor"], values["model"], values["description"]),
    ).fetchone()
    assert row is not None
    events.emit(conn, "device", "created", id=row[0], mac=values["mac"])
    return int(row[0])


def update_device(conn: psycopg.Connection[Any], device_id: int, changes: Mapping[str, Any]) -> list[str]:
    values = validate_fields(changes)
    if not values:
        return []
    if not conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device_id,)).fetchone():
        raise NotFound(f"device {device_id} does not exist")
    if "mac" in values:
        _mac_free(conn, values["mac"], device_id)
    assignments = ", ".join(f"{column} = %s" for column in values)
    conn.execute(f"UPDATE devices SET {assignments} WHERE id = %s", [*values.values(), device_id])
    events.emit(conn, "device", "updated", id=device_id, fields=sorted(values))
    return sorted(values)


def delete_device(conn: psycopg.Connection[Any], device_id: int) -> None:
    """Delete a device; its lines stay, detached."""
    attached = conn.execute(
        "SELECT id, name FROM lines WHERE device_id = %s ORDER BY device_position", (device_id,)
    ).fetchall()
    for line_id, name in attached:
        _detach(conn, line_id, name)
    row = conn.execute("DELETE FROM devices WHERE id = %s RETURNING mac::text", (device_id,)).fetchone()
    if row is None:
        raise NotFound(f"device {device_id} does not exist")
    events.emit(conn, "device", "deleted", id=device_id, mac=row[0])


def attach_line(
    conn: psycopg.Connection[Any], device_id: int, line_name: str, position: int | None = None
) -> int:
    """Put a line on a device at `position` (default: the first free one); returns the position.
    A line sits on one device at a time: attaching it elsewhere moves it."""
    line_id = lines.line_id(conn, line_name)
    if not conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device_id,)).fetchone():
        raise NotFound(f"device {device_id} does not exist")
    used = {
        r[0]: r[1]
        for r in conn.execute("SELECT device_position, id FROM lines WHERE device_id = %s", (device_id,))
    }
    if position is None:
        position = next((p for p in range(1, MAX_POSITION + 1) if p not in used), None)
        if position is None:
            raise Conflict(f"device {device_id} has no free position (at most {MAX_POSITION})")
    position = validation.integer("line.device_position", position, minimum=1, maximum=MAX_POSITION)
    if used.get(position, line_id) != line_id:
        raise Conflict(f"position {position} of device {device_id} already holds another line")
    conn.execute(
        "UPDATE lines SET device_id = %s, device_position = %s WHERE id = %s", (device_id, position, line_id)
    )
    events.emit(conn, "line", "updated", id=line_id, name=line_name, fields=["device"])
    return position


def _detach(conn: psycopg.Connection[Any], line_id: int, name: str) -> None:
    conn.execute("UPDATE lines SET device_id = NULL, device_position = NULL WHERE id = %s", (line_id,))
    events.emit(conn, "line", "updated", id=line_id, name=name, fields=["device"])


def detach_line(conn: psycopg.Connection[Any], line_name: str) -> None:
    row = conn.execute("SELECT id, device_id FROM lines WHERE name = %s", (line_name,)).fetchone()
    if row is None:
        raise NotFound(f"line {validation.shown(line_name)} does not exist")
    if row[1] is None:
        raise Conflict(f"line {line_name!r} is not on a device")
    _detach(conn, row[0], line_name)


def list_devices(conn: psycopg.Connection[Any], device: int | None = None) -> list[dict[str, Any]]:
    """Devices by id (only `device` when given); lines a list of {position, line} objects."""
    cur = conn.execute(
        "SELECT d.id, d.mac::text AS mac, d.vendor, d.model, d.description, "
        "  coalesce((SELECT json_agg(json_build_object('position', l.device_position, 'line', l.name) "
        "     ORDER BY l.device_position) FROM lines l WHERE l.device_id = d.id), '[]') AS lines "
        "FROM devices d WHERE %(id)s::int IS NULL OR d.id = %(id)s::int ORDER BY d.id",
        {"id": device},
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
