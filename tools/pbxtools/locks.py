"""Parser for the output of Asterisk's ``core show locks`` (Asterisk built with DEBUG_THREADS).

The output lists, for each thread that holds or waits for a lock, its lock entries (``main/utils.c``,
``ast_dump_locks()`` and ``append_lock_information()``)::

    === Thread ID: 0x7f3a2c1f6640 LWP:23471 (pbx_thread started at [ 4745] pbx.c ast_pbx_start())
    === ---> Lock #0 (channel.c): MUTEX 3570 __ast_read chan 0x7f3a3400d2b0 (1)
    <TAB>backtrace lines...
    === ---> Waiting for Lock #1 (chan_pjsip.c): MUTEX 742 chan_pjsip_read_stream pvt 0x7f3a3401e6a8 (1)
    <TAB>backtrace lines...
    === --- ---> Locked Here: chan_pjsip.c line 1610 (chan_pjsip_indicate)
    === -------------------------------------------------------------------

A lock line reads ``<pending> Lock #<n> (<file>): <type> <line> <function> <lock name> <address>
(<times locked>[ - suspended])`` where pending is empty (held), ``Waiting for`` or ``Tried and failed to
get``. The ``Locked Here`` lines follow a mutex being waited for: they give where its current holder took
it (one line per recursive acquisition). The holder thread itself is the one listing the same lock
address as held.

Both the Asterisk 1.8 layout (a single ``=== Currently Held Locks ====`` header line) and the current one
(a banner of ``=`` with the version, and ``===`` spacer lines) are accepted, as are lines before the
output (shell or CLI prompt) and after it. Anything else inside the output raises :class:`ParseError`
with the line number: unknown lines, lines out of place, and output cut short inside a thread's block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

LockState = Literal["held", "waiting", "failed"]

_BANNER = re.compile(r"={10,}")
_CURRENTLY_HELD = re.compile(r"=== Currently Held Locks\b.*")
_LEGEND = re.compile(r"=== <pending> .*")
_SPACER = re.compile(r"===")
_SEPARATOR = re.compile(r"=== -{10,}")
_THREAD = re.compile(
    r"=== Thread ID: (?P<id>0x[0-9a-fA-F]{1,16}|[0-9]{1,20})(?: LWP:(?P<lwp>-?[0-9]{1,10}))? \((?P<name>.*)\)"
)
_LOCK = re.compile(
    r"=== ---> (?P<pending>Waiting for |Tried and failed to get )?Lock #(?P<index>[0-9]{1,9}) "
    r"\((?P<file>[^()]*)\): (?P<type>[A-Z]+) (?P<line>-?[0-9]{1,9}) (?P<func>\S+) (?P<name>.*?) "
    r"(?P<addr>0x[0-9a-fA-F]{1,16}|\(nil\)) \((?P<times>-?[0-9]{1,9})(?P<suspended> - suspended)?\)"
)
_LOCKED_HERE = re.compile(
    r"=== --- ---> Locked Here: (?P<file>.*) line (?P<line>-?[0-9]{1,9}) \((?P<func>.*)\)"
)
# Lines that can only appear inside a thread's block: seen first, they mean the output was cut at the start.
_BLOCK_ONLY = re.compile(r"=== (?:--->|--- --->|-{10,})")


class ParseError(ValueError):
    """The input is not valid ``core show locks`` output. ``line`` is the 1-based number of the line."""

    def __init__(self, line: int, message: str, text: str | None = None) -> None:
        self.line = line
        self.message = message
        self.text = text
        shown = f": {_clip(text)!r}" if text is not None else ""
        super().__init__(f"line {line}: {message}{shown}")


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class LockSite:
    """Where a lock was taken: a ``Locked Here`` line."""

    file: str
    line: int
    func: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.func}"


@dataclass(frozen=True)
class LockEntry:
    """One lock of a thread: held, waited for, or a failed trylock."""

    index: int
    state: LockState
    file: str
    type: str
    line_num: int
    func: str
    name: str
    addr: str
    times_locked: int
    suspended: bool = False
    locked_here: tuple[LockSite, ...] = ()
    backtrace: tuple[str, ...] = ()
    source_line: int = 0  # line of the input, for messages

    @property
    def site(self) -> LockSite:
        return LockSite(self.file, self.line_num, self.func)

    @property
    def is_nil(self) -> bool:
        return self.addr == "(nil)"

    def describe(self) -> str:
        return f"{self.type} {self.name} {self.addr} ({self.site})"


@dataclass(frozen=True)
class ThreadInfo:
    thread_id: str
    name: str
    lwp: int | None = None
    locks: tuple[LockEntry, ...] = ()
    source_line: int = 0

    @property
    def routine(self) -> str:
        """The thread's start routine: the first word of its name ("pbx_thread")."""
        words = self.name.split()
        return words[0] if words else ""

    @property
    def held(self) -> tuple[LockEntry, ...]:
        return tuple(lock for lock in self.locks if lock.state == "held")

    @property
    def waiting(self) -> tuple[LockEntry, ...]:
        return tuple(lock for lock in self.locks if lock.state == "waiting")

    def describe(self) -> str:
        extra = [f"LWP {self.lwp}"] if self.lwp is not None else []
        if self.routine:
            extra.append(self.routine)
        return f"thread {self.thread_id}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class LockDump:
    threads: tuple[ThreadInfo, ...]
    version: str | None = None

    def thread(self, thread_id: str) -> ThreadInfo:
        for thread in self.threads:
            if thread.thread_id == thread_id:
                return thread
        raise KeyError(thread_id)


@dataclass
class _ThreadBuilder:
    thread_id: str
    name: str
    lwp: int | None
    source_line: int
    locks: list[LockEntry] = field(default_factory=list)
    backtrace: list[str] = field(default_factory=list)
    locked_here: list[LockSite] = field(default_factory=list)

    def flush_lock(self) -> None:
        if self.locks:
            last = self.locks[-1]
            self.locks[-1] = replace(
                last, backtrace=tuple(self.backtrace), locked_here=tuple(self.locked_here)
            )
        self.backtrace = []
        self.locked_here = []

    def build(self) -> ThreadInfo:
        self.flush_lock()
        return ThreadInfo(self.thread_id, self.name, self.lwp, tuple(self.locks), self.source_line)


_STATES: dict[str | None, LockState] = {
    None: "held",
    "Waiting for ": "waiting",
    "Tried and failed to get ": "failed",
}


def _lock_entry(match: re.Match[str], lineno: int) -> LockEntry:
    return LockEntry(
        index=int(match["index"]),
        state=_STATES[match["pending"]],
        file=match["file"],
        type=match["type"],
        line_num=int(match["line"]),
        func=match["func"],
        name=match["name"],
        addr=match["addr"].lower() if match["addr"] != "(nil)" else "(nil)",
        times_locked=int(match["times"]),
        suspended=match["suspended"] is not None,
        source_line=lineno,
    )


def parse(text: str) -> LockDump:
    """Parse ``core show locks`` output; raise :class:`ParseError` naming the line when it is not valid."""
    return _Parser().run(text)


class _Parser:
    def __init__(self) -> None:
        self.state: Literal["before", "header", "body", "after"] = "before"
        self.version: str | None = None
        self.header_line = 0
        self.threads: list[ThreadInfo] = []
        self.seen: dict[str, int] = {}
        self.current: _ThreadBuilder | None = None

    def run(self, text: str) -> LockDump:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for lineno, raw in enumerate(lines, start=1):
            self.line(lineno, raw.rstrip("\r"))
        last = max(len(lines), 1)
        if self.state == "before":
            raise ParseError(
                last,
                "no 'core show locks' output found: expected a '=== Currently Held Locks' header "
                "or a '=== Thread ID:' line",
            )
        if self.current is not None:
            raise ParseError(
                last,
                f"output truncated: the block of thread {self.current.thread_id} (line "
                f"{self.current.source_line}) has no closing '=== ------' line",
            )
        return LockDump(tuple(self.threads), self.version)

    # -- one line ----------------------------------------------------------------------------------------

    def line(self, lineno: int, raw: str) -> None:
        stripped = raw.rstrip()
        if self.state == "before":
            self.before(lineno, raw, stripped)
        elif self.state == "header":
            self.header(lineno, raw, stripped)
        elif self.state == "body":
            self.body(lineno, raw, stripped)
        else:
            self.after(lineno, raw, stripped)

    def before(self, lineno: int, raw: str, line: str) -> None:
        if _BANNER.fullmatch(line) or _CURRENTLY_HELD.fullmatch(line):
            self.state = "header"
            self.header_line = lineno
        elif _THREAD.fullmatch(line):
            self.state = "body"
            self.body(lineno, raw, line)
        elif _BLOCK_ONLY.match(line):
            raise ParseError(
                lineno, "lock information before any '=== Thread ID:' line (output cut at the start?)", raw
            )
        # Anything else before the output (prompt, blank lines, log lines) is skipped.

    def header(self, lineno: int, raw: str, line: str) -> None:
        if _LEGEND.fullmatch(line):
            self.state = "body"
        elif _THREAD.fullmatch(line):
            self.state = "body"
            self.body(lineno, raw, line)
        elif (
            _BANNER.fullmatch(line) or _CURRENTLY_HELD.fullmatch(line) or _SPACER.fullmatch(line) or not line
        ):
            pass
        elif line.startswith("=== ") and not _BLOCK_ONLY.match(line) and self.version is None:
            self.version = line[4:].strip()  # "=== Asterisk 20.5.2": the version line of the banner
        else:
            raise ParseError(lineno, "unexpected line in the 'core show locks' header", raw)

    def body(self, lineno: int, raw: str, line: str) -> None:
        current = self.current
        if not line:
            return  # tolerated: blank lines added by copy and paste
        if raw[:1].isspace():
            if current is None or not current.locks:
                raise ParseError(lineno, "backtrace line outside of a lock entry", raw)
            if current.locked_here:
                raise ParseError(lineno, "backtrace line after the 'Locked Here' lines of a lock", raw)
            current.backtrace.append(raw.strip())
            return
        if match := _THREAD.fullmatch(line):
            if current is not None:
                raise ParseError(
                    lineno,
                    f"new thread while the block of thread {current.thread_id} (line {current.source_line}) "
                    "is not closed by a '=== ------' line",
                    raw,
                )
            thread_id = match["id"].lower()
            if thread_id in self.seen:
                raise ParseError(
                    lineno, f"thread {thread_id} already listed at line {self.seen[thread_id]}", raw
                )
            self.seen[thread_id] = lineno
            lwp = int(match["lwp"]) if match["lwp"] is not None else None
            self.current = _ThreadBuilder(thread_id, match["name"], lwp, lineno)
            return
        if match := _LOCK.fullmatch(line):
            if current is None:
                raise ParseError(lineno, "lock entry outside of a thread block", raw)
            current.flush_lock()
            current.locks.append(_lock_entry(match, lineno))
            return
        if match := _LOCKED_HERE.fullmatch(line):
            if current is None or not current.locks:
                raise ParseError(lineno, "'Locked Here' line outside of a lock entry", raw)
            if current.locks[-1].state != "waiting":
                raise ParseError(lineno, "'Locked Here' line after a lock that is not waited for", raw)
            current.locked_here.append(LockSite(match["file"], int(match["line"]), match["func"]))
            return
        if _SEPARATOR.fullmatch(line):
            if current is None:
                raise ParseError(lineno, "'=== ------' separator outside of a thread block", raw)
            self.threads.append(current.build())
            self.current = None
            return
        if _SPACER.fullmatch(line) or _LEGEND.fullmatch(line):
            return
        if _BANNER.fullmatch(line):
            if current is not None:
                raise ParseError(
                    lineno,
                    f"end of output while the block of thread {current.thread_id} "
                    f"(line {current.source_line}) "
                    "is not closed (output truncated?)",
                    raw,
                )
            self.state = "after"
            return
        raise ParseError(lineno, _explain(line), raw)

    def after(self, lineno: int, raw: str, line: str) -> None:
        if _BANNER.fullmatch(line) or _CURRENTLY_HELD.fullmatch(line) or _THREAD.fullmatch(line):
            raise ParseError(
                lineno,
                f"a second 'core show locks' output starts here (the first one started at line "
                f"{self.header_line}); give one output at a time",
                raw,
            )
        if _BLOCK_ONLY.match(line):
            raise ParseError(lineno, "lock information after the end of the output", raw)


def _explain(line: str) -> str:
    if line.startswith("=== --->"):
        return (
            "malformed lock line (expected "
            "'=== ---> [Waiting for ]Lock #N (file): TYPE line function name address (count)')"
        )
    if line.startswith("=== --- --->"):
        return "malformed 'Locked Here' line (expected '=== --- ---> Locked Here: file line N (function)')"
    if line.startswith("=== Thread ID"):
        return "malformed thread line (expected '=== Thread ID: 0x... [LWP:N] (name)')"
    return "unrecognized line in 'core show locks' output"
