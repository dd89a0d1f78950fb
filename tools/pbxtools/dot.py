"""Write a :class:`~pbxtools.waitgraph.WaitGraph` in the DOT language, and render it with graphviz.

Nodes are threads, labelled with their thread ID (and LWP and start routine when known); an edge A -> B
means "A is waiting for a lock that B holds" and is labelled with the lock's name and address. Threads
and waits that form a deadlock are drawn in red. A waited-for lock with no known holder gets a dashed
node, labelled with the lock and the places its holder took it (the ``Locked Here`` lines).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import unicodedata

from .waitgraph import WaitGraph

ENGINES = ("dot", "neato", "fdp", "sfdp", "circo", "twopi")
RENDER_FORMATS = ("svg", "png")
FORMATS = ("dot", *RENDER_FORMATS)
RENDER_TIMEOUT = 120.0

_RED = "#c00000"
_RED_FILL = "#ffe0e0"


class RenderError(Exception):
    """Graphviz is missing or failed."""


def _visible(char: str) -> str:
    if char == "\n":
        return "\\n"  # a line break in a label
    if char in ('"', "\\"):
        return "\\" + char
    if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
        return f"\\\\x{ord(char):02x}"  # shown as the text \xNN: no raw control bytes in the file
    return char


def quote(text: str) -> str:
    """A DOT double-quoted string. A newline becomes a line break in a label; control characters are
    shown as ``\\xNN``; quotes and backslashes are escaped, so no text can end the string."""
    return '"' + "".join(_visible(char) for char in text) + '"'


def _label(*lines: str) -> str:
    return quote("\n".join(lines))


def to_dot(graph: WaitGraph, all_threads: bool = False, title: str | None = None) -> str:
    """The DOT text of ``graph``. Only threads that wait or are waited for, unless ``all_threads``."""
    shown = set(graph.threads) if all_threads else graph.involved
    dead_threads = graph.deadlocked_threads
    dead_edges = graph.deadlocked_edges

    out = ["digraph asterisk_locks {"]
    out.append("    graph [rankdir=LR, fontname=Helvetica, labelloc=t];")
    out.append("    node [shape=box, fontname=Helvetica, fontsize=11];")
    out.append("    edge [fontname=Helvetica, fontsize=9];")
    summary = f"{len(graph.deadlocks)} deadlock(s)" if graph.deadlocks else "no deadlock"
    out.append(f"    label={_label(*([title] if title else []), summary)};")

    for thread_id, thread in graph.threads.items():
        if thread_id not in shown:
            continue
        lines = [thread_id]
        if thread.lwp is not None:
            lines.append(f"LWP {thread.lwp}")
        if thread.routine:
            lines.append(thread.routine)
        attrs = [f"label={_label(*lines)}"]
        if thread_id in dead_threads:
            attrs += [f'color="{_RED}"', f'fillcolor="{_RED_FILL}"', "style=filled", "penwidth=2"]
        out.append(f"    {quote(thread_id)} [{', '.join(attrs)}];")

    for node_id, holder in graph.unknown.items():
        lines = ["holder not in the output", f"{holder.lock.name} {holder.lock.addr}"]
        lines += [f"locked at {site}" for site in holder.sites]
        out.append(f"    {quote(node_id)} [label={_label(*lines)}, shape=ellipse, style=dashed];")

    for edge in graph.edges:
        attrs = [f"label={_label(edge.lock.name, edge.lock.addr)}"]
        if edge in dead_edges:
            attrs += [f'color="{_RED}"', f'fontcolor="{_RED}"', "penwidth=2"]
        elif edge.holder in graph.unknown:
            attrs.append("style=dashed")
        out.append(f"    {quote(edge.waiter)} -> {quote(edge.holder)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def find_engine(engine: str) -> str | None:
    return shutil.which(engine)


def render(dot_text: str, fmt: str, engine: str = "dot") -> bytes:
    """Run graphviz on ``dot_text``; return the SVG or PNG bytes. Raise :class:`RenderError`."""
    if fmt not in RENDER_FORMATS:
        raise ValueError(f"cannot render format {fmt!r}")
    program = find_engine(engine)
    if program is None:
        raise RenderError(
            f"graphviz program {engine!r} not found: install graphviz (apt-get install graphviz) "
            "or write DOT with --format dot"
        )
    try:
        result = subprocess.run(
            [program, f"-T{fmt}"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=RENDER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"{engine} did not finish within {RENDER_TIMEOUT:g} s") from None
    except OSError as exc:
        raise RenderError(f"cannot run {program}: {exc.strerror or exc}") from exc
    if result.returncode != 0 or not result.stdout:
        detail = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise RenderError(f"{engine} failed: {detail}")
    return result.stdout


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lockgraph-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
