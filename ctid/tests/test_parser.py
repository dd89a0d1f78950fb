"""AMIParser: the Asterisk 20 wire format, the recorded traces byte for byte, and the bounds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from ctid.ami.message import kind, values
from ctid.ami.parser import MAX_BANNER_BYTES, AMIParseError, AMIParser

TRACE_DIR = Path(__file__).parent / "data" / "asterisk-traces"
TRACES = sorted(p.name for p in TRACE_DIR.glob("*.ami.raw"))


def parse(data: bytes, **kwargs: object) -> tuple[list[dict[str, str]], list[AMIParseError], AMIParser]:
    errors: list[AMIParseError] = []
    parser = AMIParser(on_error=errors.append, **kwargs)  # type: ignore[arg-type]
    return parser.feed(data), errors, parser


def feed_bytewise(data: bytes, **kwargs: object) -> list[dict[str, str]]:
    parser = AMIParser(**kwargs)  # type: ignore[arg-type]
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out


# -- the wire format


def test_banner_then_message_without_empty_line_between() -> None:
    msgs, errors, parser = parse(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nActionID: 1\r\n\r\n")
    assert parser.banner == "Asterisk Call Manager/9.0.0"
    assert msgs == [{"Response": "Success", "ActionID": "1"}]
    assert errors == []


def test_banner_alone_then_rest_later() -> None:
    parser = AMIParser()
    assert parser.feed(b"Asterisk Call Man") == []
    assert parser.banner is None
    assert parser.feed(b"ager/9.0.0\r") == []
    assert parser.feed(b"\nEvent: X\r\n\r\n") == [{"Event": "X"}]
    assert parser.banner == "Asterisk Call Manager/9.0.0"


def test_no_banner_mode_for_actions() -> None:
    msgs, _, parser = parse(b"Action: Ping\r\nActionID: a\r\n\r\n", expect_banner=False)
    assert msgs == [{"Action": "Ping", "ActionID": "a"}]
    assert parser.banner is None


def test_empty_values_and_values_containing_colon_space() -> None:
    data = b"\r\nEvent: RequestBadFormat\r\nAccountCode: \r\nRequestType: Action: NoSuchAction\r\n"
    data += b"X: a: b: c\r\n\r\n"
    msgs, errors, _ = parse(b"Asterisk Call Manager/9.0.0" + data)
    assert msgs == [
        {
            "Event": "RequestBadFormat",
            "AccountCode": "",
            "RequestType": "Action: NoSuchAction",
            "X": "a: b: c",
        }
    ]
    assert errors == []


def test_command_output_lines_are_joined() -> None:
    data = (
        b"Response: Success\r\nActionID: 5\r\nMessage: Command output follows\r\n"
        b"Output: line one\r\nOutput: \r\nOutput:   indented: yes\r\n\r\n"
    )
    [msg], errors, _ = parse(data, expect_banner=False)
    assert errors == []
    assert msg["Output"] == "line one\n\n  indented: yes"
    assert values(msg, "Output") == ["line one", "", "  indented: yes"]
    assert values(msg, "Missing") == []


def test_originate_response_is_an_event() -> None:
    [msg], _, _ = parse(
        b"Event: OriginateResponse\r\nActionID: ref-2\r\nResponse: Success\r\n\r\n", expect_banner=False
    )
    assert kind(msg) == "event"
    assert kind({"Response": "Success"}) == "response"
    assert kind({"Action": "Ping"}) == "action"
    assert kind({"Foo": "bar"}) == "unknown"


def test_colon_without_space_is_accepted_and_lines_without_colon_are_reported() -> None:
    msgs, errors, _ = parse(b"Event: X\r\nKey:value\r\nEmpty:\r\njunk line\r\n\r\n", expect_banner=False)
    assert msgs == [{"Event": "X", "Key": "value", "Empty": ""}]
    assert [e.kind for e in errors] == ["malformed-line"]


def test_extra_empty_lines_between_messages_are_harmless() -> None:
    msgs, errors, _ = parse(
        b"Event: A\r\n\r\n\r\n\r\n\r\nEvent: B\r\n\r\n\r\nEvent: C\r\n\r\n", expect_banner=False
    )
    assert msgs == [{"Event": "A"}, {"Event": "B"}, {"Event": "C"}]
    assert errors == []


def test_garbage_is_reported_and_parsing_resyncs() -> None:
    msgs, errors, _ = parse(b"\x00\xff garbage\r\nmore\r\n\r\nEvent: Ok\r\n\r\n", expect_banner=False)
    assert msgs == [{"Event": "Ok"}]
    assert [e.kind for e in errors] == ["garbage"]


def test_non_utf8_bytes_survive_round_trip() -> None:
    [msg], errors, _ = parse(b"Event: X\r\nCallerIDName: Jos\xe9\r\n\r\n", expect_banner=False)
    assert errors == []
    assert msg["CallerIDName"].encode("utf-8", "surrogateescape") == b"Jos\xe9"


# -- bounds


def test_oversize_message_in_one_chunk_is_dropped() -> None:
    big = b"Event: Big\r\nData: " + b"x" * 5000 + b"\r\n\r\n"
    msgs, errors, _ = parse(big + b"Event: Next\r\n\r\n", expect_banner=False, max_message_bytes=1024)
    assert msgs == [{"Event": "Next"}]
    assert [e.kind for e in errors] == ["oversize"]


def test_oversize_message_streamed_is_skipped_with_bounded_buffer() -> None:
    errors: list[AMIParseError] = []
    parser = AMIParser(expect_banner=False, max_message_bytes=1024, on_error=errors.append)
    assert parser.feed(b"Event: Big\r\nData: ") == []
    for _ in range(100):
        assert parser.feed(b"y" * 1000) == []
        assert parser.buffered <= 1024 + 3
    assert [e.kind for e in errors] == ["oversize"]
    assert parser.feed(b"\r\n\r") == []
    assert parser.feed(b"\nEvent: Next\r\n\r\n") == [{"Event": "Next"}]
    assert parser.errors == 1


def test_message_of_exactly_max_bytes_is_kept() -> None:
    body = b"Event: X\r\nD: "
    body += b"z" * (256 - len(body))
    assert len(body) == 256
    assert feed_bytewise(body + b"\r\n\r\n", expect_banner=False, max_message_bytes=256) == [
        {"Event": "X", "D": "z" * (256 - 13)}
    ]
    msgs, errors, _ = parse(body + b"z\r\n\r\n", expect_banner=False, max_message_bytes=256)
    assert msgs == [] and [e.kind for e in errors] == ["oversize"]


def test_too_many_headers() -> None:
    data = b"Event: X\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(100)) + b"\r\nEvent: Y\r\n\r\n"
    msgs, errors, _ = parse(data, expect_banner=False, max_headers=64)
    assert msgs == [{"Event": "Y"}]
    assert [e.kind for e in errors] == ["too-many-headers"]


def test_banner_too_long_falls_back_to_messages() -> None:
    data = b"X" * (MAX_BANNER_BYTES + 10) + b"\r\n\r\nEvent: Y\r\n\r\n"
    msgs, errors, parser = parse(data)
    assert parser.banner is None
    assert msgs == [{"Event": "Y"}]
    assert [e.kind for e in errors] == ["banner-too-long", "garbage"]
    assert feed_bytewise(data) == msgs


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError):
        AMIParser(max_message_bytes=1)


# -- the recorded Asterisk 20 traces


@pytest.mark.parametrize("name", TRACES)
def test_trace_parses_completely_whatever_the_chunking(name: str) -> None:
    data = (TRACE_DIR / name).read_bytes()
    msgs, errors, parser = parse(data)
    assert errors == []
    assert parser.banner == "Asterisk Call Manager/9.0.0"
    assert len(msgs) == data.count(b"\r\n\r\n")
    assert parser.buffered == 0
    assert all(kind(m) in ("event", "response") for m in msgs)
    assert feed_bytewise(data) == msgs
    for size in (7, 100, 4096):
        p = AMIParser()
        chunked = [m for i in range(0, len(data), size) for m in p.feed(data[i : i + size])]
        assert chunked == msgs
    # the header count of every message matches its lines (no header repeats in these traces)
    for raw, msg in zip(data.split(b"\r\n", 1)[1].split(b"\r\n\r\n"), msgs, strict=False):
        assert len(msg) == raw.count(b"\r\n") + 1


@pytest.mark.parametrize("name", TRACES)
def test_trace_lists_have_their_announced_item_count(name: str) -> None:
    msgs, _, _ = parse((TRACE_DIR / name).read_bytes())
    started: set[str] = set()
    items: dict[str, int] = defaultdict(int)
    for msg in msgs:
        action_id = msg.get("ActionID")
        if kind(msg) == "response" and msg.get("EventList") == "start":
            started.add(action_id)  # type: ignore[arg-type]
        elif kind(msg) == "event" and action_id in started:
            if msg.get("EventList") == "Complete":
                assert int(msg["ListItems"]) == items[action_id], msg
                assert msg["Event"].endswith("Complete")
                started.remove(action_id)
            else:
                items[action_id] += 1
    assert not started


def trace(name: str) -> list[dict[str, str]]:
    return parse((TRACE_DIR / f"{name}.ami.raw").read_bytes())[0]


def test_trace_01_known_fields() -> None:
    msgs = trace("01-login-ping-logoff")
    assert len(msgs) == 11
    by_id = {m["ActionID"]: m for m in msgs if kind(m) == "response"}
    assert by_id["ref-1"]["Message"] == "Authentication accepted"
    assert by_id["ref-2"]["Ping"] == "Pong"
    assert by_id["ref-3"]["AsteriskVersion"] == "20.20.1"
    assert by_id["ref-3"]["SystemName"] == ""
    assert by_id["ref-5"]["Output"].startswith("Asterisk 20.20.1 built by root")
    assert by_id["ref-6"]["Originate"] == "Originate a call.  (Priv: originate,all)"
    assert "\t" in by_id["ref-6"]["SendText"]
    assert by_id["ref-7"]["Response"] == "Error"
    assert by_id["ref-8"]["Response"] == "Goodbye"
    bad = next(m for m in msgs if m.get("Event") == "RequestBadFormat")
    assert bad["RequestType"] == "Action: NoSuchAction"


def test_trace_02a_login_failure() -> None:
    assert trace("02a-login-failure") == [
        {"Response": "Error", "ActionID": "ref-1", "Message": "Authentication failed"}
    ]


def test_trace_03_originate_response_is_an_event_with_the_action_id() -> None:
    msgs = trace("03-originate-local")
    assert len(msgs) == 44
    [orig] = [m for m in msgs if m.get("Event") == "OriginateResponse"]
    assert kind(orig) == "event"
    assert (orig["ActionID"], orig["Response"], orig["Reason"]) == ("ref-2", "Success", "4")
    assert orig["CallerIDName"] == "Originate Test"
    failed = next(m for m in msgs if m.get("ActionID") == "ref-3")
    assert (failed["Response"], failed["Message"]) == ("Error", "Originate failed")
    assert any(m.get("AccountCode") == "" for m in msgs)


def test_trace_06_endpoint_detail_is_one_large_message() -> None:
    msgs = trace("06-pjsip-register")
    detail = next(m for m in msgs if m.get("Event") == "EndpointDetail")
    assert len(detail) == 144
    assert detail["Callerid"] == '"Alice 1001" <1001>'
    assert (
        detail["CodecPrefsIncomingOffer"] == "prefer:pending, operation:intersect, keep:all, transcode:allow"
    )


def test_trace_12_queue_status_action_id_last() -> None:
    msgs = trace("12-queue-call")
    params = next(m for m in msgs if m.get("Event") == "QueueParams")
    assert list(params)[-1] == "ActionID"
    assert params["Strategy"] == "ringall"
    events = {m.get("Event") for m in msgs}
    assert {"QueueCallerJoin", "AgentCalled", "AgentConnect", "QueueCallerLeave", "AgentComplete"} <= events
