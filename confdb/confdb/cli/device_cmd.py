"""pbx-admin device: phones by MAC address and the lines on their keys."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import devices

RAW = argparse.RawDescriptionHelpFormatter
DEVICE_REF = "id or MAC address"

EPILOG = """\
examples:
  pbx-admin device add 00:04:13:2a:3b:4c --vendor Snom --model D785
  pbx-admin device attach 00:04:13:2a:3b:4c k3x9q2ab --position 1
  pbx-admin device list
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "device",
        help="phones (by MAC address) and the lines they carry",
        description="Devices are phones known by MAC address. A line sits at a numbered "
        "position (line key, 1-64) of at most one device.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="register a phone",
        description="Register a phone by its MAC address.",
        epilog="example:\n  pbx-admin device add 00:04:13:2a:3b:4c --vendor Snom --model D785",
        formatter_class=RAW,
    )
    add.add_argument("mac", help="MAC address, any usual spelling (00:04:13:2a:3b:4c, 0004132A3B4C, ...)")
    add.add_argument("--model", required=True, help="model name, such as D785 (64 characters at most)")
    add.add_argument("--vendor", default="", help="maker, such as Snom (64 characters at most)")
    add.add_argument("--description", default="", help="free text, such as where the phone is")
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a device",
        description="Change a device; options not given are left as they are.",
        epilog="example:\n  pbx-admin device set 00:04:13:2a:3b:4c --description 'Reception desk'",
        formatter_class=RAW,
    )
    set_.add_argument("device", help=DEVICE_REF)
    set_.add_argument("--mac", help="new MAC address (the phone was replaced)")
    set_.add_argument("--model", help="model name")
    set_.add_argument("--vendor", help="maker")
    set_.add_argument("--description", help="free text")
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a device (its lines stay, detached)",
        description="Delete a device; its lines stay, on no device.",
    )
    delete.add_argument("device", help=DEVICE_REF)
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list",
        help="list devices with their lines (position:line)",
        description="List devices by id, with their lines (position:line in text; {position, line} "
        "objects in JSON).",
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one device",
        description="Show one device, with the fields of device list.",
        epilog="example:\n  pbx-admin device show 00:04:13:2a:3b:4c",
        formatter_class=RAW,
    )
    show_one.add_argument("device", help=DEVICE_REF)
    show_one.set_defaults(handler=_show)

    attach = cmds.add_parser(
        "attach",
        help="put a line on a device (moves it from any other device)",
        description="Put a line on a line key of a device; a line on another device moves.",
        epilog="example:\n  pbx-admin device attach 00:04:13:2a:3b:4c k3x9q2ab --position 2",
        formatter_class=RAW,
    )
    attach.add_argument("device", help=DEVICE_REF)
    attach.add_argument("line", help="line name")
    attach.add_argument("--position", type=int, help="line key 1-64 (default: the first free one)")
    attach.set_defaults(handler=_attach)

    detach = cmds.add_parser(
        "detach", help="take a line off its device", description="Take a line off the device it is on."
    )
    detach.add_argument("line", help="line name")
    detach.set_defaults(handler=_detach)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        device_id = devices.create_device(
            conn, args.mac, args.model, vendor=args.vendor, description=args.description
        )
    ctx.emit({"id": device_id})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes = {
        k: getattr(args, k) for k in ("mac", "model", "vendor", "description") if getattr(args, k) is not None
    }
    if not changes:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = devices.update_device(conn, devices.find_device(conn, args.device), changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        device_id = devices.find_device(conn, args.device)
        devices.delete_device(conn, device_id)
    ctx.emit({"deleted": device_id})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = devices.list_devices(conn)
    ctx.emit(rows, ["id", "mac", "vendor", "model", "description", "lines"], text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = devices.list_devices(conn, devices.find_device(conn, args.device))
    ctx.emit(row, text=_text)
    return 0


def _text(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"lines": [f"{item['position']}:{item['line']}" for item in row["lines"]]}


def _attach(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        position = devices.attach_line(conn, devices.find_device(conn, args.device), args.line, args.position)
    ctx.emit({"line": args.line, "position": position})
    return 0


def _detach(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        devices.detach_line(conn, args.line)
    return 0
