"""The "is waiting for" graph between threads, built from a parsed ``core show locks`` output.

There is an edge from thread A to thread B when A waits for a lock that B holds: B lists, as held, a lock
at the same address. A waited-for lock that no listed thread holds (the holder's block is missing from
the output, or the holder is not a tracked thread) gets an *unknown holder* node, described by the
``Locked Here`` lines. A deadlock is a cycle of this graph; each strongly connected component with a cycle
is reported with the threads and locks involved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .locks import LockDump, LockEntry, LockSite, ThreadInfo


@dataclass(frozen=True)
class UnknownHolder:
    """Stands for whoever holds ``lock`` when no thread in the output does."""

    lock: LockEntry

    @property
    def node_id(self) -> str:
        return f"holder of {self.lock.addr}"

    @property
    def sites(self) -> tuple[LockSite, ...]:
        return self.lock.locked_here


@dataclass(frozen=True)
class WaitEdge:
    """``waiter`` waits for ``lock``, held by ``holder`` (a thread ID, or an UnknownHolder node ID)."""

    waiter: str
    holder: str
    lock: LockEntry
    held: LockEntry | None = None  # the holder's entry for the lock, when the holder is a known thread


@dataclass(frozen=True)
class Deadlock:
    """Threads that wait for each other, and the waits between them, in cycle order when it is a cycle."""

    threads: tuple[str, ...]
    edges: tuple[WaitEdge, ...]


@dataclass(frozen=True)
class WaitGraph:
    threads: dict[str, ThreadInfo]
    edges: tuple[WaitEdge, ...]
    unknown: dict[str, UnknownHolder]
    deadlocks: tuple[Deadlock, ...]

    @property
    def involved(self) -> set[str]:
        """Thread IDs that wait or are waited for."""
        ids = {e.waiter for e in self.edges} | {e.holder for e in self.edges}
        return ids & set(self.threads)

    @property
    def deadlocked_edges(self) -> set[WaitEdge]:
        return {edge for deadlock in self.deadlocks for edge in deadlock.edges}

    @property
    def deadlocked_threads(self) -> set[str]:
        return {thread for deadlock in self.deadlocks for thread in deadlock.threads}


def build(dump: LockDump) -> WaitGraph:
    threads = {thread.thread_id: thread for thread in dump.threads}
    holders: dict[str, list[tuple[str, LockEntry]]] = {}
    for thread in dump.threads:
        for lock in thread.held:
            if not lock.is_nil:
                holders.setdefault(lock.addr, []).append((thread.thread_id, lock))

    edges: list[WaitEdge] = []
    unknown: dict[str, UnknownHolder] = {}
    for thread in dump.threads:
        for lock in thread.waiting:
            found = holders.get(lock.addr, []) if not lock.is_nil else []
            seen: set[str] = set()
            for holder_id, held in found:
                if holder_id not in seen:  # a thread may list a recursive lock once per level
                    seen.add(holder_id)
                    edges.append(WaitEdge(thread.thread_id, holder_id, lock, held))
            if not found:
                node = UnknownHolder(lock)
                unknown.setdefault(node.node_id, node)
                edges.append(WaitEdge(thread.thread_id, node.node_id, lock))
    deadlocks = find_deadlocks(threads, edges)
    return WaitGraph(threads, tuple(edges), unknown, deadlocks)


def find_deadlocks(threads: Iterable[str], edges: Iterable[WaitEdge]) -> tuple[Deadlock, ...]:
    """The strongly connected components that contain a cycle (Tarjan's algorithm, iterative)."""
    nodes = list(threads)
    out: dict[str, list[WaitEdge]] = {node: [] for node in nodes}
    for edge in edges:
        if edge.waiter in out and edge.holder in out:
            out[edge.waiter].append(edge)

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = out[node]
            if position < len(successors):
                work.append((node, position + 1))
                nxt = successors[position].holder
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    order = {node: i for i, node in enumerate(nodes)}
    deadlocks = []
    for component in components:
        members = set(component)
        inner = [e for node in component for e in out[node] if e.holder in members]
        if len(component) == 1 and not inner:
            continue  # a single thread that does not wait for itself
        deadlocks.append(_ordered(sorted(members, key=order.__getitem__), inner))
    deadlocks.sort(key=lambda d: order[d.threads[0]])
    return tuple(deadlocks)


def _ordered(members: list[str], inner: list[WaitEdge]) -> Deadlock:
    """Put a simple cycle in cycle order, starting from its first thread in the output."""
    by_waiter: dict[str, list[WaitEdge]] = {}
    for edge in inner:
        by_waiter.setdefault(edge.waiter, []).append(edge)
    if all(len(by_waiter.get(m, [])) == 1 for m in members):
        cycle: list[WaitEdge] = []
        node = members[0]
        for _ in members:
            edge = by_waiter[node][0]
            cycle.append(edge)
            node = edge.holder
        if node == members[0] and len({e.waiter for e in cycle}) == len(members):
            return Deadlock(tuple(e.waiter for e in cycle), tuple(cycle))
    order = {m: i for i, m in enumerate(members)}
    edges = sorted(inner, key=lambda e: (order[e.waiter], order[e.holder]))
    return Deadlock(tuple(members), tuple(edges))


def describe_deadlock(graph: WaitGraph, deadlock: Deadlock) -> list[str]:
    """Human-readable lines: one per wait in the deadlock."""
    lines = []
    for edge in deadlock.edges:
        waiter = graph.threads[edge.waiter]
        holder = graph.threads[edge.holder]
        held = f", which took it at {edge.held.site}" if edge.held is not None else ""
        lines.append(
            f"{waiter.describe()} waits for {edge.lock.type} {edge.lock.name} {edge.lock.addr} "
            f"at {edge.lock.site}, held by {holder.describe()}{held}"
        )
    return lines
