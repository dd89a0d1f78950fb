"""The standard library's records in twisted's log: level, namespace, time, traceback; from any thread."""

from __future__ import annotations

import logging
import threading

from ctid.logbridge import TwistedHandler


def test_records_become_twisted_events_handed_over_from_other_threads() -> None:
    events: list[dict] = []
    handed: list[tuple] = []
    handler = TwistedHandler(lambda f, *a: handed.append((f, a)), publish=events.append)
    log = logging.getLogger("ctid.test.bridge")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:

        def work() -> None:
            log.warning("bus: lost (%s)", "reason {with braces}")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        log.removeHandler(handler)
    assert events == []  # published in the reactor thread only
    for f, args in handed:
        f(*args)
    lost, failed = events
    assert (lost["log_namespace"], lost["log_level"].name) == ("ctid.test.bridge", "warn")
    assert lost["log_format"] == "{log_text}" and lost["log_text"] == "bus: lost (reason {with braces})"
    assert isinstance(lost["log_time"], float)
    assert failed["log_level"].name == "error" and failed["log_failure"].check(ValueError)
