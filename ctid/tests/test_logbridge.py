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


def test_under_the_journal_a_line_carries_its_priority_and_no_timestamp() -> None:
    import io

    from twisted.logger import LogLevel

    from ctid.logbridge import journal_observer

    out = io.StringIO()
    observe = journal_observer(out)
    observe({"log_level": LogLevel.error, "log_format": "AMI: {what}", "what": "refused", "log_time": 0.0})
    observe({"log_level": LogLevel.info, "log_format": "up", "log_time": 0.0, "log_namespace": "ctid"})
    assert out.getvalue().splitlines()[0].startswith("<3>")
    assert "AMI: refused" in out.getvalue().splitlines()[0]
    assert out.getvalue().splitlines()[1].startswith("<6>")
    assert "1970" not in out.getvalue()
