"""pytest plugin: real PostgreSQL and RabbitMQ servers on free loopback ports.

Loaded for every test by ``-p harness.plugin`` in the root pyproject.toml. Fixtures:

- ``postgres`` (session): a started :class:`~harness.postgres.PostgresServer`.
- ``rabbitmq`` (session): a started :class:`~harness.rabbitmq.RabbitMQServer`.
- ``fresh_db`` (function): the name of a new empty database in ``postgres``, dropped afterwards.

A server that fails to start makes the tests using it error (never skip), with its log tail.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import PostgresServer
from harness.rabbitmq import RabbitMQServer

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
