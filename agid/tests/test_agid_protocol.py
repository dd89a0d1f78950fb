"""Wire format: replies, the parser, command quoting (no socket here; see test_agid_server for TCP)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agid.errors import AGIArgumentError, AGIProtocolError
from agid.protocol import (
    MAX_COMMAND_BYTES,
    MAX_COMMAND_WORDS,
    MSET_MAX_PAIRS,
    AGIParser,
    AGIReply,
    EnvReceived,
    Event,
    HangupReceived,
    Limits,
    Quoted,
    format_command,
    mset_batches,
    mset_pairs,
    parse_reply_line,
    quote_arg,
)
from testkit.fastagi import Trace, asterisk_mset, asterisk_parse_args, asterisk_read_commands

# ---------------------------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("line", "result", "data", "fields", "text"),
    [
        ("200 result=0", "0", None, {}, ""),
        ("200 result=1 (Local/hello@agi-test-00000002;2)", "1", "Local/hello@agi-test-00000002;2", {}, ""),
        ('200 result=1 ("AGI Test" <5550104>)', "1", '"AGI Test" <5550104>', {}, ""),
        ("200 result=-1 endpos=0", "-1", None, {"endpos": "0"}, ""),
        ("200 result=-1", "-1", None, {}, ""),
        ("200 result=6", "6", None, {}, ""),
        ("200 result=1 (value1)", "1", "value1", {}, ""),
        # GET DATA puts the digits in result, possibly none
        ("200 result=*12 (timeout)", "*12", "timeout", {}, ""),
        ("200 result= (timeout)", "", "timeout", {}, ""),
        # data with spaces and parentheses, balanced or not
        ("200 result=1 (a (b) c)", "1", "a (b) c", {}, ""),
        ("200 result=1 (a) endpos=3)", "1", "a) endpos=3", {}, ""),
        ("200 result=1 (x(y)", "1", "x(y", {}, ""),
        ("200 result=1 ()", "1", "", {}, ""),
        ("200 result=1 (  )", "1", "  ", {}, ""),
        ("200 result=0 (timeout) endpos=8000", "0", "timeout", {"endpos": "8000"}, ""),
        ("200 result=1 (x) endpos=5) endpos=12", "1", "x) endpos=5", {"endpos": "12"}, ""),
        (
            "200 result=1 (speech) endpos=0 results=1 score0=900 text0=hi grammar0=g",
            "1",
            "speech",
            {"endpos": "0", "results": "1", "score0": "900", "text0": "hi", "grammar0": "g"},
            "",
        ),
        ("200 result=0 Gosub complete", "0", None, {}, "Gosub complete"),
    ],
)
def test_parse_200(line: str, result: str, data: str | None, fields: dict[str, str], text: str) -> None:
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, reply.data, dict(reply.fields), reply.text) == (
        200,
        result,
        data,
        fields,
        text,
    )
    assert reply.line == line


def test_result_int() -> None:
    assert parse_reply_line("200 result=-1 endpos=0").result_int() == -1
    with pytest.raises(AGIProtocolError):
        parse_reply_line("200 result=*12 (timeout)").result_int()


@pytest.mark.parametrize(
    ("line", "code", "text"),
    [
        ("510 Invalid or unknown command", 510, "Invalid or unknown command"),
        (
            "511 Command Not Permitted on a dead channel or intercept routine",
            511,
            "Command Not Permitted on a dead channel or intercept routine",
        ),
        (
            "520 Invalid command syntax.  Proper usage not available.",
            520,
            "Invalid command syntax.  Proper usage not available.",
        ),
        ("510", 510, ""),
    ],
)
def test_parse_error_codes(line: str, code: int, text: str) -> None:
    reply = parse_reply_line(line)
    assert (reply.code, reply.text, reply.result, reply.data) == (code, text, None, None)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "HANGUP",
        "200",
        "200 result",
        "200 foo=1",
        "20 result=1",
        "abc",
        "200 result=1 (unterminated",
        "520-x",
    ],
)
def test_parse_reply_rejects(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply_line(line)


@given(
    result=st.from_regex(r"-?[0-9]{1,6}", fullmatch=True),
    data=st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]), max_size=60),
    endpos=st.none() | st.integers(0, 10**9),
)
def test_reply_data_round_trip(result: str, data: str, endpos: int | None) -> None:
    """Whatever the value Asterisk puts between the parentheses, we get it back exactly."""
    line = f"200 result={result} ({data})" + ("" if endpos is None else f" endpos={endpos}")
    reply = parse_reply_line(line)
    assert reply.result == result
    assert reply.data == data
    assert dict(reply.fields) == ({} if endpos is None else {"endpos": str(endpos)})


# any text, and text after the start of a reply (so that many are accepted)
_REPLY_LINES = st.text(max_size=200) | st.tuples(
    st.sampled_from(["200 result=", "200 result=1 ", "510 ", "511 ", "520 "]), st.text(max_size=100)
).map("".join)


def test_parse_reply_line_only_raises_protocol_error() -> None:
    seen = Counter[str]()

    @given(_REPLY_LINES)
    def example(line: str) -> None:
        try:
            reply = parse_reply_line(line)
        except AGIProtocolError:
            seen["refused"] += 1
            return
        assert isinstance(reply, AGIReply)
        seen["accepted"] += 1

    example()
    assert seen["accepted"] > 0 and seen["refused"] > 0, seen


# ------------------------------------------------------------------------------------------------ parser


def _events(data: bytes, chunks: list[int] | None = None) -> list[Event]:
    parser = AGIParser()
    events: list[Event] = []
    if chunks is None:
        return parser.feed(data)
    pos = 0
    for size in chunks:
        events += parser.feed(data[pos : pos + size])
        pos += size
    events += parser.feed(data[pos:])
    return events


def test_parser_on_trace04(trace04: Trace) -> None:
    events = _events(trace04.from_asterisk)
    assert isinstance(events[0], EnvReceived)
    env = events[0].env
    assert env.network_script == "hello"
    assert env.args == ("arg-one", "arg two")
    replies = events[1:]
    assert all(isinstance(r, AGIReply) for r in replies)
    assert len(replies) == len(trace04.commands) == 13
    codes = [r.code for r in replies if isinstance(r, AGIReply)]
    assert codes == [200] * 9 + [510, 520, 200, 200]
    usage = replies[10]
    assert isinstance(usage, AGIReply)
    assert usage.text == "Invalid command syntax.  Proper usage follows:"
    assert usage.line == "520 End of proper usage."
    assert usage.usage[1] == "Example return code: 200 result=1 (testvariable)"
    assert len(usage.usage) == 2
    stream = replies[11]
    assert isinstance(stream, AGIReply)
    assert (stream.result, dict(stream.fields)) == ("-1", {"endpos": "0"})


def test_parser_on_trace05_hangup(trace05: Trace) -> None:
    events = _events(trace05.from_asterisk)
    kinds = [type(e).__name__ if not isinstance(e, AGIReply) else e.code for e in events]
    assert kinds == ["EnvReceived", 200, 200, 200, "HangupReceived", 511, 511, 200]


@settings(max_examples=200)
@given(st.data())
def test_parser_chunking_invariant(trace04: Trace, trace05: Trace, data: st.DataObject) -> None:
    """Asterisk's bytes may arrive in any TCP segmentation: same events."""
    for stream in (trace04.from_asterisk, trace05.from_asterisk):
        chunks = data.draw(st.lists(st.integers(0, 64), max_size=40))
        assert _events(stream, chunks) == _events(stream)


def test_parser_hangup_before_reply_and_between() -> None:
    parser = AGIParser()
    assert isinstance(parser.feed(b"agi_network: yes\n\n")[0], EnvReceived)
    events = parser.feed(b"HANGUP\n200 result=-1\nHANGUP\n")
    assert [type(e) for e in events] == [HangupReceived, AGIReply, HangupReceived]


def test_parser_limits() -> None:
    limits = Limits(max_line=100, max_env_lines=3, max_usage_lines=2)
    with pytest.raises(AGIProtocolError, match="line longer"):
        AGIParser(limits).feed(b"x" * 101)
    with pytest.raises(AGIProtocolError, match="line longer"):
        AGIParser(limits).feed(b"x" * 150 + b"\n")
    with pytest.raises(AGIProtocolError, match="environment longer"):
        AGIParser(limits).feed(b"agi_a: 1\n" * 4)
    parser = AGIParser(limits)
    parser.feed(b"\n")
    with pytest.raises(AGIProtocolError, match="multi-line"):
        parser.feed(b"520-x\na\nb\nc\n")
    hangups = AGIParser(limits)
    hangups.feed(b"\n" + b"HANGUP\n" * 4)
    with pytest.raises(AGIProtocolError, match="HANGUP"):
        hangups.feed(b"HANGUP\n")
    # a dead parser stays dead
    with pytest.raises(AGIProtocolError):
        parser.feed(b"200 result=1\n")


def test_parser_fuzz_env_and_replies() -> None:
    """Arbitrary bytes, before or after a valid env: events or AGIProtocolError, nothing else; both
    happen, and accepted streams give events."""
    prefixes = (b"", b"agi_network: yes\nagi_network_script: ping\n\n")
    seen = Counter[tuple[bytes, str]]()

    @settings(max_examples=300)
    @given(
        st.binary(max_size=300)
        | st.lists(
            st.sampled_from([b"200 result=1\n", b"HANGUP\n", b"520-x\n", b"(\n", b"\xff\n"]), max_size=8
        ).map(b"".join),
        st.lists(st.integers(1, 50), max_size=10),
    )
    def example(data: bytes, chunks: list[int]) -> None:
        for prefix in prefixes:
            parser = AGIParser(Limits(max_line=128))
            stream = prefix + data
            pos = 0
            events = 0
            try:
                for size in [*chunks, len(stream)]:
                    for event in parser.feed(stream[pos : pos + size]):
                        assert isinstance(event, EnvReceived | HangupReceived | AGIReply)
                        events += 1
                    pos += size
            except AGIProtocolError:
                seen[prefix, "refused"] += 1
                continue
            seen[prefix, "accepted"] += 1
            if events:
                seen[prefix, "events"] += 1

    example()
    assert all(seen[prefix, "accepted"] > 0 for prefix in prefixes), seen
    assert sum(seen[prefix, "refused"] for prefix in prefixes) > 0, seen
    assert seen[prefixes[1], "events"] > 0, seen  # at least the environment


# ----------------------------------------------------------------------------------------------- commands


def test_format_matches_trace04_commands(trace04: Trace) -> None:
    """Our quoting writes exactly what was recorded."""
    ours = [
        format_command("ANSWER"),
        format_command("VERBOSE", Quoted("hello from fastagi"), 1),
        format_command("GET VARIABLE", "CHANNEL"),
        format_command("GET FULL VARIABLE", "${CALLERID(all)}"),
        format_command("SET VARIABLE", "FROM_AGI", "yes it works"),
        format_command("CHANNEL STATUS"),
        format_command("DATABASE PUT", "reftest", "key", "value1"),
        format_command("DATABASE GET", "reftest", "key"),
        format_command("EXEC", "Wait", "0.2"),
        format_command("NOSUCHCOMMAND", "foo"),
        format_command("GET VARIABLE"),
        format_command("STREAM FILE", "no-such-sound-file", ""),
        format_command("WAIT FOR DIGIT", 100),
    ]
    assert ours == trace04.commands


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("a b", '"a b"'),
        ("tab\there", '"tab\there"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("ünïcödé", "ünïcödé"),
        (42, "42"),
        (-1, "-1"),
        (Quoted("holding"), '"holding"'),
        (Quoted(""), '""'),
    ],
)
def test_quote_arg(value: str | int, quoted: str) -> None:
    assert quote_arg(value) == quoted
    assert asterisk_parse_args(quoted.encode()) == [str(value).encode()]


@pytest.mark.parametrize(
    "value",
    ["a\nEXEC Hangup", "a\rb", "a\r\nANSWER", "\n", "nul\x00cut", "x\n200 result=1"],
)
def test_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(AGIArgumentError):
        format_command("SET VARIABLE", "X", value)
    with pytest.raises(AGIArgumentError):
        format_command("SET VARIABLE", value, "x")


@pytest.mark.parametrize("bad", [True, None, 1.5, b"bytes"])
def test_argument_types(bad: object) -> None:
    with pytest.raises(AGIArgumentError):
        quote_arg(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["", "GET  VARIABLE", "GET\nVARIABLE", "X;Y", " ANSWER", "ANSWER "])
def test_command_name_checked(command: str) -> None:
    with pytest.raises(AGIArgumentError):
        format_command(command)


def test_length_and_word_limits() -> None:
    longest = "x" * (MAX_COMMAND_BYTES - len("VERBOSE ") - 2) + " 1"
    assert len(format_command("VERBOSE", longest[:-2], 1)) == MAX_COMMAND_BYTES + 1
    with pytest.raises(AGIArgumentError, match="bytes"):
        format_command("VERBOSE", "x" * MAX_COMMAND_BYTES)
    assert format_command("EXEC", *["a"] * (MAX_COMMAND_WORDS - 1))
    with pytest.raises(AGIArgumentError, match="words"):
        format_command("EXEC", *["a"] * MAX_COMMAND_WORDS)
    with pytest.raises(AGIArgumentError):
        format_command("VERBOSE", "\udc80\ud800")  # a lone surrogate that is not an escaped byte


_ARG_TEXT = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(' \t"\\\n\r\x00'),
    max_size=40,
)


def test_command_round_trip_through_asterisk_parser() -> None:
    """Either refused, or Asterisk reads exactly one command with exactly these arguments; both happen."""
    seen = Counter[str]()

    @settings(max_examples=500)
    @given(st.lists(_ARG_TEXT | st.integers(-(10**6), 10**6), max_size=8))
    def example(args: list[str | int]) -> None:
        try:
            line = format_command("SET VARIABLE", *args)
        except AGIArgumentError:
            assert any(isinstance(a, str) and any(c in a for c in "\n\r\x00") for a in args)
            seen["refused"] += 1
            return
        commands = asterisk_read_commands(line)
        assert len(commands) == 1
        expected = [b"SET", b"VARIABLE", *(str(a).encode("utf-8") for a in args)]
        assert asterisk_parse_args(commands[0]) == expected
        seen["accepted"] += 1
        if any(isinstance(a, str) and a for a in args):
            seen["accepted with text"] += 1

    example()
    assert seen["accepted with text"] > 0 and seen["refused"] > 0, seen


def test_long_lines_never_split() -> None:
    """Near Asterisk's 2047-byte fgets buffer: refused, or read as one command; both happen."""
    seen = Counter[str]()

    @settings(max_examples=200)
    @given(st.integers(1990, 2060), st.text(st.sampled_from('aé \\"\t€'), max_size=30))
    def example(size: int, tail: str) -> None:
        value = "x" * size + tail
        try:
            line = format_command("VERBOSE", value, 1)
        except AGIArgumentError:
            seen["refused"] += 1
            return
        assert len(asterisk_read_commands(line)) == 1
        seen["accepted"] += 1

    example()
    assert seen["accepted"] > 0 and seen["refused"] > 0, seen


# ----------------------------------------------------------------------------------------- MSet batches


def test_mset_oracle_follows_asterisk_quirks() -> None:
    # quotes and backslashes go, () and [] protect commas, the value of a pair is the rest after its "="
    assert asterisk_mset(b'A=1,B="x,y",C=f(a,b),D=\\,e,E=k=v,F=') == {
        b"A": b"1",
        b"B": b"x,y",
        b"C": b"f(a,b)",
        b"D": b",e",
        b"E": b"k=v",
        b"F": b"",
    }
    assert asterisk_mset(b"NOEQUALS,G=2") == {b"G": b"2"}


def test_mset_batches_keep_apart_what_mset_would_change() -> None:
    items = [("AGID_ACTION", "DIAL"), ("AGID_CAUSE", "do not disturb"), ("CALLERID(name)", "Éloïse d'Arc"),
             ("AGID_DIAL", "PJSIP/a&PJSIP/b/sip:b@192.0.2.1:5060;ob"), ("AGID_NAME", 'Ann "A", (x)'),
             ("AGID_EMPTY", ""), ("CALLERID(name,x)", "1"), ("AGID_X", "${EVIL}"), ("AGID_Y", "a\\b"),
             ("AGID_TAB", "a\tb"), ("GROUP(agid_user)", "u12")]  # fmt: skip
    batches, single = mset_batches(items)
    assert [mset_pairs(b) for b in batches] == [
        "AGID_ACTION=DIAL,AGID_CAUSE=do not disturb,CALLERID(name)=Éloïse d'Arc,"
        "AGID_DIAL=PJSIP/a&PJSIP/b/sip:b@192.0.2.1:5060;ob,AGID_EMPTY=,GROUP(agid_user)=u12"
    ]
    assert single == [items[4], *items[6:10]]


mset_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}(\([A-Za-z0-9_@]{1,10}\))?", fullmatch=True)
mset_values = st.one_of(st.text(max_size=60), st.from_regex(r"[A-Za-z0-9@/&.;:-]{0,300}", fullmatch=True))


@given(st.dictionaries(st.one_of(mset_names, st.text(min_size=1, max_size=20)), mset_values, max_size=250))
@settings(max_examples=300, deadline=None)
def test_mset_batches_set_exactly_what_was_asked(variables: dict[str, str]) -> None:
    """Asterisk (the oracle) sets each batched pair to its exact value; the rest is left to SET VARIABLE."""
    items = list(variables.items())
    batches, single = mset_batches(items)
    set_by_mset: dict[str, str] = {}
    for batch in batches:
        line = format_command("EXEC", "MSet", mset_pairs(batch))
        assert len(line) <= MAX_COMMAND_BYTES + 1
        argv = asterisk_parse_args(line.rstrip(b"\n"))
        assert argv[:2] == [b"EXEC", b"MSet"] and len(argv) == 3
        assert len(batch) <= MSET_MAX_PAIRS
        pairs = asterisk_mset(argv[2])
        set_by_mset.update({k.decode(): v.decode() for k, v in pairs.items()})
    assert set_by_mset == {name: value for name, value in items if (name, value) not in single}
    assert len(set_by_mset) + len(single) == len(items)
