"""pbx-admin device: phones by MAC address and the lines on their keys."""

from __future__ import annotations

import argparse

from confdb.cli.context import CommandError, Context
from confdb.writer import devices


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "device",
        help="phones (by MAC address) and the lines they carry",
        description="Devices are phones known by MAC address. A line sits at a numbered "
        "position (line key, 1-64) of at most one device.",
    )
    cmds = parser.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="register a phone",
        epilog="example:\n  pbx-admin device add 00:04:13:2a:3b:4c --vendor Snom --model D785",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("mac", help="MAC address, any usual spelling (00:04:13:2a:3b:4c, 0004132A3B4C, ...)")
    add.add_argument("--model", required=True)
    add.add_argument("--vendor", default="")
    add.add_argument("--description", default="")
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser("set", help="change a device")
    set_.add_argument("device", help="id or MAC address")
    for option in ("--mac", "--model", "--vendor", "--description"):
        set_.add_argument(option)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser("delete", help="delete a device (its lines stay, detached)")
    delete.add_argument("device", help="id or MAC address")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser("list", help="list devices with their lines (position:line)")
    show.set_defaults(handler=_list)

    attach = cmds.add_parser("attach", help="put a line on a device (moves it from any other device)")
    attach.add_argument("device", help="id or MAC address")
    attach.add_argument("line", help="line name")
    attach.add_argument("--position", type=int, help="line key 1-64 (default: the first free one)")
    attach.set_defaults(handler=_attach)

    detach = cmds.add_parser("detach", help="take a line off its device")
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
    ctx.emit({"changed": ", ".join(changed)})
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
    ctx.emit(rows, ["id", "mac", "vendor", "model", "description", "lines"])
    return 0


def _attach(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        position = devices.attach_line(conn, devices.find_device(conn, args.device), args.line, args.position)
    ctx.emit({"line": args.line, "position": position})
    return 0


def _detach(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        devices.detach_line(conn, args.line)
    return 0
