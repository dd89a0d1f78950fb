"""Fixtures: an agid server on a free loopback port, in its own event loop thread.

The tests play Asterisk from the test thread with blocking sockets (testkit.fastagi.FakeAsterisk), like a
separate process would. Every wait is bounded; bounds are generous so that a loaded 2-core machine
passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agid.config import Config
from agid.registry import Handler
from testkit.fastagi import WAIT, FakeAsterisk, ServerThread, Trace, load_trace


@pytest.fixture
def agid_server() -> Iterator[Callable[..., ServerThread]]:
    """``agid_server(handlers=None, **config)`` starts a server; all are stopped after the test."""
    yield from _servers()


@pytest.fixture(scope="module")
def module_agid_server() -> Iterator[Callable[..., ServerThread]]:
    """Like ``agid_server``, for servers shared by the tests of a module (hypothesis examples...)."""
    yield from _servers()


def _servers() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(handlers: Mapping[str, Handler] | None = None, **options: Any) -> ServerThread:
        config = dataclasses.replace(Config(listen_port=0), **options)
        server = ServerThread(config, handlers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def fake() -> Callable[[ServerThread], FakeAsterisk]:
    return lambda server: FakeAsterisk(server.address, timeout=WAIT)


# Recorded by a real Asterisk (FastAGI sessions, byte for byte): copies kept with the tests.
TRACES = Path(__file__).resolve().parent / "data" / "traces"


def _trace(name: str) -> Trace:
    return load_trace(name, TRACES)


@pytest.fixture(scope="session")
def trace04() -> Trace:
    return _trace("04-fastagi-originate")


@pytest.fixture(scope="session")
def trace05() -> Trace:
    return _trace("05-fastagi-hangup-during-agi")
