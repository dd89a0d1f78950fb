"""confgend's settings: the packaged file, the defaults of the secrets, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from confdb.config import ConfigError, apply, read_layer
from confdb.secretpaths import CONFGEND_AMI_SECRET, CONFGEND_DB_DSN
from confgend.config import DEFAULTS, SCHEMA, load_settings, validate
from confgend.main import _ami_secret, main

PACKAGED = Path(__file__).resolve().parents[2] / "packages" / "confgend" / "debian" / "etc" / "confgend"


def test_packaged_config_is_accepted_and_the_defaults_are_its_credentials() -> None:
    packaged = read_layer(PACKAGED / "config.yml")
    loaded = apply(SCHEMA, [(str(PACKAGED / "config.yml"), packaged)])  # the secrets are not read here
    assert loaded["db.dsn_file"] == DEFAULTS["db"]["dsn_file"] == str(CONFGEND_DB_DSN.path)
    assert loaded["ami.secret_file"] == Path(DEFAULTS["ami"]["secret_file"]) == CONFGEND_AMI_SECRET.path
    assert loaded["asterisk"]["manager"]["secrets_dir"] == "/run/confgend/ami"


def _config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "dsn").write_text("host=db\n")
    config = tmp_path / "config.yml"
    config.write_text(f"db: {{dsn_file: {tmp_path / 'dsn'}}}\n" + text)
    return config


def test_layers_and_secret_files(tmp_path: Path) -> None:
    config = _config(tmp_path, "listen: {port: 9000}\nasterisk: {pjsip: {a: 1}}\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-local.yml").write_text(
        "listen: {max_connections: 8}\nasterisk: {pjsip: {b: 2}}\n"
    )
    settings = load_settings(config, {"listen": {"host": "::1"}})
    assert (settings.host, settings.port, settings.max_connections) == ("::1", 9000, 8)
    assert (settings.dsn, settings.bus_url) == ("host=db", None)
    assert settings.asterisk == {"pjsip": {"a": 1, "b": 2}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen: {port: 70000}\n", "listen.port: expected a number from 0 to 65535, got 70000"),
        ("threads: '4'\n", "threads: expected a number, got '4'"),
        ("listen: {prot: 1}\n", "unknown option 'listen.prot'"),
        ("bus: {url_file: /nonexistent/bus.url}\n", "bus.url_file: cannot read /nonexistent/bus.url"),
    ],
)
def test_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = _config(tmp_path, "")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "50-bad.yml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(info.value).startswith(f"{tmp_path / 'conf.d' / '50-bad.yml'}: {message}")


def test_ami_secret_is_read_when_needed(tmp_path: Path) -> None:
    (tmp_path / "ami").write_text("s3cret\n")
    settings = validate({"db": {"dsn": "x"}, "ami": {"secret_file": str(tmp_path / "ami")}})
    assert _ami_secret(settings) == "s3cret"
    missing = validate({"db": {"dsn": "x"}, "ami": {"secret_file": str(tmp_path / "missing")}})
    with pytest.raises(ConfigError, match=r"^ami\.secret_file: cannot read .*missing: No such file"):
        _ami_secret(missing)


def test_main_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("confgend.main.logs.setup", lambda *args, **kwargs: None)  # keep pytest's handlers
    config = _config(tmp_path, "threads: 0\n")
    assert main(["--config", str(config)]) == 2
    assert f"confgend: {config}: threads: expected a number from 1 to 64, got 0" in capsys.readouterr().err
