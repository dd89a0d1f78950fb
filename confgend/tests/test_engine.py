"""The engine on the fixed dataset (no database): all or nothing, and the cache written atomically and
only when the content changed."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from confgend import cache
from confgend.engine import Engine, UnknownFile
from confgend.generators import GENERATORS, Generated
from testkit.confgend import dataset


class DatasetEngine(Engine):
    def snapshot(self):
        return dataset.snapshot()


def engine(tmp_path: Path, **generators: Generated) -> DatasetEngine:
    return DatasetEngine(contextlib.nullcontext, tmp_path / "cache", generators={**GENERATORS, **generators})


def test_a_file_is_written_once_while_it_does_not_change(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    first = eng.generate("asterisk/queues.conf")
    path = tmp_path / "cache/asterisk/queues.conf"
    assert path.read_bytes() == first
    os.utime(path, (0, 0))
    assert eng.generate("asterisk/queues.conf") == first
    assert path.stat().st_mtime == 0  # not rewritten
    assert set(eng.generate_all()) == set(GENERATORS)
    assert not list(path.parent.glob(".*.tmp"))


def test_a_failing_generation_leaves_the_last_good_copy(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    good = eng.generate("asterisk/queues.conf")

    def broken(snap, ctx):
        raise RuntimeError("a bug")

    eng.generators = {**GENERATORS, "asterisk/queues.conf": Generated(broken, "app_queue.so")}
    with pytest.raises(RuntimeError):
        eng.generate("asterisk/queues.conf")
    assert eng.cached("asterisk/queues.conf") == good
    files = eng.generate_all()  # one snapshot for all; the broken file is left out, the others are there
    assert "asterisk/queues.conf" not in files and "asterisk/pjsip.conf" in files
    with pytest.raises(UnknownFile):
        eng.generate("asterisk/nothing.conf")


def test_cache_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a/b.conf"
    cache.write_atomic(path, b"old\n")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        cache.write_atomic(path, b"new, never complete\n")
    assert path.read_bytes() == b"old\n"  # the reader sees the old copy, whole
    assert os.listdir(path.parent) == ["b.conf"]  # no temporary file left
