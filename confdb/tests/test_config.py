"""The shared configuration loader: layers, source tracking, unknown keys, free-form sections, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from confdb.config import (
    COMMAND_LINE,
    ConfigError,
    Open,
    Option,
    apply,
    defaults,
    integer,
    load_layers,
    merge,
    read_secret,
)

SCHEMA: dict[str, Any] = {
    "port": Option(4573, integer(0, 65535)),
    "db": {"dsn": Option(None), "dsn_file": Option(None), "pool": Option(2, integer(1, 10))},
    "extra": Open({"a": {"b": 1}}),
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_a_fresh_copy() -> None:
    first = defaults(SCHEMA)
    first["extra"]["a"]["b"] = 2
    assert defaults(SCHEMA) == {
        "port": 4573,
        "db": {"dsn": None, "dsn_file": None, "pool": 2},
        "extra": {"a": {"b": 1}},
    }


def test_layers_in_order_and_sources(tmp_path: Path) -> None:
    config = _write(tmp_path / "config.yml", "port: 5000\ndb:\n  pool: 3\nextra: {a: {c: 2}}\n")
    _write(tmp_path / "conf.d" / "20-b.yml", "db: {pool: 5}\n")
    first = _write(tmp_path / "conf.d" / "10-a.yml", "db: {pool: 4}\nport: 5001\n")
    _write(tmp_path / "conf.d" / "30-ignored.yaml", "db: {pool: 9}\n")  # only *.yml
    _write(tmp_path / "conf.d" / "40-empty.yml", "")
    _write(tmp_path / "conf.d" / "50-empty-section.yml", "db:\n")
    loaded = load_layers(SCHEMA, config, {"port": 6000})
    assert (loaded["port"], loaded["db.pool"], loaded["db.dsn"]) == (6000, 5, None)
    assert loaded["extra"] == {"a": {"b": 1, "c": 2}}  # free-form sections merge key by key
    assert loaded.source("port") == COMMAND_LINE
    assert loaded.source("db.pool") == str(tmp_path / "conf.d" / "20-b.yml")
    assert loaded.source("db.dsn") == "default"
    assert loaded.source("extra.a.c") == str(config)
    assert loaded.section("db") == {"dsn": None, "dsn_file": None, "pool": 5}
    assert loaded.where("db.pool") == f"db.pool (5, from {tmp_path / 'conf.d' / '20-b.yml'})"
    assert str(first) != loaded.source("db.pool")


def test_without_files_the_defaults(tmp_path: Path) -> None:
    loaded = load_layers(SCHEMA, tmp_path / "config.yml")
    assert (loaded["port"], loaded["db.pool"]) == (4573, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: 70000\n", "port: expected an integer from 0 to 65535, got 70000"),
        ("db: {pool: 0}\n", "db.pool: expected an integer from 1 to 10, got 0"),
        ("prot: 1\n", "unknown option 'prot' (known: db, extra, port)"),
        ("db: {size: 1}\n", "unknown option 'db.size' (known: db.dsn, db.dsn_file, db.pool)"),
        ("db: 3\n", "db: must be a mapping of settings, got 3"),
        ("extra: [1]\n", "extra: must be a mapping of settings"),
        ("- a list\n", "expected a mapping of options, got list"),
        ("a: [unclosed\n", "invalid YAML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = _write(tmp_path / "config.yml", "port: 5000\n")
    bad = _write(tmp_path / "conf.d" / "50-bad.yml", text)
    with pytest.raises(ConfigError) as info:
        load_layers(SCHEMA, config)
    assert str(info.value).startswith(f"{bad}: ")
    assert message in str(info.value)


def test_command_line_errors_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^command line: db\.pool: expected an integer"):
        apply(SCHEMA, [(COMMAND_LINE, {"db": {"pool": "x"}})])


def test_merge_is_plain_and_copies() -> None:
    base = {"db": {"dsn": None, "pool": 2}}
    merged = merge(base, {"db": {"pool": 3}})
    merged["db"]["dsn"] = "x"
    assert base == {"db": {"dsn": None, "pool": 2}}
    assert merged == {"db": {"dsn": "x", "pool": 3}}


# -- secrets ----------------------------------------------------------------------------------------


def test_secret_from_the_value_or_the_file(tmp_path: Path) -> None:
    secret = _write(tmp_path / "dsn", "host=db\n")
    assert read_secret("db.dsn", " host=x ", str(secret)) == "host=x"  # the value wins
    assert read_secret("db.dsn", "", str(secret)) == "host=db"
    assert read_secret("db.dsn", None, secret) == "host=db"
    assert read_secret("db.dsn", None, None) is None
    assert read_secret("db.dsn", None, str(_write(tmp_path / "empty", "\n"))) is None
    assert read_secret("db.dsn", None, str(tmp_path / "missing"), missing_ok=True) is None


@pytest.mark.parametrize(
    ("value", "path", "options", "message"),
    [
        (None, "missing", {}, "db.dsn_file: cannot read {tmp}/missing: No such file or directory"),
        (None, "", {"required": True}, "db.dsn: not set (set it, or db.dsn_file)"),
        (None, "empty", {"required": True}, "db.dsn_file: {tmp}/empty is empty"),
        (3, "", {}, "db.dsn: must be a string"),
        (None, "folder", {"missing_ok": True}, "db.dsn_file: cannot read {tmp}/folder: Is a directory"),
    ],
)
def test_secret_errors_name_the_key(
    tmp_path: Path, value: Any, path: str, options: dict[str, bool], message: str
) -> None:
    _write(tmp_path / "empty", "")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError) as info:
        read_secret("db.dsn", value, str(tmp_path / path) if path else path, **options)
    assert str(info.value) == message.format(tmp=tmp_path)


def test_secret_errors_name_the_file_the_setting_came_from(tmp_path: Path) -> None:
    config = _write(tmp_path / "config.yml", f"db: {{dsn_file: {tmp_path / 'missing'}}}\n")
    loaded = load_layers(SCHEMA, config)
    with pytest.raises(ConfigError, match=rf"^{config}: db\.dsn_file: cannot read {tmp_path}/missing"):
        loaded.secret("db.dsn")
    assert loaded.secret("db.dsn", missing_ok=True) is None
    with pytest.raises(ConfigError, match=r"^default: db\.dsn: not set"):
        apply(SCHEMA, []).secret("db.dsn", required=True)
