"""The import rules of the tree, read from the source with ``ast``: they hold by test, not by habit.

- No daemon imports another (agid, confgend, ctid), nor the tools.
- confdb, the shared library, imports no daemon, no tool and no test support.
- No product code imports the test support (testkit, harness).
- The daemons, whose roles are read-only, never import the writer; the tools import nothing of ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = {
    "confdb": ROOT / "confdb" / "confdb",
    "agid": ROOT / "agid" / "agid",
    "confgend": ROOT / "confgend" / "confgend",
    "ctid": ROOT / "ctid" / "ctid",
    "pbxtools": ROOT / "tools" / "pbxtools",
}
TEST_SUPPORT = {"testkit", "harness"}
FORBIDDEN: dict[str, set[str]] = {
    "confdb": {"agid", "confgend", "ctid", "pbxtools", *TEST_SUPPORT},
    "agid": {"confgend", "ctid", "pbxtools", "confdb.writer", *TEST_SUPPORT},
    "confgend": {"agid", "ctid", "pbxtools", "confdb.writer", *TEST_SUPPORT},
    "ctid": {"agid", "confgend", "pbxtools", "confdb.writer", *TEST_SUPPORT},
    "pbxtools": {"agid", "confgend", "ctid", "confdb", *TEST_SUPPORT},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def breaks(module: str, forbidden: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in forbidden)


def test_the_scan_sees_imports_inside_functions() -> None:
    source = "def f():\n    from confdb.writer import users\n    import agid.main\n"
    tree = Path(__file__).with_name("_probe_imports.py")
    try:
        tree.write_text(source)
        found = imported_modules(tree)
    finally:
        tree.unlink()
    assert breaks("confdb.writer.users", FORBIDDEN["agid"]) and "confdb.writer.users" in found
    assert "agid.main" in found


@pytest.mark.parametrize("package", sorted(PRODUCTS))
def test_package_imports_only_what_it_may(package: str) -> None:
    files = sorted(PRODUCTS[package].rglob("*.py"))
    assert files, f"no source found for {package} under {PRODUCTS[package]}"
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in sorted(imported_modules(path))
        if breaks(module, FORBIDDEN[package])
    ]
    assert not offenders, f"{package} imports what it must not:\n" + "\n".join(offenders)
