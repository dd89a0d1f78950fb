"""pytest plugin: real PostgreSQL and RabbitMQ servers on free loopback ports.

Loaded for every test by ``-p harness.plugin`` in the root pyproject.toml. Fixtures:

- ``postgres`` (session): a started :class:`~harness.postgres.PostgresServer`.
- ``rabbitmq`` (session): a started :class:`~harness.rabbitmq.RabbitMQServer`.
- ``fresh_db`` (function): the name of a new empty database in ``postgres``, dropped afterwards.
- ``pbx`` (module): a whole PBX (:class:`~harness.fullpbx.FullPbx`): the demo company in its own
  database, pbx-event-relay, agid, confgend, ctid and our Asterisk, on free loopback ports.
- ``asterisk`` (module): that PBX's :class:`~harness.asterisk.AsteriskServer`.
- ``phones`` (function): :class:`~harness.sipphone.SipPhones` against that PBX, closed after the test.
- ``cti`` (function): ``cti("1001")`` gives a :class:`~harness.cti.CtiClient` logged in as that demo
  user; closed after the test.

A server that fails to start makes the tests using it error (never skip), with its log tail. A failing
test gets the log tails of the fixtures it used that have ``log_sections()`` (Asterisk, the daemons,
the phones) in its report.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.asterisk import AsteriskServer
from harness.cti import CtiClient
from harness.fullpbx import FullPbx
from harness.postgres import PostgresServer
from harness.rabbitmq import RabbitMQServer
from harness.sipphone import SipPhones
from testkit.pbxdb import PbxCluster, create_database, drop_database

# The importable packages of the components. A component folder has the same name as its package
# (agid/agid/...), and with --import-mode=importlib pytest names agid/tests/conftest.py
# "agid.tests.conftest": if the real package is not imported yet, pytest makes up an empty namespace
# package "agid" from the component folder, which then hides the real one. Importing them before any
# conftest (this plugin loads first) avoids that.
COMPONENT_PACKAGES = ("confdb", "confgend", "agid", "ctid", "pbxtools")

for _name in COMPONENT_PACKAGES:
    # Not installed, or broken: the tests that import it report the real error.
    with contextlib.suppress(Exception):
        importlib.import_module(_name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15 cluster for the whole test session."""
    # Not under pytest's basetemp: that is mode 0700 for root, and the server runs as "postgres".
    base = Path(tempfile.mkdtemp(prefix="pbx-test-pg-"))
    server = PostgresServer(base)
    try:
        server.start()
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node for the whole test session; user ``pbx``, vhost ``/``."""
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a uniquely named empty database, yield its name, drop it after the test."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40].strip("_")
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    try:
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="module")
def pbx(pbx_cluster: PbxCluster, rabbitmq: RabbitMQServer) -> Iterator[FullPbx]:
    """A whole PBX with the demo company, for the tests of one module (calls change its state)."""
    base = Path(tempfile.mkdtemp(prefix="pbx-test-full-"))  # short: Asterisk's CLI socket is in it
    db = create_database(pbx_cluster)
    system = FullPbx(base, db, rabbitmq.url)
    try:
        system.start()
        yield system
    finally:
        system.stop()
        drop_database(db)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def asterisk(pbx: FullPbx) -> AsteriskServer:
    return pbx.asterisk


@pytest.fixture
def phones(pbx: FullPbx, tmp_path: Path) -> Iterator[SipPhones]:
    """SIP phones (pjsua2 processes) against ``pbx``; each closed (unregistered) after the test."""
    host, port = pbx.sip
    group = SipPhones(host, port, tmp_path / "phones")
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def cti(pbx: FullPbx) -> Iterator[Callable[[str], CtiClient]]:
    """``cti("1001")``: a CTI session of ``pbx`` logged in as that demo user; closed after the test."""
    clients: list[CtiClient] = []

    def connect(exten: str) -> CtiClient:
        clients.append(pbx.cti(exten))
        return clients[-1]

    try:
        yield connect
    finally:
        for client in clients:
            client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report gets the logs of the fixtures it used (``log_sections()``), once each."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    shown = {title for title, _ in report.sections}
    for value in getattr(item, "funcargs", {}).values():
        sections = getattr(value, "log_sections", None)
        if not callable(sections):
            continue
        for title, text in sections():
            if f"{title} ({report.when})" not in shown:
                shown.add(f"{title} ({report.when})")
                report.sections.append((f"{title} ({report.when})", text))
