"""lockgraph as a process, the DOT it writes, and rendering through graphviz."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxtools import dot
from pbxtools.locks import LockEntry, LockSite, ThreadInfo, parse
from pbxtools.waitgraph import build
from testkit.tools import lockdump
from testkit.tools.runners import run_tool

DATA = Path(__file__).parent / "data"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAVE_DOT, reason="graphviz 'dot' is not installed: render check skipped (apt-get install graphviz)"
)

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(rf"^    {_QUOTED} \[(.*)\];$")
_EDGE = re.compile(rf"^    {_QUOTED} -> {_QUOTED} \[(.*)\];$")


def unquote(text: str) -> str:
    """The text a DOT label shows (control characters come back as their \\xNN spelling)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def shown(text: str) -> str:
    """How lockgraph spells ``text`` in a label."""
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def read_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Nodes (id -> attributes) and edges (tail, head, attributes) of the DOT lockgraph writes."""
    lines = text.split("\n")
    assert lines[0] == "digraph asterisk_locks {" and lines[-2:] == ["}", ""]
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:-2]:
        if match := _EDGE.match(line):
            edges.append((unquote(match[1]), unquote(match[2]), match[3]))
        elif match := _NODE.match(line):
            nodes[unquote(match[1])] = match[2]
        else:
            assert re.match(r"^    (graph|node|edge) \[.*\];$|^    label=\".*\";$", line), line
    return nodes, edges


def label_of(attributes: str) -> str:
    match = re.search(rf"label={_QUOTED}", attributes)
    assert match is not None
    return unquote(match[1])


def plain(dot_text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """What graphviz itself reads in the DOT text: node names and edges (``dot -Tplain``)."""
    out = subprocess.run(
        ["dot", "-Tplain"], input=dot_text.encode(), capture_output=True, check=True, timeout=60
    )
    nodes: set[str] = set()
    edges: list[tuple[str, str]] = []
    for line in out.stdout.decode().splitlines():
        words = shlex.split(line, posix=True)
        if words[0] == "node":
            nodes.add(words[1])
        elif words[0] == "edge":
            edges.append((words[1], words[2]))
    return nodes, edges


# -- the command ---------------------------------------------------------------------------------------------


def test_two_thread_deadlock_is_highlighted_and_listed() -> None:
    result = run_tool("lockgraph", str(DATA / "ast20-two-thread-deadlock.txt"))
    assert result.returncode == 1
    nodes, edges = read_dot(result.stdout.decode())
    assert set(nodes) == {"0x7f6b2a1fe6c0", "0x7f6b297fb6c0"}
    assert label_of(nodes["0x7f6b2a1fe6c0"]) == "0x7f6b2a1fe6c0\nLWP 41872\npbx_thread"
    assert all('color="#c00000"' in attrs for attrs in nodes.values())
    assert [(a, b) for a, b, _ in edges] == [
        ("0x7f6b2a1fe6c0", "0x7f6b297fb6c0"),
        ("0x7f6b297fb6c0", "0x7f6b2a1fe6c0"),
    ]
    assert [label_of(attrs) for _, _, attrs in edges] == ["pvt\n0x7f6b1001a8b8", "chan\n0x7f6b0c0125e0"]
    assert all("penwidth=2" in attrs for _, _, attrs in edges)
    err = result.stderr.decode()
    assert "lockgraph: deadlock 1: 2 thread(s): 0x7f6b2a1fe6c0, 0x7f6b297fb6c0" in err
    assert (
        "waits for MUTEX pvt 0x7f6b1001a8b8 at chan_pjsip.c:742 chan_pjsip_read_stream, "
        "held by thread 0x7f6b297fb6c0" in err
    )


def test_chain_from_stdin_has_no_deadlock() -> None:
    result = run_tool("lockgraph", stdin=(DATA / "ast20-chain.txt").read_bytes())
    assert result.returncode == 0
    assert result.stderr == b""
    nodes, edges = read_dot(result.stdout.decode())
    assert len(nodes) == 4 and len(edges) == 3
    assert not any("#c00000" in attrs for attrs in nodes.values())
    assert 'label="no deadlock"' in result.stdout.decode()


def test_no_deadlock_draws_threads_only_on_request() -> None:
    result = run_tool("lockgraph", str(DATA / "ast20-no-deadlock.txt"))
    assert result.returncode == 0
    assert read_dot(result.stdout.decode()) == ({}, [])
    result = run_tool(
        "lockgraph", "--all-threads", "--title", 'pbx1 "frozen"', str(DATA / "ast20-no-deadlock.txt")
    )
    nodes, edges = read_dot(result.stdout.decode())
    assert len(nodes) == 3 and edges == []
    assert 'label="pbx1 \\"frozen\\"\\nno deadlock";' in result.stdout.decode()


def test_seed_sample_shows_unknown_holders() -> None:
    result = run_tool("lockgraph", str(DATA / "seed-core-show-locks.txt"))
    assert result.returncode == 0
    nodes, edges = read_dot(result.stdout.decode())
    assert label_of(nodes["holder of 0xae044858"]) == (
        "holder not in the output\nchan 0xae044858\nlocked at channel.c:3767 __ast_read\n"
        "locked at chan_agent.c:515 agent_lock_owner"
    )
    assert all("style=dashed" in attrs for _, _, attrs in edges)
    assert "2 waited-for lock(s) have no holder in the output" in result.stderr.decode()


def test_malformed_input_names_the_file_and_line(tmp_path: Path) -> None:
    lines = (DATA / "ast20-chain.txt").read_text().splitlines()
    lines[15] = lines[15][:40]  # a "Waiting for Lock" line cut short
    bad = tmp_path / "locks.txt"
    bad.write_text("\n".join(lines) + "\n")
    result = run_tool("lockgraph", str(bad), "-o", str(tmp_path / "out.dot"))
    assert result.returncode == 3
    assert result.stderr.decode().startswith(f"lockgraph: {bad}:16: malformed lock line")
    assert not (tmp_path / "out.dot").exists()


def test_truncated_input_from_stdin() -> None:
    text = (DATA / "seed-core-show-locks.txt").read_text().splitlines()[:40]
    result = run_tool("lockgraph", stdin=("\n".join(text) + "\n").encode())
    assert result.returncode == 3
    assert (
        "lockgraph: <stdin>:40: output truncated: the block of thread 0xb6cffb70 (line 32)"
        in result.stderr.decode()
    )


def test_missing_input_file(tmp_path: Path) -> None:
    result = run_tool("lockgraph", str(tmp_path / "nope.txt"))
    assert result.returncode == 3
    assert "cannot read" in result.stderr.decode() and "No such file or directory" in result.stderr.decode()


def test_usage_error() -> None:
    assert run_tool("lockgraph", "-T", "pdf").returncode == 2


def test_dot_output_file_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "graph.gv"
    out.write_text("old content that is much longer than nothing " * 100)
    result = run_tool("lockgraph", str(DATA / "ast20-chain.txt"), "-o", str(out))
    assert result.returncode == 0 and result.stdout == b""
    assert out.read_text().startswith("digraph asterisk_locks {")
    assert [p.name for p in tmp_path.iterdir()] == ["graph.gv"]


def test_rendering_without_graphviz_fails_clearly(tmp_path: Path) -> None:
    result = run_tool(
        "lockgraph", str(DATA / "ast20-chain.txt"), "-o", str(tmp_path / "g.svg"), env={"PATH": str(tmp_path)}
    )
    assert result.returncode == 4
    assert "graphviz program 'dot' not found" in result.stderr.decode()
    assert not (tmp_path / "g.svg").exists()


@needs_dot
@pytest.mark.parametrize("sample", ["ast20-deadlock-with-waiters.txt", "seed-core-show-locks.txt"])
def test_render_svg_and_png(tmp_path: Path, sample: str) -> None:
    svg, png = tmp_path / "locks.svg", tmp_path / "locks.png"
    first = run_tool("lockgraph", str(DATA / sample), "-o", str(svg))
    assert first.returncode in (0, 1), first.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "</svg>" in text
    assert ("#c00000" in text) == (first.returncode == 1)
    second = run_tool("lockgraph", str(DATA / sample), "-o", str(png), "-K", "circo")
    assert second.returncode == first.returncode
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    to_stdout = run_tool("lockgraph", str(DATA / sample), "-T", "svg")
    assert b"<svg" in to_stdout.stdout


@needs_dot
@pytest.mark.parametrize("sample", sorted([*lockdump.SAMPLES, "seed-core-show-locks.txt"]))
def test_graphviz_reads_the_dot_we_write(sample: str) -> None:
    graph = build(parse((DATA / sample).read_text()))
    text = dot.to_dot(graph, all_threads=True)
    nodes, edges = plain(text)
    assert nodes == set(graph.threads) | set(graph.unknown)
    assert sorted(edges) == sorted((e.waiter, e.holder) for e in graph.edges)


# -- quoting, fuzzed -----------------------------------------------------------------------------------------

_any_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r()"), min_size=1, max_size=15
)


@settings(max_examples=40 if HAVE_DOT else 100, deadline=None)
@given(
    names=st.lists(_any_text, min_size=2, max_size=2), lock_names=st.lists(_any_text, min_size=2, max_size=2)
)
def test_labels_survive_quoting(names: list[str], lock_names: list[str]) -> None:
    """Whatever the thread and lock names, the DOT parses and keeps them (labels are not code)."""
    threads = []
    for i, (name, lock_name) in enumerate(zip(names, lock_names, strict=True)):
        held = LockEntry(0, "held", "a.c", "MUTEX", 1, "f", lock_name, f"0x{i + 1}", 1)
        wait = LockEntry(
            1,
            "waiting",
            "a.c",
            "MUTEX",
            2,
            "g",
            lock_names[1 - i],
            f"0x{2 - i}",
            1,
            locked_here=(LockSite(name, 3, lock_name),),
        )
        threads.append(ThreadInfo(f"0x{i + 10}", name, None, (held, wait)))
    threads.append(
        ThreadInfo(
            "0x99",
            names[0],
            None,
            (LockEntry(0, "waiting", "a.c", "MUTEX", 1, "f", lock_names[0], "0x77", 1),),
        )
    )
    graph = build(parse(lockdump.format_dump(threads)))
    text = dot.to_dot(graph, title=names[1])
    nodes, edges = read_dot(text)
    assert label_of(nodes["0x10"]).split("\n")[0] == "0x10"
    assert [label_of(attrs).split("\n")[0] for _, _, attrs in edges] == [
        shown(lock_names[1]),
        shown(lock_names[0]),
        shown(lock_names[0]),
    ]
    assert text.count('label="') == len(nodes) + len(edges) + 1
    assert not any(unicodedata.category(c) == "Cc" for c in text.replace("\n", ""))
    if HAVE_DOT:
        graphviz_nodes, graphviz_edges = plain(text)
        assert graphviz_nodes == {"0x10", "0x11", "0x99", "holder of 0x77"}
        assert len(graphviz_edges) == 3
