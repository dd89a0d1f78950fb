"""pbx-admin db: create the roles and the database, migrate, re-apply grants."""

from __future__ import annotations

import argparse
from pathlib import Path

from confdb import migrate, roles
from confdb.cli.context import CommandError, Context

DEFAULT_SECRETS = Path("/etc/pbx/secrets")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "db",
        help="initialise, migrate and inspect the database",
        description="Database life cycle. Migrations run as the owner role pbx_owner.",
    )
    cmds = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    init = cmds.add_parser(
        "init",
        help="create roles and database (passwords generated once), migrate, grant",
        description="Create the owner, writer and per-daemon read-only roles with generated passwords "
        "(kept in root-only files <secrets-dir>/<role>.password and <role>.dsn), create the database, "
        "migrate it to the newest revision and apply the grants. Safe to run again: existing "
        "roles keep their passwords.",
        epilog="example:\n  pbx-admin db init --superuser-dsn 'host=/var/run/postgresql user=postgres'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("--superuser-dsn", required=True, help="connection string of a PostgreSQL superuser")
    init.add_argument("--host", default="127.0.0.1", help="address the roles connect to (default 127.0.0.1)")
    init.add_argument("--port", type=int, default=5432, help="PostgreSQL port (default 5432)")
    init.add_argument("--dbname", default="pbx", help="database name (default pbx)")
    init.add_argument(
        "--secrets-dir",
        type=Path,
        default=DEFAULT_SECRETS,
        help=f"where role passwords and DSNs are kept (default {DEFAULT_SECRETS})",
    )
    init.set_defaults(handler=_init)

    for name, helptext in (
        ("upgrade", "migrate to a revision (default: the newest)"),
        ("downgrade", "migrate down to a revision (where the migration allows it)"),
    ):
        cmd = cmds.add_parser(
            name,
            help=helptext,
            description=helptext.capitalize() + ", as the owner role, then re-apply the grants.",
        )
        cmd.add_argument("--owner-dsn", required=True, help="connection string of the owner role pbx_owner")
        cmd.add_argument(
            "revision",
            nargs="?" if name == "upgrade" else None,
            default="head",
            help="target revision" + (" (default head)" if name == "upgrade" else ""),
        )
        cmd.set_defaults(handler=_upgrade if name == "upgrade" else _downgrade)

    current = cmds.add_parser(
        "current",
        help="print the database's revision and the newest one",
        description="Print the database's migration revision and the newest one this pbx-admin knows.",
    )
    current.add_argument("--owner-dsn", help="connection (default: the writer's, from the configuration)")
    current.set_defaults(handler=_current)

    revisions = cmds.add_parser(
        "revisions",
        help="list every revision, oldest first",
        description="List every migration revision, oldest first.",
    )
    revisions.set_defaults(handler=lambda ctx, args: print("\n".join(migrate.revisions())))


def _init(ctx: Context, args: argparse.Namespace) -> int:
    passwords = roles.ensure_roles(args.superuser_dsn, args.dbname, args.secrets_dir)
    roles.write_dsn_files(args.secrets_dir, args.host, args.port, args.dbname, passwords)
    owner_dsn = roles.role_dsn(args.host, args.port, args.dbname, roles.OWNER, passwords[roles.OWNER])
    migrate.upgrade(owner_dsn)
    roles.apply_grants(owner_dsn)
    ctx.emit(
        {
            "database": args.dbname,
            "revision": migrate.current(owner_dsn),
            "roles": list(roles.ALL_ROLES),
            "secrets": str(args.secrets_dir),
        }
    )
    return 0


def _upgrade(ctx: Context, args: argparse.Namespace) -> int:
    migrate.upgrade(args.owner_dsn, args.revision)
    roles.apply_grants(args.owner_dsn)
    ctx.emit({"revision": migrate.current(args.owner_dsn)})
    return 0


def _downgrade(ctx: Context, args: argparse.Namespace) -> int:
    if args.revision not in migrate.revisions() and args.revision != "base":
        raise CommandError(f"unknown revision {args.revision!r}; see pbx-admin db revisions")
    migrate.downgrade(args.owner_dsn, args.revision)
    roles.apply_grants(args.owner_dsn)
    ctx.emit({"revision": migrate.current(args.owner_dsn)})
    return 0


def _current(ctx: Context, args: argparse.Namespace) -> int:
    if args.owner_dsn:
        revision = migrate.current(args.owner_dsn)
    else:
        with ctx.connect() as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    ctx.emit({"current": revision, "head": migrate.head()})
    return 0
