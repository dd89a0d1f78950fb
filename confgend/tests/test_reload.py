"""Reloads: coalescing on a virtual clock, the diff, and the AMI reloader against the AMI test server."""

from __future__ import annotations

from twisted.internet import defer, task

from confgend.ami import AMIReloader
from confgend.generators import GENERATORS
from confgend.reload import Reloader, interesting
from testkit.ami.server_threaded import ThreadedAMITestServer


class StubEngine:
    def __init__(self) -> None:
        self.files = {name: b"v1 " + name.encode() for name in GENERATORS}
        self.generations = 0
        self.fail = False

    def generate_all(self, names):
        self.generations += 1
        if self.fail:
            raise OSError("database down")
        return dict(self.files)


def make(
    clock: task.Clock, engine: StubEngine, failed: set[str] | None = None, **kw
) -> tuple[Reloader, list]:
    asked: list[list[str]] = []

    def reload_modules(modules: list[str]) -> set[str]:
        asked.append(modules)
        return set(failed or ()) & set(modules)

    reloader = Reloader(
        clock,
        None,
        engine,
        reload_modules,
        baseline=dict(engine.files),
        in_thread=lambda fn: defer.maybeDeferred(fn),
        **kw,
    )
    return reloader, asked


def test_a_storm_of_events_makes_at_most_two_rounds() -> None:
    clock, engine = task.Clock(), StubEngine()
    reloader, asked = make(clock, engine, coalesce_seconds=0.2, min_interval=2.0)
    for i in range(1000):  # 1,000 writes within one second
        if i == 500:
            engine.files["asterisk/pjsip.conf"] = b"v2"
        if i == 900:
            engine.files["asterisk/extensions.conf"] = b"v2"
        reloader.poke()
        clock.advance(0.001)
    clock.advance(10)
    assert reloader.rounds == 2
    assert asked == [["res_pjsip.so"], ["pbx_config.so"]] or asked == [["res_pjsip.so", "pbx_config.so"]]
    assert len(asked) <= 2


def test_first_round_within_the_coalescing_delay() -> None:
    clock, engine = task.Clock(), StubEngine()
    reloader, asked = make(clock, engine, coalesce_seconds=0.2, min_interval=2.0)
    engine.files["asterisk/queues.conf"] = b"v2"
    reloader.poke()
    clock.advance(0.19)
    assert asked == []
    clock.advance(0.02)
    assert asked == [["app_queue.so"]]
    reloader.poke()  # nothing changed since: a round, no reload
    clock.advance(5)
    assert reloader.rounds == 2 and asked == [["app_queue.so"]]


def test_only_changed_files_and_restart_only_files() -> None:
    clock, engine = task.Clock(), StubEngine()
    reloader, asked = make(clock, engine)
    engine.files["asterisk/modules.conf"] = b"v2"  # no reload possible: baseline updated, logged
    engine.files["asterisk/voicemail.conf"] = b"v2"
    reloader.poke()
    clock.advance(1)
    assert asked == [["app_voicemail.so"]]
    assert reloader.baseline["asterisk/modules.conf"] == b"v2"


def test_failed_reload_is_retried_with_backoff() -> None:
    clock, engine = task.Clock(), StubEngine()
    failed = {"res_pjsip.so"}
    reloader, asked = make(clock, engine, failed=failed, min_interval=0)
    engine.files["asterisk/pjsip.conf"] = b"v2"
    reloader.poke()
    clock.advance(0.5)
    assert asked == [["res_pjsip.so"]]
    clock.advance(1.1)
    assert len(asked) == 2  # retried after 1 s
    failed.clear()
    clock.advance(2.1)
    assert len(asked) == 3
    clock.advance(60)
    assert len(asked) == 3  # succeeded: no more


def test_database_down_keeps_asterisk_as_is_and_retries() -> None:
    clock, engine = task.Clock(), StubEngine()
    reloader, asked = make(clock, engine, min_interval=0)
    engine.fail = True
    reloader.poke()
    clock.advance(0.5)
    assert asked == [] and reloader.rounds == 1
    engine.fail = False
    engine.files["asterisk/pjsip.conf"] = b"v2"
    clock.advance(1.1)
    assert asked == [["res_pjsip.so"]]


def test_served_content_is_the_new_baseline() -> None:
    clock, engine = task.Clock(), StubEngine()
    reloader, asked = make(clock, engine)
    engine.files["asterisk/pjsip.conf"] = b"v2"
    reloader.served("asterisk/pjsip.conf", b"v2")  # Asterisk already fetched it
    reloader.poke()
    clock.advance(1)
    assert asked == []


def test_event_filter() -> None:
    assert interesting("user.created") and interesting("line.updated")
    assert not interesting("phonebook_entry.created") and not interesting("device.updated")


# ------------------------------------------------------------------------------------------------ AMI


def test_ami_reload_with_busy_retry() -> None:
    with ThreadedAMITestServer(username="confgend", secret="s3cret-s3cret-s3cret") as server:
        answers = iter(
            [
                {"Response": "Error", "Message": "A reload is in progress"},
                {"Response": "Success", "Message": "Module Reloaded"},
                {"Response": "Success", "Message": "Module Reloaded"},
            ]
        )
        server.handlers["reload"] = lambda conn, msg: conn.reply(msg, next(answers))
        ami = AMIReloader("127.0.0.1", server.port, "confgend", "s3cret-s3cret-s3cret", 2, 3, 0.05)
        assert ami.reload(["res_pjsip.so", "pbx_config.so"]) == set()
        modules = [a.get("Module") for a in server.actions_named("Reload")]
        assert modules == ["res_pjsip.so", "res_pjsip.so", "pbx_config.so"]


def test_ami_refusals_and_absence() -> None:
    with ThreadedAMITestServer(username="confgend", secret="right") as server:
        assert AMIReloader("127.0.0.1", server.port, "confgend", "wrong", 2).reload(["app_queue.so"]) == {
            "app_queue.so"
        }
        server.handlers["reload"] = lambda conn, msg: conn.reply(
            msg, {"Response": "Error", "Message": "A reload is in progress"}
        )
        ami = AMIReloader("127.0.0.1", server.port, "confgend", "right", 2, busy_retries=2, busy_delay=0.01)
        assert ami.reload(["app_queue.so"]) == {"app_queue.so"}
        assert len(server.actions_named("Reload")) == 3
        port = server.port
    assert AMIReloader("127.0.0.1", port, "confgend", "right", 1).reload(["x.so"]) == {"x.so"}
    silent = ThreadedAMITestServer(username="confgend", secret="right")
    with silent:
        silent.silent.add("reload")
        ami = AMIReloader("127.0.0.1", silent.port, "confgend", "right", timeout=0.5)
        assert ami.reload(["app_queue.so"]) == {"app_queue.so"}  # no answer: bounded by the timeout


def test_ami_that_is_not_asterisk() -> None:
    """Something else on the AMI port (garbage banner, or silence): nothing reloaded, bounded, no crash."""
    import socket
    import threading

    def serve(sock: socket.socket, banner: bytes) -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(banner)
            conn.recv(1024)

    for banner in (b"HTTP/1.1 400 Bad Request\r\n\r\n", b""):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            threading.Thread(target=serve, args=(sock, banner), daemon=True).start()
            ami = AMIReloader("127.0.0.1", sock.getsockname()[1], "confgend", "right", timeout=0.5)
            assert ami.reload(["app_queue.so"]) == {"app_queue.so"}
