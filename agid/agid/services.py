"""The shared services of the handlers (:class:`agid.registry.HandlerContext`): built at start, closed at
stop, inside the server's event loop."""

from __future__ import annotations

import dataclasses
import logging

from agid.config import Config
from agid.db import Database
from agid.lookup import ReverseLookup
from agid.registry import HandlerContext
from confdb.config import ConfigError, read_secret

log = logging.getLogger(__name__)


def database_dsn(config: Config) -> str | None:
    """``db_dsn``, else the contents of ``db_dsn_file``, else None (logged: agid runs degraded)."""
    try:
        return read_secret("db_dsn", config.db_dsn, config.db_dsn_file)
    except ConfigError as exc:
        log.error("no database: %s; database handlers will degrade", exc)
        return None


async def open_context(config: Config, **overrides: object) -> HandlerContext:
    """Open the pool (without waiting for PostgreSQL) and the lookup service."""
    dsn = database_dsn(config)
    db = None
    if dsn:
        db = Database(
            dsn,
            min_size=config.db_pool_min,
            max_size=config.db_pool_max,
            statement_timeout=config.db_timeout,
            connect_timeout=config.db_connect_timeout,
            retry_interval=config.db_retry_interval,
        )
        await db.open()
    lookup = ReverseLookup(
        db,
        country=config.country,
        sources=config.lookup_sources,
        csv_files=config.lookup_csv_files,
        budget=config.lookup_budget,
        cache_ttl=config.lookup_cache_ttl,
        cache_size=config.lookup_cache_size,
    )
    context = HandlerContext(config=config, db=db, lookup=lookup)
    return dataclasses.replace(context, **overrides) if overrides else context  # type: ignore[arg-type]


async def close_context(context: HandlerContext) -> None:
    if context.lookup is not None:
        await context.lookup.close()
    if context.db is not None:
        await context.db.close()
