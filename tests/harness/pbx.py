"""pytest plugin: a PBX database (roles, migrations, grants) on the harness's PostgreSQL.

Fixtures:
- ``pbx_cluster`` (session): roles created once, a template database migrated to head.
- ``pbx_db`` (function): a fresh database cloned from that template; ``pbx_db.dsn(role)``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import PostgresServer
from testkit.pbxdb import PbxCluster, PbxDatabase, create_database, drop_database, prepare_cluster


@pytest.fixture(scope="session")
def pbx_cluster(postgres: PostgresServer) -> PbxCluster:
    return prepare_cluster(postgres, Path(tempfile.mkdtemp(prefix="pbx-test-secrets-")))


@pytest.fixture
def pbx_db(pbx_cluster: PbxCluster) -> Iterator[PbxDatabase]:
    db = create_database(pbx_cluster)
    yield db
    drop_database(db)
