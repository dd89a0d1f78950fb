"""pbx-admin outbox: see what waits in the config-event outbox, publish it now."""

from __future__ import annotations

import argparse
import textwrap

from confdb import outbox
from confdb.cli.context import CommandError, Context


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "outbox",
        help="inspect and flush the config-event outbox",
        description="Config events wait in the outbox table until they are published to RabbitMQ, by "
        "pbx-admin right after each change (when bus.url is set) or by the pbx-event-relay "
        "service. See docs/events.md.",
    )
    cmds = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)

    status = cmds.add_parser(
        "status",
        help="count pending and published events",
        description="Print how many events wait to be published, how many were published (and are kept "
        "until the relay's retention deletes them), the age of the oldest pending one and when "
        "the last one was published. A pending count that keeps growing means that no relay "
        "runs or that RabbitMQ is unreachable.",
    )
    status.set_defaults(handler=_status)

    flush = cmds.add_parser(
        "flush",
        help="publish the pending events now",
        description=textwrap.fill(
            "Publish every pending event to bus.url now, in order, and print how many went out. Exits 1, "
            "with the events kept, when RabbitMQ cannot be reached within bus.publish_timeout seconds per "
            "operation.",
            78,
        ),
        epilog="example:\n  PBX_ADMIN_BUS_URL=amqp://pbx:secret@127.0.0.1:5672/%2F pbx-admin outbox flush",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flush.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="bound of each broker operation (default: bus.publish_timeout)",
    )
    flush.set_defaults(handler=_flush)


def _status(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        state = outbox.status(conn)
    age = state.oldest_pending_age
    ctx.emit(
        {
            "pending": state.pending,
            "published": state.published,
            "oldest_pending_age_s": None if age is None else round(age, 1),
            "last_published_at": state.last_published_at,
        }
    )
    return 0


def _flush(ctx: Context, args: argparse.Namespace) -> int:
    bus = ctx.settings["bus"]
    if not bus["url"]:
        raise CommandError("bus.url is not set: set it in the configuration or PBX_ADMIN_BUS_URL")
    timeout = args.timeout if args.timeout is not None else float(bus["publish_timeout"])
    with ctx.connect() as conn:
        try:
            count = outbox.publish_pending(conn, bus["url"], exchange=bus["exchange"], timeout=timeout)
        except outbox.PublishError as exc:
            raise CommandError(f"events kept in the outbox: {exc}") from None
    ctx.emit({"published": count})
    return 0
