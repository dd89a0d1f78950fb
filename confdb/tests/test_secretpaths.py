"""The secret paths of confdb.secretpaths are what the Debian packages install: the units' credentials, the
packaged config files, the postinst scripts; and they are the code defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from confdb import secretpaths
from confdb.config import apply, read_layer
from confdb.relay import settings as relay_settings
from confdb.secretpaths import ADMIN_DB_DSN, CREDENTIALS, CREDENTIALS_DIR, SECRETS_DIR

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
UNITS = sorted(PACKAGES.glob("*/debian/*.service"))
CONFIGS = sorted(PACKAGES.glob("*/debian/etc/*/config.yml"))


def _unit_name(path: Path) -> str:
    """``pbx-confdb.pbx-event-relay.service`` (debhelper's package.unit) is ``pbx-event-relay.service``."""
    return path.name.split(".", 1)[1] if path.name.count(".") > 1 else path.name


def _strings(data: object) -> list[str]:
    if isinstance(data, dict):
        return [s for value in data.values() for s in _strings(value)]
    if isinstance(data, list):
        return [s for value in data for s in _strings(value)]
    return [data] if isinstance(data, str) else []


def test_the_packaging_is_found() -> None:
    assert {_unit_name(p) for p in UNITS} >= {s.unit for s in CREDENTIALS}
    assert len(CONFIGS) >= 5


def test_units_load_exactly_these_credentials() -> None:
    loaded = set()
    for path in UNITS:
        for credential, stored in re.findall(r"^LoadCredential=([^:\n]+):(\S+)$", path.read_text(), re.M):
            loaded.add((_unit_name(path), credential, Path(stored)))
    assert loaded == {(s.unit, s.credential, s.stored) for s in CREDENTIALS}


def test_units_wait_for_their_stored_secrets() -> None:
    for path in UNITS:
        unit = _unit_name(path)
        conditions = set(re.findall(r"^ConditionPathExists=(/etc/pbx/secrets/\S+)$", path.read_text(), re.M))
        stored = {str(s.stored) for s in CREDENTIALS if s.unit == unit}
        assert conditions <= stored, unit


def test_packaged_configs_read_the_credentials() -> None:
    """Every secret file named in a packaged config.yml is one of the credentials (or pbx-admin's DSN)."""
    named = set()
    for path in CONFIGS:
        for value in _strings(read_layer(path)):
            if value.startswith((str(CREDENTIALS_DIR) + "/", str(SECRETS_DIR) + "/")):
                named.add(value)
    assert named == {str(s.path) for s in CREDENTIALS} | {str(ADMIN_DB_DSN)}


def test_admin_reads_the_writer_dsn() -> None:
    admin = yaml.safe_load((PACKAGES / "confdb/debian/etc/pbx-admin/config.yml").read_text())
    assert admin["db"]["dsn_file"] == str(ADMIN_DB_DSN)


@pytest.mark.parametrize("package", ["ctid", "confgend"])
def test_postinst_generates_the_ami_secret(package: str) -> None:
    secret = getattr(secretpaths, f"{package.upper()}_AMI_SECRET")
    text = (PACKAGES / package / "debian" / f"pbx-{package}.postinst").read_text()
    assert re.search(r"^secrets=(\S+)$", text, re.M).group(1) == str(SECRETS_DIR)  # type: ignore[union-attr]
    assert f'"$secrets/{secret.stored.name}"' in text
    waited = re.search(r"for f in ([^;]+); do", text).group(1).split()  # type: ignore[union-attr]
    assert {SECRETS_DIR / f for f in waited} == {
        s.stored for s in CREDENTIALS if s.unit == secret.unit and s is not secret
    }


def test_relay_code_defaults_are_the_packaged_values() -> None:
    packaged = read_layer(PACKAGES / "confdb/debian/etc/pbx-event-relay/config.yml")
    assert (
        relay_settings.DEFAULTS["db"]["dsn_file"]
        == packaged["db"]["dsn_file"]
        == str(secretpaths.RELAY_DB_DSN.path)
    )
    assert packaged["bus"]["url_file"] == str(secretpaths.RELAY_BUS_URL.path)
    apply(relay_settings.SCHEMA, [("packaged", packaged)])  # no unknown key, no bad value
