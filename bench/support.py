"""What every benchmark gets: a private PostgreSQL (started on first use, on a free loopback port, through
tests/harness), fresh PBX databases, a scratch directory, and the shape of a result line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def python_path() -> str:
    """PYTHONPATH for child processes: the harness and the components' sources."""
    parts = [str(REPO / "tests"), str(REPO / "confdb"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


def result(
    figure: str, value: float, unit: str, reference: float, target: float, **extra: Any
) -> dict[str, Any]:
    """One output line. `ratio` is value / reference (how many times slower than the reference)."""
    return {
        "figure": figure,
        "value": round(value, 4),
        "unit": unit,
        "reference": round(reference, 4),
        "ratio": round(value / reference, 2) if reference else None,
        "target": target,
        **extra,
    }


def run_timed(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, int, str, str]:
    """Run a child to completion: (wall seconds, its peak RSS in MiB, stdout, stderr). Raises on failure."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited with {proc.returncode}: {stderr.strip()[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, stdout, stderr


class Env:
    """Shared by the benchmarks of one run; close() stops what was started."""

    def __init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="pbx-bench-"))
        self._postgres: Any = None
        self._cluster: Any = None
        self._rabbitmq: Any = None
        self._cleanups: list[Any] = []  # callables, run last first by close()

    @property
    def postgres(self) -> Any:
        if self._postgres is None:
            from harness.postgres import PostgresServer

            # Not under a 0700 directory: the server runs as "postgres" when we are root.
            server = PostgresServer(Path(tempfile.mkdtemp(prefix="pbx-bench-pg-")))
            server.start()
            self._postgres = server
        return self._postgres

    @property
    def rabbitmq(self) -> Any:
        """A private RabbitMQ node (harness.rabbitmq.RabbitMQServer), started on first use."""
        if self._rabbitmq is None:
            from harness.rabbitmq import RabbitMQServer

            server = RabbitMQServer(self.scratch / "rabbitmq")
            server.start()
            self._rabbitmq = server
        return self._rabbitmq

    def on_close(self, cleanup: Any) -> None:
        """Have close() call ``cleanup()`` (before stopping the servers), e.g. to stop a whole PBX."""
        self._cleanups.append(cleanup)

    def pbx_database(self) -> Any:
        """A fresh PBX database migrated to head (testkit.pbxdb.PbxDatabase)."""
        from testkit import pbxdb as testing

        if self._cluster is None:
            secrets = self.scratch / "secrets"
            self._cluster = testing.prepare_cluster(self.postgres, secrets)
        return testing.create_database(self._cluster)

    def close(self) -> None:
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as exc:  # the servers below are stopped all the same
                print(f"bench: cleanup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if self._rabbitmq is not None:
            self._rabbitmq.stop()
        if self._postgres is not None:
            self._postgres.stop(mode="immediate")
            shutil.rmtree(self._postgres.base_dir, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": python_path(), "PYTHONDONTWRITEBYTECODE": "1"}


def python() -> str:
    return sys.executable
