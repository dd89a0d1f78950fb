"""ctid's settings: the defaults of the CTI listener and login limits, their checks, and --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from confdb.config import apply, read_layer
from confdb.secretpaths import CTID_AMI_SECRET, CTID_BUS_URL, CTID_DB_DSN
from ctid.config import SCHEMA, ConfigError, build, load
from ctid.main import HELP

BASE = {
    "ami": {"username": "ctid", "secret": "s"},
    "db": {"dsn_file": "/nonexistent"},
    "bus": {"url_file": "/nonexistent"},
}


def test_listener_and_login_defaults() -> None:
    cti = build(BASE).cti
    assert (cti.backlog, cti.login_account_failures, cti.login_account_max_delay) == (1024, 5, 60.0)
    assert build({**BASE, "cti": {"backlog": 4096}}).cti.backlog == 4096


@pytest.mark.parametrize(
    ("cti", "named"),
    [
        ({"backlog": 0}, "cti.backlog"),
        ({"backlog": "1024"}, "cti.backlog"),
        ({"login_account_failures": 0}, "cti.login_account_failures"),
        ({"login_account_max_delay": -1}, "cti.login_account_max_delay"),
    ],
)
def test_errors_name_the_setting(cti: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build({**BASE, "cti": cti})


def test_help_lists_the_keys() -> None:
    for key in ("backlog (1024)", "login_account_failures (5)", "login_account_max_delay (60)"):
        assert key in HELP


PACKAGED = (
    Path(__file__).resolve().parents[2] / "packages" / "ctid" / "debian" / "etc" / "ctid" / "config.yml"
)


def test_packaged_config_is_accepted_and_the_defaults_are_its_credentials() -> None:
    loaded = apply(SCHEMA, [(str(PACKAGED), read_layer(PACKAGED))])  # the secrets are not read here
    for key, secret in (
        ("ami.secret_file", CTID_AMI_SECRET),
        ("db.dsn_file", CTID_DB_DSN),
        ("bus.url_file", CTID_BUS_URL),
    ):
        assert loaded[key] == apply(SCHEMA, [])[key] == str(secret.path)


def test_errors_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("ami: {secret: s}\ndb: {dsn_file: /nonexistent}\nbus: {url_file: /nonexistent}\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-local.yml").write_text("cti: {port: 70000}\n")
    with pytest.raises(
        ConfigError, match=rf"^{tmp_path}/conf\.d/10-local\.yml: cti\.port: must be 1\.\.65535"
    ):
        load(config)
    (tmp_path / "conf.d" / "10-local.yml").write_text("cti: {prot: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/conf\.d/10-local\.yml: unknown option 'cti\.prot'"):
        load(config)
    (tmp_path / "conf.d" / "10-local.yml").write_text("cti: {port: 0}\n")
    assert load(config, {"ami": {"port": 5039}}).ami.port == 5039


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "ami").write_text("s3cret\n")
    (tmp_path / "dsn").write_text("host=db\n")
    config = build(
        {
            "ami": {"secret_file": str(tmp_path / "ami")},
            "db": {"dsn_file": str(tmp_path / "dsn")},
            "bus": {"url_file": str(tmp_path / "missing")},  # missing: no bus
        }
    )
    assert (config.ami.secret, config.db and config.db.dsn, config.bus) == ("s3cret", "host=db", None)
    with pytest.raises(ConfigError, match=r"ami\.secret: not set"):
        build({**BASE, "ami": {"secret_file": str(tmp_path / "missing")}})
    with pytest.raises(ConfigError, match=r"ami\.backoff_initial \(60\.0, from settings\) must not exceed"):
        build({**BASE, "ami": {"secret": "s", "backoff_initial": 60}})
