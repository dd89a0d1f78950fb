"""The ``core show locks`` parser: the seed sample, Asterisk 20 samples, malformed input, fuzzing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pbxtools.locks import LockDump, LockEntry, LockSite, ParseError, ThreadInfo, parse
from testkit.tools import lockdump

DATA = Path(__file__).parent / "data"
SEED = DATA / "seed-core-show-locks.txt"


def normalized(threads: tuple[ThreadInfo, ...] | list[ThreadInfo]) -> list[ThreadInfo]:
    """Threads without the input line numbers, to compare parsed output with built samples."""
    return [
        dataclasses.replace(
            thread,
            source_line=0,
            locks=tuple(dataclasses.replace(lock, source_line=0) for lock in thread.locks),
        )
        for thread in threads
    ]


# -- the seed's sample (the XiVO blog post, Asterisk 1.8 layout, verbatim) -----------------------------------


def test_seed_sample_is_the_verbatim_excerpt_of_the_post() -> None:
    text = SEED.read_text()
    assert text.startswith("=== Currently Held Locks ====")
    assert text.endswith("=== -------------------------------------------------------------------\n")
    assert len(text.splitlines()) == 68
    assert text.count("\n\t") == 54  # the backtrace lines keep their tabs


def test_seed_sample() -> None:
    dump = parse(SEED.read_text())
    assert dump.version is None
    assert [t.thread_id for t in dump.threads] == ["0xb71ffb70", "0xb6cffb70"]

    first, second = dump.threads
    assert first.lwp is None
    assert first.name == "tps_processing_function started at [  457] taskprocessor.c ast_taskprocessor_get()"
    assert first.routine == "tps_processing_function"
    assert [(lock.state, lock.type, lock.name, lock.addr) for lock in first.locks] == [
        ("held", "RDLOCK", "&(&ast_event_subs[event_types[i]])->lock", "0x822aa78"),
        ("held", "MUTEX", "&(&agents)->lock", "0xb64fab48"),
        ("waiting", "MUTEX", "&p->lock", "0x96a1a60"),
    ]
    assert [len(lock.backtrace) for lock in first.locks] == [7, 8, 8]
    assert first.locks[0].backtrace[0] == "/usr/sbin/asterisk(ast_bt_get_addresses+0x19) [0x812a024]"
    waiting = first.locks[2]
    assert (waiting.file, waiting.line_num, waiting.func, waiting.times_locked) == (
        "chan_agent.c",
        430,
        "device_state_cb",
        1,
    )
    assert waiting.locked_here == (LockSite("chan_agent.c", 516, "agent_lock_owner"),)
    assert waiting.source_line == 21

    assert second.routine == "do_devstate_changes"
    assert [lock.state for lock in second.locks] == ["held", "waiting"]
    assert second.locks[1].locked_here == (
        LockSite("channel.c", 3767, "__ast_read"),
        LockSite("chan_agent.c", 515, "agent_lock_owner"),
    )
    assert [len(lock.backtrace) for lock in second.locks] == [15, 16]


# -- synthetic Asterisk 20 samples ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(lockdump.SAMPLES))
def test_sample_files_match_their_builders(name: str) -> None:
    threads = lockdump.SAMPLES[name]()
    assert (DATA / name).read_text() == lockdump.format_dump(threads), (
        "regenerate with: python -m testkit.tools.lockdump tools/tests/data"
    )
    dump = parse((DATA / name).read_text())
    assert dump.version == "20.5.2"
    assert normalized(dump.threads) == normalized(threads)


def test_asterisk20_layout_details() -> None:
    dump = parse((DATA / "ast20-no-deadlock.txt").read_text())
    assert [t.lwp for t in dump.threads] == [42101, 42102, 41990]
    assert dump.threads[0].name == "pbx_thread           started at [ 4760] pbx.c ast_pbx_start()"
    assert dump.threads[0].locks[1].times_locked == 2
    assert dump.threads[1].locks[1].state == "failed"
    assert dump.threads[2].routine == "default_tps_processing_function"


def test_legacy_layout_round_trip() -> None:
    threads = lockdump.two_thread_deadlock()
    assert normalized(parse(lockdump.format_dump(threads, legacy=True)).threads) == normalized(threads)


def test_surrounding_text_crlf_and_blank_lines_are_accepted() -> None:
    body = lockdump.format_dump(lockdump.chain())
    text = "root@pbx:~# asterisk -rx 'core show locks'\n" + body + "*CLI> \nroot@pbx:~# exit\n"
    expected = normalized(lockdump.chain())
    assert normalized(parse(text).threads) == expected
    assert normalized(parse(text.replace("\n", "\r\n")).threads) == expected
    assert normalized(parse(body.replace("\n=== Thread", "\n\n=== Thread")).threads) == expected


def test_output_without_header_starting_at_a_thread() -> None:
    text = lockdump.format_dump(lockdump.chain())
    cut = text[text.index("=== Thread ID") :]
    assert len(parse(cut).threads) == 4


def test_lock_entry_details() -> None:
    line = (
        "=== ---> Waiting for Lock #3 (foo.c): WRLOCK -1 do_it &a lock with spaces 0x7F00AB (12 - suspended)"
    )
    text = "=== Thread ID: 140213 (x)\n" + line + "\n=== " + "-" * 20 + "\n"
    lock = parse(text).threads[0].locks[0]
    assert lock == LockEntry(
        index=3,
        state="waiting",
        file="foo.c",
        type="WRLOCK",
        line_num=-1,
        func="do_it",
        name="&a lock with spaces",
        addr="0x7f00ab",
        times_locked=12,
        suspended=True,
        source_line=2,
    )
    nil = "=== ---> Lock #0 (foo.c): MUTEX 1 f  (nil) (1)"
    lock = parse("=== Thread ID: 0x1 (x)\n" + nil + "\n=== " + "-" * 20 + "\n").threads[0].locks[0]
    assert (lock.name, lock.addr, lock.is_nil) == ("", "(nil)", True)


# -- malformed input -----------------------------------------------------------------------------------------

THREAD = "=== Thread ID: 0x1 LWP:5 (worker started at [  1] a.c b())"
HELD = "=== ---> Lock #0 (a.c): MUTEX 10 f lk 0x10 (1)"
WAITING = "=== ---> Waiting for Lock #1 (a.c): MUTEX 20 g lk2 0x20 (1)"
HERE = "=== --- ---> Locked Here: a.c line 30 (h)"
END = "=== " + "-" * 67


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ([], 1, "no 'core show locks' output found"),
        (["just some text", "and more"], 2, "no 'core show locks' output found"),
        ([THREAD, HELD], 2, "output truncated: the block of thread 0x1 (line 1)"),
        ([THREAD, HELD, "\tframe", "\tfra"], 4, "output truncated"),
        ([THREAD, HELD[:30]], 2, "malformed lock line"),
        ([HELD, END], 1, "lock information before any '=== Thread ID:' line"),
        ([THREAD, HELD, HERE, END], 3, "'Locked Here' line after a lock that is not waited for"),
        ([THREAD, HERE, END], 2, "'Locked Here' line outside of a lock entry"),
        ([THREAD, "\tframe", END], 2, "backtrace line outside of a lock entry"),
        ([THREAD, WAITING, HERE, "\tframe", END], 4, "backtrace line after the 'Locked Here' lines"),
        ([THREAD, HELD, THREAD.replace("0x1", "0x2"), END], 3, "new thread while the block of thread 0x1"),
        ([THREAD, HELD, END, THREAD, HELD, END], 4, "thread 0x1 already listed at line 1"),
        ([THREAD, HELD, "=== something else", END], 3, "unrecognized line"),
        ([THREAD, HELD, "garbage in the middle", END], 3, "unrecognized line"),
        ([THREAD, "=== Thread ID: zz (x)", END], 2, "malformed thread line"),
        ([THREAD, "=== --- ---> Locked Here: a.c (h)", END], 2, "malformed 'Locked Here' line"),
        ([THREAD, HELD, "=" * 71], 3, "is not closed (output truncated?)"),
        (
            ["=" * 71, "=== 20.5.2", "=== Currently Held Locks", "=" * 71, "===", "=== --->", END],
            6,
            "unexpected line in the 'core show locks' header",
        ),
        ([THREAD, HELD, END, "=" * 71, "=" * 71], 5, "a second 'core show locks' output starts here"),
        ([THREAD, HELD, END, "=" * 71, HELD], 5, "lock information after the end of the output"),
        ([END], 1, "lock information before any"),
    ],
)
def test_malformed_input_names_the_line(lines: list[str], line: int, message: str) -> None:
    with pytest.raises(ParseError) as error:
        parse("\n".join(lines) + ("\n" if lines else ""))
    assert error.value.line == line
    assert message in error.value.message
    assert str(error.value).startswith(f"line {line}: ")


def test_truncated_seed_sample() -> None:
    lines = SEED.read_text().splitlines()
    with pytest.raises(ParseError) as error:
        parse("\n".join(lines[:50]) + "\n")
    assert error.value.line == 50
    assert "output truncated: the block of thread 0xb6cffb70 (line 32)" in error.value.message


# -- fuzzing -------------------------------------------------------------------------------------------------


def check_parse(text: str) -> LockDump | None:
    """Parse, allowing only a ParseError with a line number inside the input."""
    lines = text.split("\n")
    count = max(1, len(lines) - (1 if lines[-1] == "" else 0))
    try:
        return parse(text)
    except ParseError as exc:
        assert 1 <= exc.line <= count, (exc.line, count)
        assert exc.message
        return None


@given(st.text())
@example("=== Thread ID: 0x1 (x)\n=== ---> Lock #9999999999999 (a): MUTEX 1 f n 0x1 (1)\n")
@example("=== Thread ID: 0x1 (x)\n=== ---> Lock #1 (a): MUTEX " + "9" * 5000 + " f n 0x1 (1)\n")
@example("=== Thread ID: 0x1 LWP:99999999999999999999 (x)\n")
@example("===\x85\n=== Thread ID: 0x1 (x)\x1c\n")
def test_fuzz_arbitrary_text(text: str) -> None:
    check_parse(text)


_FRAGMENTS = [
    "=" * 71,
    "=== 20.5.2",
    "=== Currently Held Locks",
    "=== Currently Held Locks =====",
    "===",
    lockdump.LEGEND,
    THREAD,
    THREAD.replace("0x1", "0x2"),
    "=== Thread ID: 0x3 (n)",
    HELD,
    WAITING,
    HERE,
    END,
    "\tframe",
    "  frame",
    "",
    "*CLI> core show locks",
    "=== ---> Tried and failed to get Lock #2 (b.c): RDLOCK 5 k l 0x30 (1)",
    "=== ---> Lock #",
    "=== --- ---> Locked Here:",
    "=== Thread ID:",
    "\r",
    " ",
]


@given(
    st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=12), max_size=25), st.sampled_from(["\n", "\r\n"])
)
def test_fuzz_plausible_lines(lines: list[str], newline: str) -> None:
    check_parse(newline.join(lines))


@given(
    sample=st.sampled_from([SEED.name, *sorted(lockdump.SAMPLES)]),
    operation=st.sampled_from(["cut", "cut-line", "drop", "duplicate", "insert", "swap"]),
    position=st.integers(min_value=0),
    other=st.integers(min_value=0),
    junk=st.text(max_size=40),
)
def test_fuzz_mutated_samples(sample: str, operation: str, position: int, other: int, junk: str) -> None:
    text = (DATA / sample).read_text()
    lines = text.split("\n")
    i, j = position % len(lines), other % len(lines)
    if operation == "cut":
        text = text[: position % (len(text) + 1)]
    elif operation == "cut-line":
        text = "\n".join(lines[:i]) + "\n"
    elif operation == "drop":
        text = "\n".join(lines[:i] + lines[i + 1 :])
    elif operation == "duplicate":
        text = "\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    elif operation == "insert":
        text = "\n".join([*lines[:i], junk, *lines[i:]])
    else:
        lines[i], lines[j] = lines[j], lines[i]
        text = "\n".join(lines)
    check_parse(text)


def test_cut_inside_any_thread_block_is_reported_as_truncated() -> None:
    for sample in [SEED.name, *sorted(lockdump.SAMPLES)]:
        lines = (DATA / sample).read_text().split("\n")
        inside = False
        for number, line in enumerate(lines, start=1):
            if line.startswith("=== Thread ID"):
                inside = True
            elif line.startswith("=== ----"):
                inside = False
            elif inside:
                with pytest.raises(ParseError) as error:
                    parse("\n".join(lines[:number]) + "\n")
                assert error.value.line == number
                assert "output truncated" in error.value.message


# Generated dumps: format them the way Asterisk does, parse them back.

_no_newline = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=20)
_word = st.text(
    st.characters(blacklist_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=1, max_size=12
).filter(lambda s: not any(c.isspace() for c in s))
_no_parens = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r()"), max_size=12)
_hex = st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: f"0x{n:x}")
_frame = _no_newline.map(str.strip).filter(bool)


@st.composite
def _lock(draw: st.DrawFn, index: int) -> LockEntry:
    state = draw(st.sampled_from(["held", "waiting", "failed"]))
    return LockEntry(
        index=index,
        state=state,
        file=draw(_no_parens),
        type=draw(st.sampled_from(["MUTEX", "RDLOCK", "WRLOCK", "UNKNOWN"])),
        line_num=draw(st.integers(min_value=-1, max_value=99999)),
        func=draw(_word),
        name=draw(_no_newline),
        addr=draw(_hex | st.just("(nil)")),
        times_locked=draw(st.integers(min_value=0, max_value=999)),
        suspended=draw(st.booleans()),
        locked_here=tuple(
            draw(st.lists(st.builds(LockSite, _no_parens, st.integers(0, 9999), _no_parens), max_size=3))
        )
        if state == "waiting"
        else (),
        backtrace=tuple(draw(st.lists(_frame, max_size=3))),
    )


@st.composite
def _threads(draw: st.DrawFn) -> list[ThreadInfo]:
    ids = draw(st.lists(_hex, max_size=5, unique=True))
    threads = []
    for thread_id in ids:
        count = draw(st.integers(min_value=0, max_value=4))
        threads.append(
            ThreadInfo(
                thread_id=thread_id,
                name=draw(_no_newline),
                lwp=draw(st.none() | st.integers(min_value=0, max_value=2**31 - 1)),
                locks=tuple(draw(_lock(i)) for i in range(count)),
            )
        )
    return threads


@given(_threads(), st.booleans())
def test_generated_dumps_round_trip(threads: list[ThreadInfo], legacy: bool) -> None:
    text = lockdump.format_dump(threads, legacy=legacy)
    assert normalized(parse(text).threads) == normalized(threads)
