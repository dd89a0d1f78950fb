"""The agi_* environment block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agid.env import AGIEnv, parse_env
from testkit.fastagi import Trace


def _lines(env: bytes) -> list[str]:
    assert env.endswith(b"\n\n")
    return env[:-2].decode().split("\n")


def test_trace04_env(trace04: Trace) -> None:
    env = parse_env(_lines(trace04.env))
    assert env.problems == ()
    assert env.network is True
    assert env.network_script == "hello"
    assert env.handler_name == "hello"
    assert dict(env.query) == {}
    assert env.request == "agi://127.0.0.1:4573/hello"
    assert env.channel == "Local/hello@agi-test-00000002;2"
    assert env.uniqueid == "1795416621.22"
    assert env.version == "20.20.1"
    assert env.callerid == "5550104"
    assert env.calleridname == "AGI Test"
    assert env.dnid == "unknown"
    assert env.context == "agi-test"
    assert env.extension == "hello"
    assert env.priority == "3"
    assert env.accountcode == ""  # "agi_accountcode: " -- empty value
    assert env.threadid == "140254266459840"
    assert env.args == ("arg-one", "arg two")
    assert env.variables["agi_arg_2"] == "arg two"
    assert len(env.variables) == 24


def test_trace05_env_has_no_args(trace05: Trace) -> None:
    env = parse_env(_lines(trace05.env))
    assert (env.problems, env.args, env.handler_name) == ((), (), "hold")


def test_query_string_and_handler_name() -> None:
    env = parse_env(["agi_network_script: incoming_did?did=%2B3312345&x=1&x=2&flag=&sp=a+b"])
    assert env.handler_name == "incoming_did"
    assert dict(env.query) == {"did": "+3312345", "x": "2", "flag": "", "sp": "a b"}
    assert parse_env([]).handler_name == ""


def test_values_keep_their_spacing_and_colons() -> None:
    env = parse_env(["agi_calleridname:  two spaces: and colon ", "agi_callerid:", "agi_dnid:x"])
    assert env.calleridname == " two spaces: and colon "
    assert env.callerid == ""
    assert env.dnid == "x"
    assert env.problems == ()


def test_args_ordered_numerically() -> None:
    env = parse_env([f"agi_arg_{i}: v{i}" for i in (10, 2, 1, 3, 4, 5, 6, 7, 8, 9)])
    assert env.args == tuple(f"v{i}" for i in range(1, 11))


def test_problems_are_reported_not_raised() -> None:
    env = parse_env(["garbage", "agi_channel: a", "agi_channel: b", "other: x", "agi_arg_2: y"])
    assert len(env.problems) == 4
    assert env.channel == "b"
    assert env.args == ("y",)


@given(st.lists(st.text(st.characters(exclude_characters="\n"), max_size=50), max_size=30))
def test_parse_env_never_raises(lines: list[str]) -> None:
    env = parse_env(lines)
    assert isinstance(env, AGIEnv)
    assert isinstance(env.handler_name, str)
    assert isinstance(dict(env.query), dict)
