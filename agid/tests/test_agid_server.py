"""The server over real TCP, against a fake Asterisk replaying recorded sessions byte for byte."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agid.errors import (
    AGIArgumentError,
    AGICommandFailed,
    AGIConnectionLost,
    AGIDeadChannel,
    AGIHangup,
    AGIUnknownCommand,
    AGIUsageError,
)
from agid.session import AGISession
from testkit.fastagi import FakeAsterisk, LineSocket, Step, Trace

WAIT = 20.0


def env_for(
    script: str, *args: str, channel: str = "PJSIP/1001-00000001", uniqueid: str = "1700000000.1"
) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 20.20.1",
        "agi_callerid: 1001",
        "agi_calleridname: Alice",
        "agi_context: internal",
        "agi_extension: 600",
        "agi_priority: 2",
        "agi_accountcode: ",
        *(f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


def status_command(status: str) -> bytes:
    return f"SET VARIABLE AGID_STATUS {status}\n".encode()


# ------------------------------------------------------------------------------------ recorded sessions


def test_replay_trace04_byte_for_byte(agid_server: Any, fake: Any, trace04: Trace) -> None:
    """The session API produces the recorded commands and understands every recorded reply."""
    seen: dict[str, Any] = {}

    async def hello(session: AGISession) -> None:
        seen["args"] = session.args
        await session.answer()
        await session.verbose("hello from fastagi", 1)
        seen["channel"] = await session.get_variable("CHANNEL")
        seen["callerid"] = await session.get_full_variable("${CALLERID(all)}")
        await session.set_variable("FROM_AGI", "yes it works")
        seen["status"] = await session.channel_status()
        await session.database_put("reftest", "key", "value1")
        seen["db"] = await session.database_get("reftest", "key")
        seen["exec"] = await session.exec("Wait", "0.2")
        with pytest.raises(AGIUnknownCommand) as unknown:
            await session.command("NOSUCHCOMMAND", "foo")
        seen["510"] = unknown.value.reply.line
        with pytest.raises(AGIUsageError) as usage:
            await session.command("GET VARIABLE")
        seen["520"] = usage.value.usage
        with pytest.raises(AGICommandFailed) as failed:
            await session.stream_file("no-such-sound-file")
        seen["endpos"] = failed.value.reply.fields["endpos"]
        seen["digit"] = await session.wait_for_digit(100)
        seen["done"] = True

    server = agid_server({"hello": hello})
    transcript = fake(server).replay(trace04)
    assert transcript.unexpected == []
    assert transcript.commands[: len(trace04.commands)] == trace04.commands
    assert transcript.commands[len(trace04.commands) :] == [status_command("OK")]
    assert transcript.status == "OK"
    assert transcript.closed_by_server
    assert seen == {
        "args": ("arg-one", "arg two"),
        "channel": "Local/hello@agi-test-00000002;2",
        "callerid": '"AGI Test" <5550104>',
        "status": 6,
        "db": "value1",
        "exec": 0,
        "510": "510 Invalid or unknown command",
        "520": (
            "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
            "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the "
            "variable in parentheses.\nExample return code: 200 result=1 (testvariable)"
        ),
        "endpos": "0",
        "digit": "",
        "done": True,
    }
    server.wait_idle()
    assert server.server.stats.ok == 1


def test_replay_trace05_hangup_during_agi(agid_server: Any, fake: Any, trace05: Trace) -> None:
    """HANGUP arrives after the pending command's reply; then 511 on a dead channel; GET VARIABLE works."""
    seen: list[Any] = []

    async def hold(session: AGISession) -> None:
        await session.answer()
        await session.verbose("holding", 1)
        reply = await session.command("WAIT FOR DIGIT", 500)
        seen.append(reply.result_int())
        for _ in range(2):
            try:
                await session.command("WAIT FOR DIGIT", 500)
            except AGIDeadChannel as exc:
                assert isinstance(exc, AGIHangup)
                seen.append(exc.reply.code)
        seen.append(session.hungup)
        seen.append(await session.get_variable("CHANNEL"))

    server = agid_server({"hold": hold})
    transcript = fake(server).replay(trace05)
    assert transcript.unexpected == []
    assert transcript.commands == [*trace05.commands, status_command("OK")]
    assert seen == [-1, 511, 511, True, "Local/hold@agi-test-00000003;2"]
    assert transcript.closed_by_server


def test_trace05_with_typed_api_short_circuits_after_hangup(
    agid_server: Any, fake: Any, trace05: Trace
) -> None:
    """After HANGUP, commands that need a live channel raise AGIHangup without a round trip."""
    seen: list[Any] = []

    async def hold(session: AGISession) -> None:
        await session.answer()
        await session.verbose("holding")
        with pytest.raises(AGICommandFailed):
            await session.wait_for_digit(500)
        for _ in range(500):  # HANGUP follows the reply; let it arrive
            if session.hungup:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(AGIHangup) as hangup:
            await session.wait_for_digit(500)
        seen.append(type(hangup.value).__name__)
        seen.append(await session.get_variable("CHANNEL"))
        raise hangup.value

    r = trace05.replies
    script = [
        Step(trace05.commands[0], r[0]),
        Step(trace05.commands[1], r[1]),
        Step(trace05.commands[2], r[2]),
        Step(trace05.commands[5], r[5]),
    ]
    assert r[2] == b"200 result=-1\nHANGUP\n"
    server = agid_server({"hold": hold})
    transcript = fake(server).run(trace05.env, script)
    assert transcript.unexpected == []
    assert seen == ["AGIHangup", "Local/hold@agi-test-00000003;2"]
    # a handler ending on AGIHangup: FAILED, set on the dead channel (SET VARIABLE is allowed there)
    assert transcript.commands[4:] == [status_command("FAILED")]
    server.wait_idle()
    assert server.server.stats.hangups == 1


def test_hangup_before_the_reply(agid_server: Any, fake: Any) -> None:
    seen: list[Any] = []

    async def handler(session: AGISession) -> None:
        reply = await session.command("WAIT FOR DIGIT", 500)
        seen.extend([reply.result_int(), session.hungup])

    server = agid_server({"wait": handler})
    transcript = fake(server).run(
        env_for("wait"), [Step(b"WAIT FOR DIGIT 500\n", b"HANGUP\n200 result=-1\n")]
    )
    assert seen == [-1, True]
    assert transcript.status == "OK"


def test_error_codes_raise_typed_errors(agid_server: Any, fake: Any) -> None:
    seen: list[str] = []

    async def handler(session: AGISession) -> None:
        for command in ("ANSWER", "ANSWER", "ANSWER", "ANSWER"):
            try:
                await session.command(command)
            except Exception as exc:
                seen.append(type(exc).__name__)

    script = [
        Step(b"ANSWER\n", b"510 Invalid or unknown command\n"),
        Step(b"ANSWER\n", b"511 Command Not Permitted on a dead channel or intercept routine\n"),
        Step(b"ANSWER\n", b"520 Invalid command syntax.  Proper usage not available.\n"),
        Step(
            b"ANSWER\n",
            b"520-Invalid command syntax.  Proper usage follows:\nUse it well.\n520 End of proper usage.\n",
        ),
    ]
    server = agid_server({"codes": handler})
    transcript = fake(server).run(env_for("codes"), script)
    assert seen == ["AGIUnknownCommand", "AGIDeadChannel", "AGIUsageError", "AGIUsageError"]
    assert transcript.status == "OK"


# ------------------------------------------------------------------------------------ AGID_STATUS contract


def test_builtin_ping(agid_server: Any, fake: Any) -> None:
    server = agid_server()  # the one table
    transcript = fake(server).run(env_for("ping"))
    assert transcript.variables() == {"AGID_PONG": "pong", "AGID_STATUS": "OK"}
    assert transcript.closed_by_server


def test_unknown_handler(agid_server: Any, fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = agid_server({})
    with caplog.at_level(logging.WARNING):
        transcript = fake(server).run(env_for("nosuch?x=1", uniqueid="42.7"))
    assert transcript.commands == [status_command("FAILED")]
    assert transcript.closed_by_server
    server.wait_idle()
    assert server.server.stats.unknown_handler == 1
    assert any(
        "unknown AGI handler 'nosuch'" in r.getMessage() and "42.7" in r.getMessage() for r in caplog.records
    )


def test_peer_values_cannot_inject_log_formats(
    agid_server: Any, fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def logs(session: AGISession) -> None:
        session.log.info("handler says %s", "hi")
        raise ValueError("%s %d %(x)s")

    server = agid_server({"logs": logs})
    with caplog.at_level(logging.INFO):
        one = fake(server).run(env_for("logs", channel="PJSIP/%s%d%(x)s", uniqueid="%%%"))
        two = fake(server).run(env_for("nosuch%s", channel="PJSIP/%s", uniqueid="%d"))
    assert (one.status, two.status) == ("FAILED", "FAILED")
    server.wait_idle()
    assert server.server.stats.internal_errors == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "agid.handler"]
    assert "channel='PJSIP/%s%d%(x)s' uniqueid='%%%': handler says hi" in messages


def test_handler_exception(agid_server: Any, fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(session: AGISession) -> None:
        await session.set_variable("BEFORE", "1")
        raise RuntimeError("boom")

    server = agid_server({"broken": broken})
    with caplog.at_level(logging.ERROR):
        transcript = fake(server).run(
            env_for("broken", channel="PJSIP/1001-0000002a", uniqueid="1700000000.99")
        )
    assert transcript.variables() == {"BEFORE": "1", "AGID_STATUS": "FAILED"}
    assert transcript.closed_by_server
    server.wait_idle()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "'broken'" in message and "PJSIP/1001-0000002a" in message and "1700000000.99" in message
    assert "boom" in message
    assert errors[0].exc_info is not None
    assert server.server.stats.handler_errors == 1


def test_crlf_injection_is_refused(agid_server: Any, fake: Any) -> None:
    async def injecting(session: AGISession) -> None:
        try:
            await session.set_variable("X", "a\nEXEC Hangup")
        except AGIArgumentError:
            await session.set_variable("Y", "safe")
        await session.set_variable("Z", "b\r\nEXEC Hangup")  # raises: FAILED

    server = agid_server({"inject": injecting})
    transcript = fake(server).run(env_for("inject"))
    assert transcript.commands == [b"SET VARIABLE Y safe\n", status_command("FAILED")]


def test_verbose_cleans_line_breaks(agid_server: Any, fake: Any) -> None:
    async def handler(session: AGISession) -> None:
        await session.verbose("two\nlines\r\x00", 3)

    server = agid_server({"v": handler})
    transcript = fake(server).run(env_for("v"))
    assert transcript.commands[0] == b'VERBOSE "two lines  " 3\n'


def test_malformed_env_fails_without_running_the_handler(agid_server: Any, fake: Any) -> None:
    ran: list[bool] = []

    async def handler(session: AGISession) -> None:
        ran.append(True)

    server = agid_server({"h": handler})
    transcript = fake(server).run(b"agi_network_script: h\ngarbage line\n\n")
    assert transcript.commands == [status_command("FAILED")]
    assert ran == []


def test_unsolicited_reply_closes_without_status(agid_server: Any) -> None:
    async def handler(session: AGISession) -> None:
        await asyncio.sleep(0.2)
        await session.noop()

    server = agid_server({"h": handler})
    peer = LineSocket(server.address, WAIT)
    peer.send(env_for("h") + b"200 result=1\n")
    assert peer.read_to_eof() == b""
    peer.close()
    server.wait_idle()
    assert server.server.stats.lost == 1


# ------------------------------------------------------------------------------------ peers that go away


def test_disconnect_mid_session(agid_server: Any, fake: Any) -> None:
    seen: list[str] = []

    async def handler(session: AGISession) -> None:
        await session.answer()
        try:
            await session.get_variable("X")
        except AGIConnectionLost:
            seen.append("lost")
            raise

    server = agid_server({"h": handler})
    transcript = fake(server).run(env_for("h"), [Step(b"ANSWER\n", b"200 result=0\n"), Step(None, None)])
    assert transcript.commands == [b"ANSWER\n", b"GET VARIABLE X\n"]
    server.wait_idle()
    assert seen == ["lost"]
    assert server.server.stats.lost == 1
    assert server.server.stats.status_set == 0


def test_reset_while_handler_is_busy(agid_server: Any) -> None:
    gate = threading.Event()
    seen: list[str] = []

    async def handler(session: AGISession) -> None:
        while not gate.is_set():
            await asyncio.sleep(0.01)
        try:
            await session.noop()
        except AGIConnectionLost:
            seen.append("lost")

    server = agid_server({"h": handler})
    peer = LineSocket(server.address, WAIT)
    peer.send(env_for("h"))
    server.wait_until(lambda: server.server.stats.active_sessions == 1)
    peer.reset()
    gate.set()
    server.wait_idle()
    assert seen == ["lost"]


def test_peer_sends_nothing(agid_server: Any) -> None:
    server = agid_server({}, session_timeout=1.0, status_timeout=0.5)
    peer = LineSocket(server.address, WAIT)
    start = time.monotonic()
    assert peer.read_to_eof() == b""
    assert time.monotonic() - start < WAIT
    peer.close()
    server.wait_idle()
    assert server.server.stats.no_env == 1


# ------------------------------------------------------------------------------------ deadlines and bounds


def test_handler_deadline(agid_server: Any, fake: Any) -> None:
    async def slow(session: AGISession) -> None:
        await asyncio.sleep(60)

    server = agid_server({"slow": slow}, session_timeout=1.0, status_timeout=0.5)
    start = time.monotonic()
    transcript = fake(server).run(env_for("slow"))
    elapsed = time.monotonic() - start
    assert transcript.commands == [status_command("FAILED")]
    assert 0.4 < elapsed < WAIT
    server.wait_idle()
    assert server.server.stats.timeouts == 1


def test_handler_that_ignores_cancellation_is_abandoned(agid_server: Any, fake: Any) -> None:
    async def stubborn(session: AGISession) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(1.5)  # a bad handler: swallows the cancellation for a while

    server = agid_server({"stubborn": stubborn}, session_timeout=1.0, status_timeout=0.5)
    transcript = fake(server).run(env_for("stubborn"))
    assert transcript.commands == [status_command("FAILED")]
    assert transcript.closed_by_server
    server.wait_idle()  # the stray handler task ends too


def test_late_reply_of_a_cancelled_command_is_dropped(agid_server: Any, fake: Any) -> None:
    async def waits(session: AGISession) -> None:
        await session.get_variable("SLOW")

    server = agid_server({"w": waits}, session_timeout=3.0, status_timeout=2.0)
    script = [Step(b"GET VARIABLE SLOW\n", b"200 result=1 (late)\n", delay=1.5)]
    transcript = fake(server).run(env_for("w"), script)
    assert transcript.commands == [b"GET VARIABLE SLOW\n", status_command("FAILED")]
    server.wait_idle()
    assert server.server.stats.status_set == 1  # the status got its own reply, not the late one


def test_overload(agid_server: Any, fake: Any) -> None:
    """Beyond max_sessions: FAILED at once, handler not run. Beyond max_connections: closed at once."""
    gate = threading.Event()
    runs: list[str] = []

    async def block(session: AGISession) -> None:
        runs.append(session.env.uniqueid)
        while not gate.is_set():
            await asyncio.sleep(0.01)

    server = agid_server({"block": block}, max_sessions=2, max_connections=3)
    with ThreadPoolExecutor(2) as pool:
        blocked = [pool.submit(fake(server).run, env_for("block", uniqueid=f"1.{i}")) for i in range(2)]
        server.wait_until(lambda: server.server.stats.active_sessions == 2)

        start = time.monotonic()
        overloaded = fake(server).run(env_for("block", uniqueid="1.3"))
        assert overloaded.commands == [status_command("FAILED")]
        assert time.monotonic() - start < 5.0  # no waiting for a slot
        server.wait_until(lambda: server.server.stats.open_connections == 2)

        silent = LineSocket(server.address, WAIT)  # third open connection: waits for its env
        server.wait_until(lambda: server.server.stats.open_connections == 3)
        newcomer = LineSocket(server.address, WAIT)  # takes the silent one's place
        assert silent.read_to_eof() == b""  # closed at once, nothing written
        server.wait_until(lambda: server.server.stats.evicted == 1)
        refused = LineSocket(server.address, WAIT)  # the newcomer is still silent: it goes too
        assert newcomer.read_to_eof() == b""
        refused.close()
        newcomer.close()
        silent.close()

        gate.set()
        for future in blocked:
            assert future.result(WAIT).status == "OK"
    assert sorted(runs) == ["1.0", "1.1"]
    server.wait_idle()
    stats = server.server.stats
    assert (stats.overload, stats.evicted, stats.ok, stats.failed) == (1, 2, 2, 1)


def test_silent_connections_never_starve_calls(agid_server: Any, fake: Any) -> None:
    """A flood of connections that never send their environment (max_connections of them): a call still
    gets its decision at once, the silent sockets go after env_timeout, and only a server full of real
    sessions refuses a connection."""

    async def ok(session: AGISession) -> None:
        session.decide({"X": "1"})

    server = agid_server({"ok": ok}, max_sessions=5, max_connections=20, env_timeout=1.0)
    silent = [LineSocket(server.address, WAIT) for _ in range(20)]
    server.wait_until(lambda: server.server.stats.open_connections == 20)
    start = time.monotonic()
    assert fake(server).run(env_for("ok")).status == "OK"
    assert time.monotonic() - start < 1.0  # not after a silent one's timeout
    start = time.monotonic()
    for peer in silent:
        assert peer.read_to_eof() == b""
        peer.close()
    assert time.monotonic() - start < WAIT
    server.wait_until(lambda: server.server.stats.open_connections == 0)
    stats = server.server.stats
    assert stats.evicted == 1 and stats.no_env >= 19 and stats.refused == 0


def test_many_concurrent_sessions(agid_server: Any, fake: Any) -> None:
    async def echo(session: AGISession) -> None:
        value = await session.get_variable("IN")
        await asyncio.sleep(0.05)
        await session.set_variable("OUT", f"{session.args[0]}:{value}")

    server = agid_server({"echo": echo}, max_sessions=100)

    def one(i: int) -> dict[str, str]:
        script = [Step(b"GET VARIABLE IN\n", f"200 result=1 (v {i})\n".encode())]
        return fake(server).run(env_for("echo", f"n{i}", uniqueid=f"2.{i}"), script).variables()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(60)))
    assert results == [{"OUT": f"n{i}:v {i}", "AGID_STATUS": "OK"} for i in range(60)]


def test_stop_with_sessions_in_flight(agid_server: Any) -> None:
    async def slow(session: AGISession) -> None:
        await asyncio.sleep(60)

    server = agid_server({"slow": slow}, session_timeout=30.0)
    peer = LineSocket(server.address, WAIT)
    peer.send(env_for("slow"))
    server.wait_until(lambda: server.server.stats.active_sessions == 1)
    server.call(server.server.stop(grace=0.2))
    assert server.server.tasks == 0
    peer.read_to_eof()
    peer.close()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=2).close()


def test_fake_asterisk_protects_its_script(agid_server: Any) -> None:
    """The fake notices a command that differs from the recording (so the replay tests mean something)."""

    async def handler(session: AGISession) -> None:
        await session.command("ANSWER")

    server = agid_server({"h": handler})
    transcript = FakeAsterisk(server.address, WAIT).run(env_for("h"), [Step(b"HANGUP\n", b"200 result=1\n")])
    assert transcript.unexpected == [(0, b"HANGUP\n", b"ANSWER\n")]


def test_handler_table_is_checked_at_start() -> None:
    from agid.config import Config
    from agid.handlers import HANDLERS
    from agid.registry import check_handlers
    from agid.server import AGIServer

    check_handlers(HANDLERS)

    def not_async(session: AGISession) -> None:
        pass

    async def fine(session: AGISession) -> None:
        pass

    with pytest.raises(ValueError, match="not an async function"):
        AGIServer(Config(), {"sync": not_async})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="bad AGI handler name"):
        AGIServer(Config(), {"Bad Name": fine})


def test_odd_result_fails_the_handler_but_keeps_the_connection(agid_server: Any, fake: Any) -> None:
    async def handler(session: AGISession) -> None:
        await session.get_variable("X")

    server = agid_server({"h": handler})
    transcript = fake(server).run(env_for("h"), [Step(b"GET VARIABLE X\n", b"200 result=maybe (x)\n")])
    assert transcript.commands == [b"GET VARIABLE X\n", status_command("FAILED")]


def test_concurrent_commands_of_one_handler_are_serialized(agid_server: Any, fake: Any) -> None:
    async def handler(session: AGISession) -> None:
        values = await asyncio.gather(*(session.get_variable(f"V{i}") for i in range(5)))
        await session.set_variable("ALL", ",".join(v or "-" for v in values))

    server = agid_server({"h": handler})
    script = [Step(f"GET VARIABLE V{i}\n".encode(), f"200 result=1 ({i})\n".encode()) for i in range(5)]
    transcript = fake(server).run(env_for("h"), script)
    assert transcript.unexpected == []
    assert transcript.variables() == {"ALL": "0,1,2,3,4", "AGID_STATUS": "OK"}


# ------------------------------------------------------------------------------------- decision batching


def test_decision_goes_with_the_status_in_one_mset(agid_server: Any, fake: Any) -> None:
    async def deciding(session: AGISession) -> None:
        session.decide({"AGID_ACTION": "DIAL", "AGID_NAME": "Ann, (Sales)", "AGID_NONE": None, "AGID_N": 3})

    server = agid_server({"d": deciding})
    transcript = fake(server).run(env_for("d"))
    assert transcript.commands == [
        b'SET VARIABLE AGID_NAME "Ann, (Sales)"\n',
        b"EXEC MSet AGID_ACTION=DIAL,AGID_N=3,AGID_STATUS=OK\n",
    ]
    assert transcript.variables() == {
        "AGID_NAME": "Ann, (Sales)",
        "AGID_ACTION": "DIAL",
        "AGID_N": "3",
        "AGID_STATUS": "OK",
    }


def test_decision_is_set_one_by_one_without_mset(agid_server: Any, fake: Any) -> None:
    async def deciding(session: AGISession) -> None:
        session.decide({"A": "1", "B": "2"})

    server = agid_server({"d": deciding})
    no_mset = b"200 result=-2\n"  # what EXEC answers for an application Asterisk does not have
    transcript = fake(server).run(env_for("d"), [Step(b"EXEC MSet A=1,B=2,AGID_STATUS=OK\n", no_mset)])
    assert transcript.commands[1:] == [b"SET VARIABLE A 1\n", b"SET VARIABLE B 2\n", status_command("OK")]
    assert transcript.status == "OK"


def test_failed_handler_leaves_its_decision_unset(agid_server: Any, fake: Any) -> None:
    async def deciding(session: AGISession) -> None:
        session.decide({"AGID_ACTION": "DIAL"})
        raise RuntimeError("after deciding")

    transcript = fake(agid_server({"d": deciding})).run(env_for("d"))
    assert transcript.commands == [status_command("FAILED")]


def test_a_value_asterisk_cannot_receive_fails_in_the_handler(agid_server: Any, fake: Any) -> None:
    async def deciding(session: AGISession) -> None:
        session.decide({"AGID_NAME": "two\nlines"})

    server = agid_server({"d": deciding})
    assert fake(server).run(env_for("d")).commands == [status_command("FAILED")]
    assert server.server.stats.handler_errors == 1
