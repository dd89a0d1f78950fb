"""Handler type, handler context and lookup.

A handler is ``async def handle(session: AGISession) -> None``. It reads ``session.env`` /
``session.args`` / ``session.query``, talks to Asterisk through the session, and returns. Returning
means ``AGID_STATUS=OK``; raising anything means ``AGID_STATUS=FAILED`` (logged, never propagated).
Handlers are listed by name in ONE table, :data:`agid.handlers.HANDLERS`; the name is the path of the
AGI URL: ``AGI(agi://127.0.0.1:4573/NAME?k=v,arg1,arg2)``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agid.config import Config
    from agid.db import Database
    from agid.lookup import ReverseLookup
    from agid.session import AGISession

Handler = Callable[["AGISession"], Awaitable[None]]

#: Handler names: what may follow the host in ``agi://host/NAME``.
NAME = re.compile(r"[a-z][a-z0-9_]*(?:[-./][a-z0-9_]+)*\Z")


@dataclass(frozen=True)
class HandlerContext:
    """Shared, read-only services of the daemon, given to every session as ``session.context``.

    ``db`` is None when no database is configured (database handlers then degrade); ``lookup`` is the
    reverse lookup service with its cache; ``now`` the clock of schedules (tests replace it).
    """

    config: Config | None = None
    db: Database | None = None
    lookup: ReverseLookup | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def check_handlers(handlers: Mapping[str, Any]) -> None:
    """Refuse a malformed table at start-up: bad names or values that are not callables."""
    for name, handler in handlers.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise ValueError(f"bad AGI handler name {name!r}: lower-case words, '_', '-', '.' or '/'")
        # an async function, or an object whose __call__ is one
        if not (inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)):
            raise ValueError(f"AGI handler {name!r} is not an async function: {handler!r}")


def find_handler(handlers: Mapping[str, Handler], name: str) -> Handler | None:
    """The handler registered under ``name`` (exact match), or None."""
    return handlers.get(name)
