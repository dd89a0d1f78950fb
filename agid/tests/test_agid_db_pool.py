"""agid's database pool under overload and slow answers, against a real PostgreSQL (role pbx_agid)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from agid.db import Database, DBUnavailable
from agid.lookup import ReverseLookup
from testkit.pbxdb import PbxDatabase


async def backend_pid(conn: Any) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    return int(row[0])


async def sleep_then_pid(conn: Any, seconds: float) -> int:
    await conn.execute("SELECT pg_sleep(%s)", (seconds,))
    return await backend_pid(conn)


def within(seconds: float) -> float:
    """The deadline ``seconds`` from now (``time.monotonic()``, as agid's sessions have it)."""
    return time.monotonic() + seconds


def database(pbx_db: PbxDatabase, size: int = 1, **kw: Any) -> Database:
    return Database(pbx_db.dsn("pbx_agid"), min_size=size, max_size=size, **kw)


@contextlib.asynccontextmanager
async def opened(db: Database) -> AsyncIterator[Database]:
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def test_an_abandoned_wait_keeps_its_connection(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=2.0)) as db:
            first = await db.run(backend_pid, deadline=within(5.0))
            with pytest.raises(DBUnavailable, match="no database answer"):
                await db.run(sleep_then_pid, 0.5, deadline=within(0.1))
            # the query ends in the background and its connection goes back: the same backend serves
            assert await db.run(backend_pid, deadline=within(2.0)) == first
            assert db.stats["abandoned"] == 1 and not db.down

    asyncio.run(scenario())


def test_a_query_outliving_its_statement_timeout_is_cut(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=0.3)) as db:
            first = await db.run(backend_pid, deadline=within(5.0))
            with pytest.raises(DBUnavailable):
                await db.run(sleep_then_pid, 5.0, deadline=within(0.1))
            # PostgreSQL cancels it at 0.3 s: the connection is clean and comes back
            assert await db.run(backend_pid, deadline=within(2.0)) == first

    asyncio.run(scenario())


async def slow_call_while_another_is_answered(db: Database) -> None:
    slow = asyncio.ensure_future(db.run(sleep_then_pid, 0.4, deadline=within(0.2)))
    await asyncio.sleep(0.02)
    assert await db.run(backend_pid, deadline=within(5.0)) > 0  # answered while the slow one waits
    with pytest.raises(DBUnavailable, match="no database answer"):
        await slow
    await asyncio.sleep(0.3)  # the abandoned query ends and gives its connection back


def test_failures_amid_answers_are_overload_not_outage(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, size=2, statement_timeout=5.0)) as db:
            await db.run(backend_pid, deadline=within(5.0))
            for _ in range(5):  # more than FAILURES
                await slow_call_while_another_is_answered(db)
            assert not db.down
            assert (db.stats["overload"], db.stats["unavailable"]) == (5, 0)

    asyncio.run(scenario())


def test_failures_nobody_is_answered_meanwhile_are_an_outage(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=5.0, retry_interval=0.3)) as db:
            await db.run(backend_pid, deadline=within(5.0))
            for _ in range(3):  # FAILURES; the first holds the only connection, as a frozen server would
                with pytest.raises(DBUnavailable):
                    await db.run(sleep_then_pid, 1.5, deadline=within(0.1))
            assert db.down and db.stats["unavailable"] == 3
            started = time.monotonic()
            with pytest.raises(DBUnavailable, match="marked down"):
                await db.run(backend_pid, deadline=within(5.0))  # at once
            assert time.monotonic() - started < 0.05
            await asyncio.sleep(0.3)  # retry_interval: one call may try
            probe = asyncio.ensure_future(db.run(backend_pid, deadline=within(0.2)))
            await asyncio.sleep(0)
            with pytest.raises(DBUnavailable, match="marked down"):
                await db.run(backend_pid, deadline=within(5.0))  # one at a time
            with pytest.raises(DBUnavailable, match="no database connection"):
                await probe  # the connection is still held
            assert db.down
            await asyncio.sleep(1.5)  # the held query ends: the database answered
            assert await db.run(backend_pid, deadline=within(2.0)) > 0
            assert not db.down

    asyncio.run(scenario())


async def squares(conn: Any, keys: Any) -> dict[int, int]:
    """A batch query: {k: k*k} for the keys above 0 (0 has no value)."""
    cur = await conn.execute("SELECT k, k * k FROM unnest(%s::int[]) AS k WHERE k > 0", (list(keys),))
    return dict(await cur.fetchall())


async def slow_squares(conn: Any, keys: Any) -> dict[int, int]:
    await conn.execute("SELECT pg_sleep(0.5)")
    return await squares(conn, keys)


def test_loads_of_one_turn_share_one_query(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=2.0)) as db:
            keys = [*range(0, 40), 7, 7]  # a key asked twice is queried once; 0 has no value
            values = await asyncio.gather(*(db.load(squares, key, deadline=within(2.0)) for key in keys))
            assert values == [None, *(k * k for k in keys[1:])]
            assert db.batch_stats == {"batches": 1, "keys": 40, "failed": 0}
            # later turns make later batches
            assert await db.load(squares, 3, deadline=within(2.0)) == 9
            assert db.batch_stats["batches"] == 2

    asyncio.run(scenario())


def test_a_batch_fails_for_each_waiter_and_a_cancelled_waiter_alone(pbx_db: PbxDatabase) -> None:
    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=2.0)) as db:
            waits = [db.load(slow_squares, key, deadline=within(0.1)) for key in (1, 2, 2)]
            results = await asyncio.gather(*waits, return_exceptions=True)
            assert all(isinstance(r, DBUnavailable) for r in results), results
            await asyncio.sleep(0.6)  # the abandoned query ends and gives its connection back
            # a waiter cancelled at its deadline leaves the others of its batch their answer
            first, second = (
                db.load(slow_squares, 5, deadline=within(2.0)),
                db.load(slow_squares, 5, deadline=within(2.0)),
            )
            first.cancel()
            assert await second == 25
            assert first.cancelled()

    asyncio.run(scenario())


def test_queries_run_in_the_database_thread(pbx_db: PbxDatabase) -> None:
    """A session loop blocked for longer than the timeout does not make an answered query late."""

    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=2.0)) as db:
            await db.run(backend_pid, deadline=within(2.0))
            pending = asyncio.ensure_future(db.run(backend_pid, deadline=within(0.2)))
            await asyncio.sleep(0)  # sent
            time.sleep(0.5)  # the caller's loop is busy past the timeout; the answer came meanwhile
            assert await pending > 0

    asyncio.run(scenario())


def test_a_database_read_of_the_lookup_ends_by_the_session_deadline(pbx_db: PbxDatabase) -> None:
    """The phonebook is locked by a writer, its read hangs: the read the lookup waits on is over at the
    session's deadline, not at a budget of its own (lookup_budget and statement_timeout are far longer)."""
    reads: list[asyncio.Future[Any]] = []
    given: list[float] = []

    async def scenario() -> None:
        async with opened(database(pbx_db, statement_timeout=5.0)) as db:
            await db.run(backend_pid, deadline=within(5.0))  # warm
            load, run = db.load, db.run

            def recorded_load(query: Any, key: Any, *, deadline: float) -> asyncio.Future[Any]:
                reads.append(load(query, key, deadline=deadline))
                return reads[-1]

            async def recorded_run(query: Any, *args: Any, deadline: float) -> Any:
                given.append(deadline)
                return await run(query, *args, deadline=deadline)

            db.load, db.run = recorded_load, recorded_run  # type: ignore[method-assign]
            lookup = ReverseLookup(db, country="FR", sources=("users", "phonebook"), budget=5.0)
            with psycopg.connect(pbx_db.dsn()) as writer:
                writer.execute("LOCK TABLE phonebook_numbers IN ACCESS EXCLUSIVE MODE")
                deadline = within(0.3)
                result = await lookup.lookup("0123456789", deadline)
                returned = time.monotonic()
                # every read the lookup started is over (answered or DBUnavailable), none left running
                assert len(reads) == 2 and all(read.done() for read in reads)
                assert isinstance(reads[1].exception(), DBUnavailable)
                writer.rollback()
            assert deadline <= returned < deadline + 0.1
            assert (result.name, result.complete) == (None, False)
            # the queries were bounded by the session's deadline, not by anything later
            assert given and all(bound <= deadline for bound in given)
            await lookup.close()

    asyncio.run(scenario())
