"""`vagrant up` end to end (issue 19): run only when boxes are named, after they are built.

    make vagrant-test                       # the image's box (make image-vm first if it is missing)
    make vagrant-test VAGRANT_BOXES="image devbox"
    .venv/bin/pytest tests/vagrant --vagrant-box image --vagrant-box devbox -s

A plain `pytest` of the repository does not collect this folder (the boxes are built later, by
`make acceptance` and `make devbox`): nothing here is skipped, it is either run or not collected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BOXES = ("image", "devbox")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pbx vagrant").addoption(
        "--vagrant-box",
        action="append",
        choices=BOXES,
        default=[],
        help="run the Vagrant test with this box (repeatable): image (make image-vm), devbox (make devbox)",
    )


def _boxes(config: pytest.Config) -> list[str]:
    try:
        return list(dict.fromkeys(config.getoption("vagrant_box")))
    except ValueError:  # this conftest was not loaded at startup: the option does not exist
        return []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and not _boxes(config):
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "box" in metafunc.fixturenames:
        metafunc.parametrize("box", _boxes(metafunc.config))
