"""Schema look-up by a client's class name: nothing of an unknown name is kept (memory stays bounded)."""

from __future__ import annotations

import tracemalloc

from ctid.cti.validator import load, names


def test_unknown_class_names_are_not_kept() -> None:
    assert load("client", "ping") is not None and "ping" in names("client")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(1000):  # what clients may send as "class", each 10 kB
            assert load("client", f"{i:010d}" * 1000) is None
            assert load("client", "x" * (i % 40 + 1)) is None
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown} bytes kept"
