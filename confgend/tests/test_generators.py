"""Generators on the fixed dataset: golden files, Asterisk's parser (model), asterisklint, and a hypothesis
property: no value, however hostile, adds or removes a section, a setting or a directive."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from confgend import escape
from confgend.generators import GENERATORS
from confgend.generators.base import Context
from confgend.generators.extensions import last_minute
from testkit.confgend import dataset
from testkit.confgend.astconf import parse
from testkit.confgend.dataset import make_context

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CONFGEND_UPDATE_GOLDEN") == "1"
ASTERISKLINT = Path(sys.executable).parent / "asterisklint"


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return make_context(tmp_path_factory.mktemp("secrets"))


def generate_all(snap, context: Context) -> dict[str, str]:
    ctx = Context(context.settings)
    return {name: gen.generate(snap, ctx) for name, gen in GENERATORS.items()}


SECTIONLESS = {"asterisk/acl.conf"}  # no named ACL: Asterisk reads the file, finds none, and is content


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_golden(name: str, context: Context) -> None:
    output = GENERATORS[name].generate(dataset.snapshot(), Context(context.settings))
    golden = GOLDEN / name.replace("/", "__")
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(output, encoding="utf-8")
    assert output == golden.read_text(encoding="utf-8"), (
        f"regenerate with CONFGEND_UPDATE_GOLDEN=1 ({golden})"
    )
    parsed = parse(output)
    assert parsed.directives == []
    assert parsed.sections or name in SECTIONLESS


def test_generated_files_parse_and_skip_only_what_they_should(context: Context) -> None:
    ctx = Context(context.settings)
    for gen in GENERATORS.values():
        gen.generate(dataset.snapshot(), ctx)
    # user 4 is disabled: their extension is not generated (their line still is, it may be shared)
    assert ctx.skipped == ["extension '1004'@'internal' left out: user 4 is disabled"]


def test_pjsip_details(context: Context) -> None:
    out = GENERATORS["asterisk/pjsip.conf"].generate(dataset.snapshot(), Context(context.settings))
    sections = {(s.name, s.options): dict(s.items) for s in parse(out).sections}
    auth = sections[("abcd1234", ("pbx-auth",))]
    assert auth == {"username": "abcd1234", "realm": "pbx", "md5_cred": dataset.HA1}
    assert sections[("pbx-auth", ("!",))] == {"type": "auth", "auth_type": "md5"}
    # shared line: the main user's caller ID; disabled line: absent
    assert sections[("shared01", ("pbx-endpoint",))]["callerid"] == '"Bob Durand" <+33123456789>'
    assert not any(name == "offline" for name, _ in sections)
    assert sections[("provider-reg",)] if False else sections[("provider-reg", ())]["type"] == "registration"
    assert sections[("carrier-identify", ())]["match"] == "192.0.2.10/32,198.51.100.0/24"


def test_manager_without_secret_leaves_the_user_out(tmp_path: Path) -> None:
    ctx = Context({"manager": {"users": [{"name": "ctid", "secret_file": str(tmp_path / "missing")}]}})
    out = GENERATORS["asterisk/manager.conf"].generate(dataset.snapshot(), ctx)
    assert [s.name for s in parse(out).sections] == ["general"]
    assert "secret" not in out
    assert "missing" in ctx.skipped[0]


def test_manager_permits_localhost_only_and_filters_events(context: Context) -> None:
    out = GENERATORS["asterisk/manager.conf"].generate(dataset.snapshot(), Context(context.settings))
    for section in parse(out).sections[1:]:
        items = section.items
        assert ("deny", "0.0.0.0/0.0.0.0") in items and ("permit", "127.0.0.1/255.255.255.255") in items
        assert ("eventfilter", "!Event: Newexten") in items and ("eventfilter", "!Event: VarSet") in items


def test_dialplan_passes_asterisklint(tmp_path: Path, context: Context) -> None:
    assert ASTERISKLINT.exists(), f"{ASTERISKLINT} is missing: make deps installs it (requirements-dev.txt)"
    path = tmp_path / "extensions.conf"
    path.write_text(
        GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), Context(context.settings))
    )
    proc = subprocess.run(
        [str(ASTERISKLINT), "dialplan-check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = proc.stdout + proc.stderr
    # E_ errors and W_ warnings fail; I_ (not implemented by the linter: hints) and H_ (style hints such
    # as non-canonical patterns, which come from the database as the administrator wrote them) do not.
    problems = [line for line in report.splitlines() if " E_" in line or " W_" in line]
    assert problems == [], report
    assert "Traceback" not in report, report


# ------------------------------------------------------------------------------------------- property

HOSTILE = [
    "\n[evil]\nfoo = bar",
    "name\nevil",  # two valid names on two lines
    "1001\n1002",
    "\r\n#include /etc/passwd",
    "\n#exec /bin/sh",
    "x;--",
    "a ; b",
    "]evil[",
    "\\",
    "=> 1",
    ",,,|||",
    "\0NUL",
    "\u2028line\u2029sep\x85",
    "${SHELL(rm -rf /)}",
    "a)(b,c",
    '"quoted" <123>',
    "x" * 65536,
    "é" * 40000,
    " ",
    "",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=200),
    st.text(alphabet=st.sampled_from(list('\n\r;[]#=,\0\\"<>|()${}- x\t\x0b\x0c')), max_size=60),
)


@pytest.fixture(scope="module")
def expected_shapes(context: Context) -> dict[str, list]:
    return {name: parse(text).shape() for name, text in generate_all(dataset.snapshot(), context).items()}


def _value_shapes(text: str) -> list[tuple[str, int, int]]:
    """For settings whose structure is in their value (dialplan, mailboxes, queue members): the
    separators that structure them must not change either."""
    shapes = []
    for section in parse(text).sections:
        for key, value in section.items:
            if key == "exten":
                shapes.append((key, value.count(","), value.count("(")))
            elif key == "member" or key.isdigit():
                shapes.append((key, value.count(","), value.count("|")))
    return shapes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(dataset.TEXT_FIELDS), value=hostile_text)
def test_no_text_value_changes_the_structure(
    field: str, value: str, context: Context, expected_shapes
) -> None:
    files = generate_all(dataset.snapshot(**{field: value}), context)
    benign = generate_all(dataset.snapshot(), context)
    for name, text in files.items():
        parsed = parse(text)
        assert parsed.directives == [], name
        assert parsed.shape() == expected_shapes[name], name
        assert _value_shapes(text) == _value_shapes(benign[name]), name


def _empty_is_valid(check):
    """Optional fields: empty means "not set" (no caller ID, no prefix, no from user), not invalid."""
    return lambda value: value if value == "" else check(value)


# How the generators check each name field: a value they accept only renames its object (skipped below);
# any value they refuse must leave out exactly what a plainly invalid one ("in valid") leaves out.
NAME_CHECKS = {
    "line_name": escape.ident, "auth_username": escape.ident, "realm": escape.ident,
    "line_context": escape.ident, "codec": lambda v: escape.codecs([v]),
    "callerid_num": _empty_is_valid(escape.dialable), "language": escape.language,
    "vm_mailbox": escape.digits, "vm_pin": escape.digits, "agent_number": escape.digits,
    "queue_name": escape.ident, "group_name": escape.ident, "trunk_name": escape.ident,
    "trunk_host": escape.host, "trunk_username": escape.secret,
    "trunk_from_user": _empty_is_valid(escape.secret), "trunk_password": escape.secret,
    "identify_match": escape.cidr, "did": escape.exten, "outcall_pattern": escape.exten,
    "outcall_prefix": escape.prefix, "outcall_callerid": _empty_is_valid(escape.dialable),
    "context_name": escape.ident, "music_class": escape.ident, "timezone": escape.timezone,
}  # fmt: skip
INVALID = "in valid"


def test_every_name_field_is_checked() -> None:
    assert set(NAME_CHECKS) == set(dataset.NAME_FIELDS)
    for field, check in NAME_CHECKS.items():
        check(dataset.DEFAULT_NAMES[field])  # the dataset's own values are valid
        with pytest.raises(escape.Unsafe):
            check(INVALID)


@pytest.fixture(scope="module")
def invalid_shapes(context: Context) -> dict[str, dict[str, tuple[list, list]]]:
    """Per name field, per file: the shape (and value shapes) when that field holds an invalid value."""
    out = {}
    for field in dataset.NAME_FIELDS:
        files = generate_all(dataset.snapshot(**{field: INVALID}), context)
        out[field] = {name: (parse(text).shape(), _value_shapes(text)) for name, text in files.items()}
    return out


def test_an_invalid_name_leaves_its_object_out(invalid_shapes, expected_shapes) -> None:
    """The reference of the property below is not trivial: every invalid name removes something."""
    for field, files in invalid_shapes.items():
        changed = [name for name, (shape, _) in files.items() if shape != expected_shapes[name]]
        assert changed, f"{field}: an invalid value changes nothing?"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(dataset.NAME_FIELDS), value=hostile_text)
def test_no_name_value_adds_anything(field: str, value: str, context: Context, invalid_shapes) -> None:
    """A checked name that is not valid leaves its object out: exactly the sections and options of the
    reference invalid value, the same dialplan/mailbox/member structure, no directive."""
    try:
        NAME_CHECKS[field](value)
        assume(False)  # a valid name only renames its object
    except escape.Unsafe:
        pass
    files = generate_all(dataset.snapshot(**{field: value}), context)
    for name, text in files.items():
        parsed = parse(text)
        assert parsed.directives == [], name
        assert (parsed.shape(), _value_shapes(text)) == invalid_shapes[field][name], (field, name)


# ----------------------------------------------------------------------------------------------- escape


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Alice", "Alice"),
        ("a;b", "a\\;b"),
        ("line\nbreak\r\x00", "linebreak"),
        ("  spaced   out  ", "spaced out"),
        ("x" * 1000, "x" * escape.MAX_VALUE_BYTES),
    ],
)
def test_escape_text(value: str, expected: str) -> None:
    assert escape.text(value) == expected


def test_escape_bounds_utf8_on_a_character_boundary() -> None:
    out = escape.text("é" * 1000)
    assert len(out.encode()) <= escape.MAX_VALUE_BYTES
    assert set(out) == {"é"}


@pytest.mark.parametrize("value", ["a b", "x]", "[x", "", "a" * 41, None, "é", "a;b"])
def test_escape_ident_refuses(value: object) -> None:
    with pytest.raises(escape.Unsafe):
        escape.ident(value)


def test_all_idents_counts_the_names() -> None:
    assert escape.all_idents("a", "b-1", "c.d")
    assert not escape.all_idents("a\nb", "c", "d")  # three values, not four names
    assert not escape.all_idents("a", "b\n", "c")
    assert not escape.all_idents("a", None, "c")
    assert not escape.all_idents("a", "b c")


def test_dialplan_text_keeps_only_harmless_characters() -> None:
    assert escape.dialplan_text("Sales: ${EVIL},(x);[y]") == "Sales: EVILxy"


def test_asterisklint_is_the_real_cli() -> None:
    found = shutil.which("asterisklint", path=str(ASTERISKLINT.parent))
    assert found, f"{ASTERISKLINT} is missing: make deps installs it (requirements-dev.txt)"


def test_schedule_periods_close_when_agid_says_so() -> None:
    """The static default (GotoIfTime includes its end minute) agrees with agid (start <= t < end)."""
    text = GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), Context({}))
    assert "GotoIfTime(08:30-11:59,mon&tue&wed&thu&fri,*,*,Europe/Paris?open)" in text
    assert "GotoIfTime(14:00-17:59,mon&tue&wed&thu&fri,*,*,Europe/Paris?open)" in text
    assert [last_minute(t) for t in (time(0, 1), time(12, 0), time(23, 59), time.max)] == [
        time(0, 0),
        time(11, 59),
        time(23, 58),
        time(23, 59),
    ]


def test_transports_are_bound_as_configured() -> None:
    ctx = Context({"pjsip": {"transports": {"tcp": "127.0.0.1:5070"}, "auth_type": "digest"}})
    sections = {s.name: dict(s.items) for s in parse(GENERATORS["asterisk/pjsip.conf"].generate(
        dataset.snapshot(), ctx)).sections}  # fmt: skip
    assert "transport-udp" not in sections
    assert sections["transport-tcp"] == {"type": "transport", "protocol": "tcp", "bind": "127.0.0.1:5070"}
    assert sections["pbx-auth"]["auth_type"] == "digest"
    assert "transport" not in sections["pbx-endpoint"]  # no udp transport to default to
    assert any("transport 'udp' is not configured" in s for s in ctx.skipped)  # the udp trunks
    for bad in ({"transports": {"udp": "0.0.0.0:5060\n[x]"}}, {"auth_type": "plain"}):
        with pytest.raises(escape.Unsafe):
            GENERATORS["asterisk/pjsip.conf"].generate(dataset.snapshot(), Context({"pjsip": bad}))
