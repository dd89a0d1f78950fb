"""Fuzzing of the CTI framing and request handling: arbitrary bytes, arbitrary splits, arbitrary JSON
(surrogates included: whatever a client sends, what ctid writes, to it or to Asterisk, is UTF-8)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ctid.ami.errors import AMINotConnectedError
from ctid.ami.message import encode_message
from ctid.cti.server import CTIConfig, CTIServer
from ctid.cti.validator import load, names, validate
from ctid.directory import Directory, User
from ctid.state.tracker import CallTracker

SCALE = int(os.environ.get("CTID_FUZZ_SCALE", "1"))
LIMIT = 512


class RecordingAMI:
    """Encodes each action as the AMI writer does, checks that it is UTF-8, then fails it (not connected)."""

    ready = True

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def send_action(self, action: str, headers: Mapping[str, Any] | list[tuple[str, Any]]) -> Deferred:
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        data = encode_message([("Action", action), *items])
        data.decode("utf-8")  # strict: no byte that is not UTF-8 reaches Asterisk
        self.written.append(data)
        return fail(AMINotConnectedError("not connected"))


def make():
    directory = Directory()
    directory.replace_all([User(1, "Alice", "alice", "$scrypt$bad", True, ("1001",), "1001")])
    hub = CTIServer(
        CTIConfig(max_message_bytes=LIMIT, max_errors=10**9),
        CallTracker(),
        directory,
        clock=Clock(),
        check_password=lambda password, encoded: succeed(password == "right"),
        ami=RecordingAMI(),
    )
    proto = hub.build_protocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    return hub, proto, transport


def sent(transport: StringTransport) -> list[dict]:
    data = transport.value()
    assert data.endswith(b"\n")
    out = [json.loads(line.decode("utf-8")) for line in data.split(b"\n")[:-1]]  # strict UTF-8
    for msg in out:
        validate(msg, load("server", msg["class"]))
    return out


@settings(max_examples=200 * SCALE, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=700), max_size=20))
def test_arbitrary_bytes_never_break_the_session(data: bytes, cuts: list[int]) -> None:
    _hub, proto, transport = make()
    pos = 0
    for cut in cuts:
        proto.dataReceived(data[pos : pos + cut])
        pos += cut
        assert len(proto._buffer) <= LIMIT
    proto.dataReceived(data[pos:])
    assert len(proto._buffer) <= LIMIT
    msgs = sent(transport)
    assert msgs[0]["class"] == "welcome"
    assert all(m["class"] in ("error", "response") for m in msgs[1:])
    # after any garbage, a fresh line is still understood
    transport.clear()
    proto.dataReceived(b'\n{"class":"ping","id":"p"}\n')
    assert any(m.get("id") == "p" and m["class"] == "response" for m in sent(transport))


def split_invariant(data: bytes, cuts: list[int]) -> list[dict]:
    _, proto, transport = make()
    pos = 0
    for cut in cuts:
        proto.dataReceived(data[pos : pos + cut])
        pos += cut
    proto.dataReceived(data[pos:])
    return sent(transport)


@settings(max_examples=100 * SCALE, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=1, max_value=300), max_size=15))
def test_output_does_not_depend_on_tcp_splits(data: bytes, cuts: list[int]) -> None:
    def strip(msgs: list[dict]) -> list[dict]:  # error texts may quote a JSON error position: compare codes
        return [{k: v for k, v in m.items() if k != "message"} for m in msgs]

    assert strip(split_invariant(data, cuts)) == strip(split_invariant(data, []))


# Text, or text with a lone surrogate (hypothesis leaves them out of text by default); json.dumps escapes it
# as a client's \\ud800 would.
surrogate = st.characters(categories=["Cs"])
any_text = st.text(max_size=20) | st.builds(
    lambda a, s, b: a + s + b, st.text(max_size=8), surrogate, st.text(max_size=8)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text.map(lambda t: t[:10]), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {
        "class": st.sampled_from(
            ["login", "subscribe", "dial", "hangup", "transfer", "queue_pause", "ping", "x"]
        )
    },
    optional={
        "id": json_values,
        "login": st.just("alice") | json_values,
        "password": st.sampled_from(["right", "wrong"]) | json_values,
        "topics": json_values,
        "number": st.text(max_size=45) | json_values,
        "call_id": json_values,
        "mode": json_values,
        "paused": json_values,
        "queue": st.just("support") | json_values,
        "reason": any_text | json_values,
        "version": json_values,
    },
)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.lists(requests, min_size=1, max_size=8))
def test_every_request_gets_one_answer_and_acts_only_when_valid(reqs: list[dict]) -> None:
    _hub, proto, transport = make()
    for req in reqs:
        proto.dataReceived(json.dumps(req).encode() + b"\n")
    answers = sent(transport)[1:]
    assert len(answers) == len(reqs)
    for req, answer in zip(reqs, answers, strict=True):
        if answer["class"] == "response":
            validate(req, load("client", req["class"]))
        # the AMI here checks what it is given, then fails: nothing that needs it can succeed
        if req["class"] in ("dial", "hangup", "transfer", "queue_pause"):
            assert answer["class"] == "error"


EXAMPLES = [example for name in names("client") for example in load("client", name)["examples"]]


def test_the_examples_hold_every_field_of_every_request() -> None:
    """So that poisoning the examples' strings below reaches every string field there is."""
    for name in names("client"):
        fields = set().union(*(example.keys() for example in load("client", name)["examples"]))
        assert fields == set(load("client", name)["properties"]), name


def string_paths(value: Any, path: tuple = ()) -> list[tuple[tuple, bool]]:
    """Every string of ``value``: (path, is_key)."""
    if isinstance(value, str):
        return [(path, False)]
    if isinstance(value, dict):
        out = [((*path, key), True) for key in value]
        for key, item in value.items():
            out += string_paths(item, (*path, key))
        return out
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in string_paths(item, (*path, i))]
    return []


def poison(value: Any, path: tuple, is_key: bool, put: Any) -> Any:
    """``value`` with ``put(text)`` in place of the string (or key) at ``path``."""
    if not path:
        return put(value)
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [poison(v, rest, is_key, put) if i == head else v for i, v in enumerate(value)]
    if is_key and not rest:
        return {(put(k) if k == head else k): v for k, v in value.items()}
    return {k: (poison(v, rest, is_key, put) if k == head else v) for k, v in value.items()}


@settings(max_examples=300 * SCALE, deadline=None)
@given(
    st.sampled_from(EXAMPLES),
    st.data(),
    surrogate,
    st.booleans(),
    st.booleans(),
)
def test_a_lone_surrogate_in_any_string_is_malformed(
    example: dict, data: st.DataObject, char: str, logged_in: bool, as_bytes: bool
) -> None:
    hub, proto, transport = make()
    if logged_in:
        proto.dataReceived(b'{"class":"login","login":"alice","password":"right"}\n')
    path, is_key = data.draw(st.sampled_from(string_paths(example)))
    at = data.draw(st.integers(min_value=0, max_value=20))
    req = poison(example, path, is_key, lambda t: t[:at] + char + t[at:])
    # as a client's JSON escape, or as the surrogate's bytes (which are not UTF-8 either)
    line = json.dumps(req, ensure_ascii=not as_bytes).encode("utf-8", "surrogatepass")
    transport.clear()
    proto.dataReceived(line + b"\n" + b'{"class":"ping","id":"after"}\n')
    error, after = sent(transport)
    assert (error["class"], error["code"]) == ("error", "malformed"), error
    assert after["class"] == "response" and after["id"] == "after"  # the session goes on
    assert hub.ami.written == []
    if path != ("id",) and not as_bytes:  # a good id is echoed
        assert error["id"] == example["id"]
