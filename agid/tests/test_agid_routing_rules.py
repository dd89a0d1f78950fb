"""The pure parts: extension patterns, schedules, the lookup cache and source priority, the new options."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from pathlib import Path
from time import monotonic

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agid.config import ConfigError, merge
from agid.db import DBUnavailable
from agid.handlers._support import one_line
from agid.lookup import LookupResult, ReverseLookup, TTLCache
from confdb.patterns import best_match, extension_matches
from confdb.read.agid import Destination as Dest
from confdb.read.agid import Period, Schedule
from confdb.schedules import schedule_is_open


@pytest.mark.parametrize(
    ("pattern", "number", "expected"),
    [
        ("1001", "1001", True),
        ("1001", "10011", False),
        ("_0XXXXXXXXX", "0612345678", True),
        ("_0XXXXXXXXX", "061234567", False),
        ("_NXX", "199", False),
        ("_NXX", "299", True),
        ("_Z.", "1", False),
        ("_Z.", "12", True),
        ("_0!", "0", True),
        ("_[1-3]5", "25", True),
        ("_[1-3]5", "45", False),
        ("_+33.", "+331", True),
    ],
)
def test_extension_matches(pattern: str, number: str, expected: bool) -> None:
    assert extension_matches(pattern, number) is expected


def test_best_match_prefers_exact_then_specific() -> None:
    patterns = ["_X.", "_0XXXXXXXXX", "0612345678", "_06XXXXXXXX"]
    assert best_match("0612345678", patterns) == 2
    assert best_match("0612345679", patterns) == 3
    assert best_match("0112345679", patterns) == 1
    assert best_match("55", patterns) == 0
    assert best_match("5", patterns) is None  # '.' is one character or more
    assert best_match("", patterns) is None


@given(st.text(alphabet="0123456789", min_size=1, max_size=20), st.text(alphabet="0123456789", max_size=3))
def test_pattern_properties(number: str, extra: str) -> None:
    assert extension_matches(number, number)
    assert extension_matches(number, number + extra) == (extra == "")
    assert extension_matches("_" + "X" * len(number), number)
    assert extension_matches("_" + number[:1] + "!", number + extra)
    assert best_match(number, ["_X!", "_" + "X" * len(number), number]) == 2


def test_schedule_open_in_its_time_zone() -> None:
    office = Schedule(
        1, "office", "Europe/Paris", Dest("hangup"), (Period((1, 2, 3, 4, 5), time(9), time(18)),)
    )
    assert schedule_is_open(office, datetime(2026, 11, 25, 8, 30, tzinfo=UTC))  # 09:30 in Paris
    assert not schedule_is_open(office, datetime(2026, 11, 25, 7, 30, tzinfo=UTC))  # 08:30
    assert not schedule_is_open(office, datetime(2026, 11, 25, 17, 0, tzinfo=UTC))  # 18:00: end excluded
    assert not schedule_is_open(office, datetime(2026, 11, 29, 10, 0, tzinfo=UTC))  # Sunday
    allday = Schedule(2, "allday", "UTC", Dest("hangup"), (Period((7,), time(0), time.max),))
    assert schedule_is_open(allday, datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC))
    bad_zone = Schedule(3, "x", "Nowhere/City", Dest("hangup"), (Period((7,), time(0), time(12)),))
    assert schedule_is_open(bad_zone, datetime(2026, 11, 29, 11, 0, tzinfo=UTC))


def test_ttl_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache = TTLCache(10.0, 2, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        cache.put(key, LookupResult(key, key.upper(), "csv", True))
    assert cache.get("a") is None  # the oldest went out
    assert cache.get("b") is not None
    now[0] = 10.0
    assert cache.get("b") is None and len(cache) == 1


class FakeDB:
    """Database.load's shape; answers any key per query name after a delay, or raises."""

    def __init__(self, answers: dict[str, tuple[float, object]]) -> None:
        self.answers = answers

    def load(self, query: object, key: object, *, deadline: float) -> asyncio.Future[object]:
        delay, value = self.answers[getattr(query, "__name__", "")]
        future = asyncio.get_running_loop().create_future()
        timeout = deadline - monotonic()

        def answer() -> None:
            if delay > timeout:
                future.set_exception(DBUnavailable("too slow"))
            elif isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)

        asyncio.get_running_loop().call_later(min(delay, timeout), answer)
        return future


def _lookup(answers: dict[str, tuple[float, object]], budget: float = 0.2) -> ReverseLookup:
    return ReverseLookup(FakeDB(answers), country="FR", budget=budget)  # type: ignore[arg-type]


def test_lookup_priority_and_budget() -> None:
    async def scenario() -> None:
        # the phonebook answers first, but users (higher priority) is waited for
        both = _lookup({"internal_names": (0.05, "Internal"), "phonebook_names": (0.0, "Book")})
        assert (await both.lookup("0123456789")).source == "users"
        # users does not know the number: the phonebook's name
        book = _lookup({"internal_names": (0.01, None), "phonebook_names": (0.02, "Book")})
        result = await book.lookup("0123456789")
        assert (result.name, result.source, result.complete) == ("Book", "phonebook", True)
        # users too slow: the lookup ends within the budget with the phonebook's answer
        slow = _lookup({"internal_names": (5.0, "Late"), "phonebook_names": (0.0, "Book")}, budget=0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await slow.lookup("0123456789")
        assert loop.time() - started < 0.5
        assert (result.name, result.complete) == ("Book", False)
        # everything fails: no name, incomplete, not cached
        down = _lookup(
            {"internal_names": (0.0, DBUnavailable("down")), "phonebook_names": (0.0, RuntimeError())}
        )
        result = await down.lookup("0123456789")
        assert (result.name, result.complete, len(down.cache)) == (None, False, 0)
        await slow.close()

    asyncio.run(scenario())


def test_lookup_csv(tmp_path: Path) -> None:
    directory = tmp_path / "d.csv"
    directory.write_text("number,name\n01 23 45 67 89,Paris Office\n+1 (555) 123-4567,New\x07York\n")

    async def scenario() -> None:
        lookup = ReverseLookup(None, country="FR", sources=("csv",), csv_files=[str(directory)])
        assert (await lookup.lookup("+33123456789")).name == "Paris Office"
        assert (await lookup.lookup("0015551234567")).name == "NewYork"
        directory.write_text("number,name\n0999999999,Changed\n")
        lookup.cache = TTLCache(0.0, 0)
        import os

        os.utime(directory, (1, 1))
        assert (await lookup.lookup("0999999999")).name == "Changed"

    asyncio.run(scenario())


def test_new_options_are_checked() -> None:
    config = merge(
        [("x", {"country": "us", "lookup_sources": ["phonebook"], "lookup_csv_files": ["/a.csv"]})]
    )
    assert (config.country, config.lookup_sources, config.lookup_csv_files) == (
        "US",
        ("phonebook",),
        ("/a.csv",),
    )
    for bad, message in (
        ({"country": "XX"}, "country: expected a country code"),
        ({"lookup_sources": ["ldap"]}, "lookup_sources: expected a list"),
        ({"db_pool_min": 20}, "db_pool_max (10, from default) is below db_pool_min"),
        ({"db_dsn": "a\nb"}, "db_dsn: expected one line"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            merge([("x", bad)])
    assert merge([("x", {"db_dsn": "host=h password=s3cr3t"})]).as_dict()["db_dsn"] == "host=h password=***"


def test_one_line() -> None:
    assert one_line("a\nb\r\n  c\x00d") == "a b c d"
    assert len(one_line("x" * 500)) == 200
