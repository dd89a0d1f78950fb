"""Free text that reaches the dialplan (an incall's caller-ID name prefix): one rule for the writer, which
refuses, and for confgend, which escapes; the prefix's trailing blank kept from the command line to the
generated extensions.conf.

confgend is imported here on purpose: the rule is confdb's (validation.dialplan_char, dialplan_blanks) and
these tests hold the two sides to it.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confdb import validation
from confdb.read.confgend import load_snapshot
from confgend import escape
from confgend.generators import GENERATORS
from confgend.generators.base import Context
from testkit.admin_cli import Admin, make_admin
from testkit.pbxdb import PbxDatabase

FIELD = "incall.callerid_name_prefix"


@pytest.fixture
def admin(pbx_db: PbxDatabase, tmp_path: Path, capsys, monkeypatch) -> Admin:
    return make_admin(pbx_db, tmp_path, capsys, monkeypatch)


def _dialplan(pbx_db: PbxDatabase) -> str:
    with psycopg.connect(pbx_db.dsn("pbx_confgend")) as conn:
        snap = load_snapshot(conn)
    return GENERATORS["asterisk/extensions.conf"].generate(snap, Context())


def test_the_prefix_keeps_its_trailing_blank_up_to_the_dialplan(admin: Admin, pbx_db: PbxDatabase) -> None:
    admin("queue", "add", "support")
    admin("incall", "add", "_04123457XX", "queue:support", "--callerid-name-prefix", "SUPPORT ")
    [incall] = admin.json("incall", "list")
    assert incall["callerid_name_prefix"] == "SUPPORT "
    assert "'SUPPORT '" in admin("incall", "list")  # quoted in text, where a blank would not show
    assert "Gosub(pbx-incall,s,1(SUPPORT ,${EXTEN},incall))" in _dialplan(pbx_db)
    admin("incall", "set", "_04123457XX", "--callerid-name-prefix", "  Sales:   team  ")
    assert admin.json("incall", "show", "_04123457XX")["callerid_name_prefix"] == "Sales: team "


@pytest.mark.parametrize("ch", list(";#$(),=|[]{}\"'\\<>&^%`"))
def test_the_writer_refuses_what_the_dialplan_would_drop(admin: Admin, pbx_db: PbxDatabase, ch: str) -> None:
    admin("queue", "add", "support")
    value = f"{ch}include /etc/passwd" if ch == "#" else f"A{ch}B "
    err = admin("incall", "add", "100", "queue:support", "--callerid-name-prefix", value, status=1)
    assert err.startswith(f"pbx-admin: {FIELD}: must not contain {ch!r} (position "), err
    assert admin.json("incall", "list") == []


def test_a_prefix_too_long_with_its_blank_is_refused() -> None:
    assert validation.dialplan_text(FIELD, "x" * 19 + " ", max_len=20) == "x" * 19 + " "
    with pytest.raises(validation.ValidationError, match="21 characters long"):
        validation.dialplan_text(FIELD, "x" * 20 + " ", max_len=20)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30))
def test_one_rule_what_the_writer_stores_confgend_writes_unchanged(value: str) -> None:
    """Every value the writer accepts comes out of confgend's escape as stored; every value it refuses for
    a character is one confgend would have changed."""
    try:
        stored = validation.dialplan_text(FIELD, value, max_len=20)
    except validation.ValidationError as exc:
        if "must not contain" in exc.message and "U+" not in exc.message:
            assert escape.dialplan_text(validation.dialplan_blanks(value), 20) != validation.dialplan_blanks(
                value
            )
        return
    assert escape.dialplan_text(stored, 20) == stored
