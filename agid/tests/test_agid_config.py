"""Layered configuration and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agid.config import Config, ConfigError, load_config, merge
from agid.main import build_parser, main


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_files(tmp_path: Path) -> None:
    assert load_config(tmp_path) == Config()
    assert Config().listen_address == "127.0.0.1"
    assert Config().listen_port == 4573


def test_layers_in_order(tmp_path: Path) -> None:
    _write(tmp_path / "config.yml", "listen_port: 5000\nmax_sessions: 10\nlog_level: debug\n")
    _write(tmp_path / "conf.d" / "20-b.yml", "max_sessions: 30\n")
    _write(tmp_path / "conf.d" / "10-a.yml", "max_sessions: 20\nsession_timeout: 4\n")
    _write(tmp_path / "conf.d" / "30-ignored.yaml", "max_sessions: 99\n")  # only *.yml
    _write(tmp_path / "conf.d" / "40-empty.yml", "")
    config = load_config(tmp_path, {"listen_port": 6000, "max_connections": None})
    assert config.listen_port == 6000  # command line wins
    assert config.max_sessions == 30  # conf.d in name order, after config.yml
    assert config.session_timeout == 4.0
    assert config.log_level == "DEBUG"
    assert config.max_connections == 400  # None on the command line: not given


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen_port: 70000\n", "listen_port: expected an integer from 0 to 65535, got 70000"),
        ("listen_port: '4573'\n", "listen_port: expected an integer, got '4573'"),
        ("max_sessions: true\n", "max_sessions: expected an integer, got True"),
        ("listen_address: localhost\n", "listen_address: expected an IP address"),
        ("session_timeout: 0\n", "session_timeout: expected seconds above 0"),
        ("session_timeout: .nan\n", "session_timeout: expected seconds above 0"),
        ("log_level: loud\n", "log_level: expected one of DEBUG"),
        ("listen_prot: 1\n", "unknown option 'listen_prot'"),
        ("max_sessions: 500\n", "max_connections (400, from default) is below max_sessions (500, from "),
        ("status_timeout: 20\n", "status_timeout (20.0, from "),
        ("- a list\n", "expected a mapping of options, got list"),
        ("a: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_values_are_named_with_their_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "conf.d" / "50-bad.yml", text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_command_line_errors_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^command line: max_sessions: expected an integer from 1"):
        merge([("command line", {"max_sessions": 0})])


def test_main_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "config.yml", "max_sessions: 7\n")
    assert main(["--config-dir", str(tmp_path), "--listen-port", "0", "--check-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["max_sessions"] == 7
    assert printed["listen_port"] == 0


def test_main_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "config.yml", "max_sessions: -1\n")
    assert main(["--config-dir", str(tmp_path), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert "config.yml: max_sessions" in err


def test_help_reads_like_a_man_page() -> None:
    text = build_parser().format_help()
    for section in ("configuration:", "dialplan contract:", "signals:", "exit status:", "files:"):
        assert section in text
    for option in ("--config-dir", "--listen-address", "--listen-port", "--max-sessions", "--log-level"):
        assert option in text
    assert "AGID_STATUS" in text


PACKAGED = Path(__file__).resolve().parents[2] / "packages" / "agid" / "debian" / "etc" / "agid"


def test_packaged_config_loads_and_the_default_is_its_credential() -> None:
    from confdb.secretpaths import AGID_DB_DSN

    config = load_config(PACKAGED)
    assert config.db_dsn_file == Config().db_dsn_file == str(AGID_DB_DSN.path)


def test_database_dsn_from_the_value_or_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from agid.services import database_dsn

    (tmp_path / "dsn").write_text("host=db\n")
    assert database_dsn(Config(db_dsn="host=x")) == "host=x"
    assert database_dsn(Config(db_dsn_file=str(tmp_path / "dsn"))) == "host=db"
    assert database_dsn(Config(db_dsn_file=str(tmp_path / "missing"))) is None  # agid runs degraded
    assert f"no database: db_dsn_file: cannot read {tmp_path / 'missing'}" in caplog.text
