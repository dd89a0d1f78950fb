"""What the database handlers share: bounded database calls, the degraded path, variable setting.

Every database handler decides its decision variable and the variables that this decision uses (empty
when they do not apply to the case, e.g. no busy forward), never those of other decisions; the dialplan
reads only the variables of the decision taken. The server sets them with ``AGID_STATUS``, batched
(``EXEC MSet``) where Asterisk takes the values literally. Each decision has ``AGID_CAUSE`` (why: a
refusal, a missing object, the database error; empty when all went well) and ``AGID_DEGRADED`` (``1``:
the database did not answer in time, the decision is the default one).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, TypeVar

from agid.batch import BatchQuery
from agid.db import Database, DBUnavailable
from agid.errors import AGIUnknownCommand, AGIUsageError
from agid.session import AGISession
from confdb.read import agid as read

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEGRADED = "AGID_DEGRADED"
CAUSE = "AGID_CAUSE"


class BadInput(ValueError):
    """The dialplan called the handler with arguments it cannot use (AGID_STATUS=FAILED)."""


def _database(session: AGISession) -> Database:
    """The database, if there is one and time left before the session's deadline; else DBUnavailable."""
    context = session.context
    if context is None or context.db is None:
        raise DBUnavailable("no database configured")
    if session.deadline <= time.monotonic():
        raise DBUnavailable("no time left of db_timeout since the call reached agid")
    return context.db


async def db_call(session: AGISession, query: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``query(conn, *args)`` before the session's deadline; DBUnavailable when it cannot be done."""
    return await _database(session).run(query, *args, deadline=session.deadline)


async def db_load(session: AGISession, query: BatchQuery[K, V], key: K) -> V | None:
    """The value of ``key`` from batch query ``query`` (gathered with other sessions' keys, see
    :mod:`agid.batch`) before the session's deadline; DBUnavailable when it cannot be done."""
    return await _database(session).load(query, key, deadline=session.deadline)


def finish(session: AGISession, variables: Mapping[str, str | int | None], cause: str = "",
           degraded: bool = False) -> None:  # fmt: skip
    """The handler's decision, with its cause and degraded flag: set by the server with AGID_STATUS."""
    cause = one_line(cause)
    if degraded:
        session.log.info("%s degraded: %s", session.handler_name, cause)
    session.decide({**variables, CAUSE: cause, DEGRADED: "1" if degraded else "0"})


def one_line(text: str, limit: int = 200) -> str:
    """``text`` without control characters (an error message may hold line breaks), at most ``limit``."""
    clean = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


async def channel_value(session: AGISession, expression: str) -> str | None:
    """``GET FULL VARIABLE expression``; None when Asterisk does not know it (old version, no module)."""
    try:
        return await session.get_full_variable(expression)
    except (AGIUnknownCommand, AGIUsageError):
        return None


def argument(session: AGISession, index: int, query_key: str, default: str = "") -> str:
    """``agi_arg_<index+1>`` if given and not empty, else the query parameter, else ``default``."""
    if len(session.args) > index and session.args[index].strip():
        return session.args[index].strip()
    return session.query.get(query_key, default).strip()


def destination_variables(dest: read.Destination | None, arg: str) -> dict[str, str | int | None]:
    if dest is None:
        return {"AGID_DEST_TYPE": None, "AGID_DEST_ARG": None}
    return {"AGID_DEST_TYPE": dest.type, "AGID_DEST_ARG": arg}
