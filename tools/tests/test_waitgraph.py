"""The wait-for graph and its deadlocks, on the samples and on synthetic cases."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pbxtools.locks import LockEntry, ThreadInfo, parse
from pbxtools.waitgraph import WaitEdge, build, describe_deadlock, find_deadlocks
from testkit.tools import lockdump

DATA = Path(__file__).parent / "data"


def graph_of(name: str):  # type: ignore[no-untyped-def]
    return build(parse((DATA / name).read_text()))


def pairs(edges: tuple[WaitEdge, ...] | list[WaitEdge]) -> list[tuple[str, str]]:
    return [(e.waiter, e.holder) for e in edges]


def thread(thread_id: str, *locks: tuple[str, str]) -> ThreadInfo:
    """A thread from (state, addr) pairs."""
    return ThreadInfo(
        thread_id,
        "t started at [    1] t.c t()",
        None,
        tuple(
            LockEntry(i, state, "t.c", "MUTEX", i, "f", f"lock{addr}", addr, 1)  # type: ignore[arg-type]
            for i, (state, addr) in enumerate(locks)
        ),
    )


def test_seed_sample_has_unknown_holders_and_no_deadlock() -> None:
    graph = graph_of("seed-core-show-locks.txt")
    assert graph.deadlocks == ()
    assert pairs(graph.edges) == [
        ("0xb71ffb70", "holder of 0x96a1a60"),
        ("0xb6cffb70", "holder of 0xae044858"),
    ]
    holder = graph.unknown["holder of 0xae044858"]
    assert [str(site) for site in holder.sites] == [
        "channel.c:3767 __ast_read",
        "chan_agent.c:515 agent_lock_owner",
    ]


def test_two_thread_cycle() -> None:
    graph = graph_of("ast20-two-thread-deadlock.txt")
    assert len(graph.deadlocks) == 1
    deadlock = graph.deadlocks[0]
    assert deadlock.threads == ("0x7f6b2a1fe6c0", "0x7f6b297fb6c0")
    assert pairs(deadlock.edges) == [
        ("0x7f6b2a1fe6c0", "0x7f6b297fb6c0"),
        ("0x7f6b297fb6c0", "0x7f6b2a1fe6c0"),
    ]
    assert [e.lock.name for e in deadlock.edges] == ["pvt", "chan"]
    lines = describe_deadlock(graph, deadlock)
    assert lines[0] == (
        "thread 0x7f6b2a1fe6c0 (LWP 41872, pbx_thread) waits for MUTEX pvt 0x7f6b1001a8b8 at "
        "chan_pjsip.c:742 chan_pjsip_read_stream, held by thread 0x7f6b297fb6c0 (LWP 41903, worker_start), "
        "which took it at chan_pjsip.c:1613 chan_pjsip_indicate"
    )


def test_chain_of_waiters_is_not_a_deadlock() -> None:
    graph = graph_of("ast20-chain.txt")
    assert graph.deadlocks == ()
    assert pairs(graph.edges) == [
        ("0x7f6b2b5ff6c0", "0x7f6b2bfff6c0"),
        ("0x7f6b2bfff6c0", "0x7f6b28ff96c0"),
        ("0x7f6b2a9fc6c0", "0x7f6b2b5ff6c0"),
    ]
    assert graph.unknown == {}


def test_no_deadlock_sample_has_no_edges() -> None:
    graph = graph_of("ast20-no-deadlock.txt")
    assert graph.edges == () and graph.deadlocks == () and graph.involved == set()


def test_deadlock_with_waiters() -> None:
    graph = graph_of("ast20-deadlock-with-waiters.txt")
    assert [d.threads for d in graph.deadlocks] == [("0x7f6b2a5fd6c0", "0x7f6b2a1fe6c0")]
    assert len(graph.edges) == 7
    assert ("0x7f6b2c3ff6c0", "0x7f6b28bfe6c0") in pairs(graph.edges)  # RDLOCK waiter behind a WRLOCK holder
    assert list(graph.unknown) == ["holder of 0x7f6b1c00a2f8"]
    assert graph.deadlocked_threads == {"0x7f6b2a5fd6c0", "0x7f6b2a1fe6c0"}


def test_three_thread_cycle_in_cycle_order() -> None:
    threads = [
        thread("0xa", ("held", "0x1"), ("waiting", "0x2")),
        thread("0xc", ("held", "0x3"), ("waiting", "0x1")),
        thread("0xb", ("held", "0x2"), ("waiting", "0x3")),
    ]
    graph = build(parse(lockdump.format_dump(threads)))
    assert [d.threads for d in graph.deadlocks] == [("0xa", "0xb", "0xc")]
    assert pairs(graph.deadlocks[0].edges) == [("0xa", "0xb"), ("0xb", "0xc"), ("0xc", "0xa")]


def test_self_deadlock_and_readers() -> None:
    threads = [
        thread("0xa", ("held", "0x1"), ("waiting", "0x1")),  # e.g. a write lock asked while reading
        thread("0xb", ("held", "0x5")),
        thread("0xc", ("held", "0x5")),
        thread("0xd", ("waiting", "0x5")),  # a writer waiting behind two readers
        thread("0xe", ("waiting", "(nil)")),
    ]
    graph = build(parse(lockdump.format_dump(threads)))
    assert [d.threads for d in graph.deadlocks] == [("0xa",)]
    assert pairs(graph.edges) == [("0xa", "0xa"), ("0xd", "0xb"), ("0xd", "0xc"), ("0xe", "holder of (nil)")]


def test_two_separate_deadlocks() -> None:
    threads = [
        thread("0x1", ("held", "0xa1"), ("waiting", "0xa2")),
        thread("0x2", ("held", "0xa2"), ("waiting", "0xa1")),
        thread("0x3", ("held", "0xb1"), ("waiting", "0xb2")),
        thread("0x4", ("held", "0xb2"), ("waiting", "0xb1")),
        thread("0x5", ("waiting", "0xa1")),
    ]
    graph = build(parse(lockdump.format_dump(threads)))
    assert [d.threads for d in graph.deadlocks] == [("0x1", "0x2"), ("0x3", "0x4")]


@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=30))
def test_deadlocks_are_exactly_the_nodes_on_cycles(raw_edges: list[tuple[int, int]]) -> None:
    """Tarjan's components against a brute-force reachability check."""
    nodes = [f"0x{n}" for n in range(8)]
    lock = LockEntry(0, "waiting", "f.c", "MUTEX", 1, "f", "l", "0x99", 1)
    edges = [WaitEdge(f"0x{a}", f"0x{b}", lock) for a, b in raw_edges]
    succ = {n: {e.holder for e in edges if e.waiter == n} for n in nodes}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(succ[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += succ[node]
        return seen

    reachable = {n: reach(n) for n in nodes}
    on_cycle = {n for n in nodes if n in reachable[n]}
    deadlocks = find_deadlocks(nodes, edges)
    assert {t for d in deadlocks for t in d.threads} == on_cycle
    for deadlock in deadlocks:
        for a in deadlock.threads:
            for b in deadlock.threads:
                assert b in reachable[a]
        assert all(e.waiter in deadlock.threads and e.holder in deadlock.threads for e in deadlock.edges)
