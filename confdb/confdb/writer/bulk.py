"""Bulk-writing helpers: ids taken from the sequences up front, COPY, and all-or-nothing chunks that split
in halves on failure so that one bad item never sinks the others.

Callers own the transaction, as everywhere in the writer: chunks are savepoints inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")


def allocate_ids(conn: psycopg.Connection[Any], table: str, count: int) -> list[int]:
    """`count` fresh ids of `table`'s serial primary key (id), in one round trip."""
    if count <= 0:
        return []
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, count)
    )
    return [int(r[0]) for r in rows]


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def write_in_chunks(
    conn: psycopg.Connection[Any],
    items: Sequence[T],
    write_chunk: Callable[[Sequence[T]], None],
    write_one: Callable[[T], None],
    *,
    chunk_size: int = 1000,
    on_written: Callable[[int], None] | None = None,
) -> None:
    """Write `items` in savepoint chunks with `write_chunk`. A chunk the database refuses (a conflict the
    pre-checks could not see, such as a concurrent writer) is split in halves and retried; a single item
    the database refuses goes to `write_one`, the careful row-by-row path, which reports its own errors.
    `write_one` runs outside any savepoint of ours: it takes its own."""

    def attempt(part: Sequence[T]) -> None:
        try:
            with conn.transaction():
                write_chunk(part)
        except psycopg.Error:
            if conn.closed or conn.broken:
                raise
            if len(part) == 1:
                write_one(part[0])
            else:
                middle = len(part) // 2
                attempt(part[:middle])
                attempt(part[middle:])
                return
        if on_written:
            on_written(len(part))

    for start in range(0, len(items), chunk_size):
        attempt(items[start : start + chunk_size])


__all__ = ["allocate_ids", "copy_rows", "write_in_chunks"]
