"""Phonebook entries: several numbers each, normalised for reverse lookup; search; renormalisation; CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from confdb.cli.main import main
from confdb.validation import ValidationError
from confdb.writer import phonebook
from confdb.writer.errors import NotFound
from confdb.writer.phonebook import EntrySpec, PhoneNumber
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def _events(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT routing_key FROM outbox ORDER BY id")]


def jeanne(**overrides: Any) -> EntrySpec:
    values: dict[str, Any] = {
        "firstname": "Jeanne",
        "lastname": "Roche",
        "company": "Acme",
        "email": "jeanne@acme.example",
        "numbers": [PhoneNumber("01 23 45 67 89"), PhoneNumber("06.12.34.56.78", "mobile")],
    }
    return EntrySpec(**(values | overrides))


def test_create_with_numbers_and_reverse_lookup(conn) -> None:
    entry_id = phonebook.create_entry(conn, jeanne())
    stored = phonebook.get_entry(conn, entry_id)
    assert stored["display_name"] == "Jeanne Roche"
    assert [(n["kind"], n["number"], n["normalized"]) for n in stored["numbers"]] == [
        ("office", "01 23 45 67 89", "33123456789"),
        ("mobile", "06.12.34.56.78", "33612345678"),
    ]
    for caller_id in ("+33612345678", "0612345678", "0033 6 12 34 56 78", "33612345678"):
        found = phonebook.lookup(conn, caller_id)
        assert [(r["id"], r["kind"]) for r in found] == [(entry_id, "mobile")], caller_id
    assert phonebook.lookup(conn, "0699999999") == []
    assert _events(conn) == ["phonebook_entry.created"]


def test_country_changes_the_normalised_form(conn) -> None:
    entry_id = phonebook.create_entry(
        conn, EntrySpec(company="NY office", numbers=[PhoneNumber("(212) 555-0100")]), country="US"
    )
    assert phonebook.lookup(conn, "+1 212 555 0100", country="US")[0]["id"] == entry_id
    assert phonebook.renormalize(conn, country="US") == 0
    assert phonebook.renormalize(conn, country="FR") == 1  # read from France, it is no longer a US number
    assert phonebook.get_entry(conn, entry_id)["numbers"][0]["normalized"] == "2125550100"


def test_display_name_defaults_and_validation(conn) -> None:
    assert phonebook.check_entry(EntrySpec(company="Globex")).display_name == "Globex"
    with pytest.raises(ValidationError, match="display_name"):
        phonebook.check_entry(EntrySpec(numbers=[PhoneNumber("0123456789")]))
    with pytest.raises(ValidationError, match=r"phonebook\.office"):
        phonebook.check_entry(jeanne(numbers=[PhoneNumber("01 23 45 67 89; DROP")]))
    with pytest.raises(ValidationError, match=r"phonebook\.kind"):
        phonebook.check_entry(jeanne(numbers=[PhoneNumber("0123456789", "pager")]))
    with pytest.raises(ValidationError, match="U\\+000A"):
        phonebook.check_entry(jeanne(company="Acme\nInjected"))
    with pytest.raises(ValidationError, match="email"):
        phonebook.check_entry(jeanne(email="not an address"))


def test_update_replaces_numbers_and_delete(conn) -> None:
    entry_id = phonebook.create_entry(conn, jeanne())
    assert phonebook.update_entry(conn, entry_id, {"company": "Initech"}) == ["company"]
    assert len(phonebook.get_entry(conn, entry_id)["numbers"]) == 2
    changed = phonebook.update_entry(conn, entry_id, {}, numbers_=[PhoneNumber("+41 22 123 45 67", "other")])
    assert changed == ["numbers"]
    assert [n["normalized"] for n in phonebook.get_entry(conn, entry_id)["numbers"]] == ["41221234567"]
    assert phonebook.get_entry(conn, entry_id)["company"] == "Initech"
    phonebook.delete_entry(conn, entry_id)
    assert conn.execute("SELECT count(*) FROM phonebook_numbers").fetchone() == (0,)
    with pytest.raises(NotFound):
        phonebook.delete_entry(conn, entry_id)
    with pytest.raises(NotFound):
        phonebook.update_entry(conn, entry_id, {"company": "x"})
    assert _events(conn) == [
        "phonebook_entry.created",
        "phonebook_entry.updated",
        "phonebook_entry.updated",
        "phonebook_entry.deleted",
    ]


def test_search_by_text_or_number(conn) -> None:
    first = phonebook.create_entry(conn, jeanne())
    second = phonebook.create_entry(
        conn,
        EntrySpec(
            firstname="Paul", lastname="Roux", company="100% Bio", numbers=[PhoneNumber("+33 1 98 76 54 32")]
        ),
    )
    assert [r["id"] for r in phonebook.search(conn, "roche")] == [first]
    assert [r["id"] for r in phonebook.search(conn, "acme.example")] == [first]
    assert [r["id"] for r in phonebook.search(conn, "01 98 76 54 32")] == [second]
    assert [r["id"] for r in phonebook.search(conn, "100%")] == [second]  # % is literal
    assert phonebook.search(conn, "_") == []


def test_bulk_create_entries(conn) -> None:
    entries = [phonebook.check_entry(jeanne(lastname=f"Roche{i}")) for i in range(5)]
    ids = phonebook.create_entries(conn, entries, chunk_size=2)
    assert len(set(ids)) == 5
    assert conn.execute("SELECT count(*) FROM phonebook_numbers").fetchone() == (10,)
    assert _events(conn) == ["phonebook_entry.created"] * 5


def test_cli(pbx_db: PbxDatabase, tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yml"
    config.write_text("directory:\n  country: FR\n")
    base = ["--config", str(config), "--dsn", pbx_db.dsn()]
    assert (
        main(
            [
                *base,
                "phonebook",
                "add",
                "--firstname",
                "Jeanne",
                "--company",
                "Acme",
                "--office",
                "01 23 45 67 89",
                "--mobile",
                "06 12 34 56 78;07 11 22 33 44",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main([*base, "phonebook", "lookup", "+33711223344"]) == 0
    assert "Jeanne" in capsys.readouterr().out
    assert main([*base, "phonebook", "lookup", "0100000000"]) == 1
    assert "looked up as 33100000000" in capsys.readouterr().out
    assert main([*base, "phonebook", "list"]) == 0
    assert "office:01 23 45 67 89, mobile:06 12 34 56 78, mobile:07 11 22 33 44" in capsys.readouterr().out
    assert main([*base, "phonebook", "set", "1", "--clear-numbers", "--company", "Initech"]) == 0
    assert main([*base, "--json", "phonebook", "search", "initech"]) == 0
    assert '"numbers": []' in capsys.readouterr().out
    config.write_text("directory:\n  country: XX\n")
    assert main([*base, "phonebook", "renormalize"]) == 1
    assert "directory.country: unknown country 'XX'" in capsys.readouterr().err
