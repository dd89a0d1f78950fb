"""agid's database pool under overload and slow answers, against a real PostgreSQL (role pbx_agid)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agid.db import Database, DBUnavailable
from confdb.testing import PbxDatabase


async def backend_pid(conn: Any) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    return int(row[0])


async def sleep_then_pid(conn: Any, seconds: float) -> int:
    await conn.execute("SELECT pg_sleep(%s)", (seconds,))
    return await backend_pid(conn)


def database(pbx_db: PbxDatabase, **kw: Any) -> Database:
    return Database(pbx_db.dsn("pbx_agid"), min_size=1, max_size=1, **kw)


def test_an_abandoned_wait_keeps_its_connection(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        db = database(pbx_db, statement_timeout=2.0)
        await db.open()
        try:
            first = await db.run(backend_pid, timeout=5.0)
            with pytest.raises(DBUnavailable, match="no database answer"):
                await db.run(sleep_then_pid, 0.5, timeout=0.1)
            # the query ends in the background and its connection goes back: the same backend serves
            assert await db.run(backend_pid, timeout=2.0) == first
            assert db.stats["abandoned"] == 1 and not db.down
        finally:
            await db.close()

    asyncio.run(scenario())


def test_a_query_outliving_its_statement_timeout_is_cut(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        db = database(pbx_db, statement_timeout=0.3)
        await db.open()
        try:
            first = await db.run(backend_pid, timeout=5.0)
            with pytest.raises(DBUnavailable):
                await db.run(sleep_then_pid, 5.0, timeout=0.1)
            # PostgreSQL cancels it at 0.3 s: the connection is clean and comes back
            assert await db.run(backend_pid, timeout=2.0) == first
        finally:
            await db.close()

    asyncio.run(scenario())


async def slow_call_while_another_is_answered(db: Database) -> None:
    slow = asyncio.ensure_future(db.run(sleep_then_pid, 0.4, timeout=0.2))
    await asyncio.sleep(0.02)
    assert await db.run(backend_pid, timeout=5.0) > 0  # answered while the slow one waits
    with pytest.raises(DBUnavailable, match="no database answer"):
        await slow
    await asyncio.sleep(0.3)  # the abandoned query ends and gives its connection back


def test_failures_amid_answers_are_overload_not_outage(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        db = Database(pbx_db.dsn("pbx_agid"), min_size=2, max_size=2, statement_timeout=5.0)
        await db.open()
        try:
            await db.run(backend_pid, timeout=5.0)
            for _ in range(5):  # more than FAILURES
                await slow_call_while_another_is_answered(db)
            assert not db.down
            assert (db.stats["overload"], db.stats["unavailable"]) == (5, 0)
        finally:
            await db.close()

    asyncio.run(scenario())


def test_failures_nobody_is_answered_meanwhile_are_an_outage(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        db = database(pbx_db, statement_timeout=5.0, retry_interval=30.0)
        await db.open()
        try:
            await db.run(backend_pid, timeout=5.0)
            for _ in range(3):  # FAILURES; the first holds the only connection, as a frozen server would
                with pytest.raises(DBUnavailable):
                    await db.run(sleep_then_pid, 3.0, timeout=0.1)
            assert db.down and db.stats["unavailable"] == 3
            probe = asyncio.ensure_future(db.run(backend_pid, timeout=0.3))
            await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(DBUnavailable, match="marked down"):
                await db.run(backend_pid, timeout=5.0)  # at once: one probe at a time
            assert time.monotonic() - started < 0.05
            with pytest.raises(DBUnavailable):
                await probe
            assert db.down
        finally:
            await db.close()

    asyncio.run(scenario())
