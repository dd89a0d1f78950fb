"""Fuzzing of the CTI framing and request handling: arbitrary bytes, arbitrary splits, arbitrary JSON."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ctid.cti.server import CTIConfig, CTIServer
from ctid.cti.validator import load, validate
from ctid.directory import Directory, User
from ctid.state.tracker import CallTracker

SCALE = int(os.environ.get("CTID_FUZZ_SCALE", "1"))
LIMIT = 512


def make():
    directory = Directory()
    directory.replace_all([User(1, "Alice", "alice", "$scrypt$bad", True, ("1001",), "1001")])
    hub = CTIServer(
        CTIConfig(max_message_bytes=LIMIT, max_errors=10**9),
        CallTracker(),
        directory,
        clock=Clock(),
        check_password=lambda password, encoded: succeed(password == "right"),
    )
    proto = hub.build_protocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    return hub, proto, transport


def sent(transport: StringTransport) -> list[dict]:
    data = transport.value()
    assert data.endswith(b"\n")
    out = [json.loads(line) for line in data.split(b"\n")[:-1]]
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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
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
        "login": json_values,
        "password": st.sampled_from(["right", "wrong"]) | json_values,
        "topics": json_values,
        "number": st.text(max_size=45) | json_values,
        "call_id": json_values,
        "mode": json_values,
        "paused": json_values,
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
        # AMI is not connected here: nothing that needs it can succeed
        if req["class"] in ("dial", "hangup", "transfer", "queue_pause"):
            assert answer["class"] == "error"
