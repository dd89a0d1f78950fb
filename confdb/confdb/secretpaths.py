"""Where every secret of the distribution lives: one table, equal to what the Debian packages install.

Secrets are stored root-only in ``/etc/pbx/secrets/`` (written by ``pbx-admin db init``, ``pbx-db-setup``
and the postinst scripts). A daemon never reads that folder: its systemd unit hands each secret over as a
credential (``LoadCredential=<credential>:<stored>``), which the daemon reads at
``/run/credentials/<unit>/<credential>``; that path is the daemon's code default and the value of its
packaged ``config.yml``. ``confdb/tests/test_secretpaths.py`` checks this table against the packaging.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SECRETS_DIR = Path("/etc/pbx/secrets")
CREDENTIALS_DIR = Path("/run/credentials")


@dataclass(frozen=True)
class Secret:
    unit: str
    """The systemd unit that loads it (``pbx-agid.service``)."""
    credential: str
    """Its name among the unit's credentials (``db.dsn``)."""
    stored: Path
    """The root-only file it is kept in."""

    @property
    def path(self) -> Path:
        """Where the daemon reads it."""
        return CREDENTIALS_DIR / self.unit / self.credential


AMQP_URL = SECRETS_DIR / "amqp.url"

AGID_DB_DSN = Secret("pbx-agid.service", "db.dsn", SECRETS_DIR / "pbx_agid.dsn")
CONFGEND_DB_DSN = Secret("pbx-confgend.service", "db.dsn", SECRETS_DIR / "pbx_confgend.dsn")
CONFGEND_AMI_SECRET = Secret("pbx-confgend.service", "ami.secret", SECRETS_DIR / "ami-confgend.secret")
CONFGEND_BUS_URL = Secret("pbx-confgend.service", "bus.url", AMQP_URL)
CTID_DB_DSN = Secret("pbx-ctid.service", "db.dsn", SECRETS_DIR / "pbx_ctid.dsn")
CTID_AMI_SECRET = Secret("pbx-ctid.service", "ami.secret", SECRETS_DIR / "ami-ctid.secret")
CTID_BUS_URL = Secret("pbx-ctid.service", "bus.url", AMQP_URL)
RELAY_DB_DSN = Secret("pbx-event-relay.service", "db.dsn", SECRETS_DIR / "pbx_writer.dsn")
RELAY_BUS_URL = Secret("pbx-event-relay.service", "bus.url", AMQP_URL)

#: Every credential a unit loads.
CREDENTIALS: tuple[Secret, ...] = (
    AGID_DB_DSN,
    CONFGEND_DB_DSN,
    CONFGEND_AMI_SECRET,
    CONFGEND_BUS_URL,
    CTID_DB_DSN,
    CTID_AMI_SECRET,
    CTID_BUS_URL,
    RELAY_DB_DSN,
    RELAY_BUS_URL,
)

#: pbx-admin runs as root, outside systemd, and reads the writer's connection string where it is kept.
ADMIN_DB_DSN = SECRETS_DIR / "pbx_writer.dsn"
