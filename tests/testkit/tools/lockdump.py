"""Write ``core show locks`` output the way Asterisk does, and the synthetic samples of the tests.

:func:`format_dump` follows ``ast_dump_locks()`` and ``append_lock_information()`` of Asterisk 20
(``main/utils.c``): a banner with the version, one block per thread, ``Locked Here`` lines after a mutex
being waited for, and a closing banner. ``legacy=True`` gives the Asterisk 1.8 header instead (one
``=== Currently Held Locks ====`` line, no spacer lines), as in the XiVO blog's sample.

The samples are synthetic: realistic thread names, lock sites and glibc ``backtrace_symbols()`` frames,
written for the tests. Regenerate the files with ``python -m testkit.tools.lockdump DIRECTORY``; a
test checks that the files in ``tools/tests/data`` match.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from pbxtools.locks import LockEntry, LockSite, ThreadInfo

BANNER = "=" * 71
SEPARATOR = "=== " + "-" * 67
LEGEND = (
    "=== <pending> <lock#> (<file>): <lock type> <line num> <function> <lock name> <lock addr> (times locked)"
)
_PENDING = {"held": "", "waiting": "Waiting for ", "failed": "Tried and failed to get "}


def format_lock(index: int, lock: LockEntry) -> list[str]:
    suspended = " - suspended" if lock.suspended else ""
    lines = [
        f"=== ---> {_PENDING[lock.state]}Lock #{index} ({lock.file}): "
        f"{lock.type} {lock.line_num} {lock.func} "
        f"{lock.name} {lock.addr} ({lock.times_locked}{suspended})"
    ]
    lines += [f"\t{frame}" for frame in lock.backtrace]
    lines += [f"=== --- ---> Locked Here: {s.file} line {s.line} ({s.func})" for s in lock.locked_here]
    return lines


def format_thread(thread: ThreadInfo) -> str:
    if thread.lwp is not None:
        return f"=== Thread ID: {thread.thread_id} LWP:{thread.lwp} ({thread.name})"
    return f"=== Thread ID: {thread.thread_id} ({thread.name})"


def format_dump(threads: Sequence[ThreadInfo], version: str = "20.5.2", legacy: bool = False) -> str:
    if legacy:
        out = ["=== Currently Held Locks " + "=" * 46, LEGEND]
    else:
        out = ["", BANNER, f"=== {version}", "=== Currently Held Locks", BANNER, "===", LEGEND, "==="]
    for thread in threads:
        out.append(format_thread(thread))
        for lock in thread.locks:
            out += format_lock(lock.index, lock)
        out.append(SEPARATOR)
        if not legacy:
            out.append("===")
    if not legacy:
        out += [BANNER, ""]
    return "\n".join(out) + "\n"


def thread_name(routine: str, line: int, file: str, caller: str) -> str:
    """The name Asterisk gives a thread: ``"%-20s started at [%5d] %s %s()"``."""
    return f"{routine:<20} started at [{line:5d}] {file} {caller}()"


# ------------------------------------------------------------------------------------------ sample builders


def _address(seed: str, base: int) -> str:
    offset = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:3], "big") & 0xFFFFF
    return f"0x{base + offset:x}"


def backtrace(*frames: str) -> tuple[str, ...]:
    """glibc ``backtrace_symbols()`` lines for frames given as ``binary:function`` or ``binary:+n``."""
    lines = []
    for frame in frames:  # Asterisk 20 skips frame 0, __ast_bt_get_addresses itself
        binary, _, symbol = frame.partition(":")
        path = {
            "asterisk": "/usr/sbin/asterisk",
            "libc": "/lib/x86_64-linux-gnu/libc.so.6",
        }.get(binary, f"/usr/lib/asterisk/modules/{binary}.so")
        base = 0x55D3C1A00000 if binary == "asterisk" else 0x7F6B2E000000
        offset = int.from_bytes(hashlib.sha256(frame.encode()).digest()[:2], "big") | 0x10
        where = f"+0x{offset:x}" if symbol.startswith("+") or not symbol else f"{symbol}+0x{offset & 0xFFF:x}"
        lines.append(f"{path}({where}) [{_address(frame, base)}]")
    return tuple(lines)


def lock(
    index: int,
    state: str,
    site: tuple[str, int, str],
    name: str,
    addr: str,
    type: str = "MUTEX",
    times: int = 1,
    frames: Sequence[str] = (),
    locked_here: Sequence[tuple[str, int, str]] = (),
) -> LockEntry:
    file, line, func = site
    lock_fn = {
        "MUTEX": "__ast_pthread_mutex_lock",
        "RDLOCK": "__ast_rwlock_rdlock",
        "WRLOCK": "__ast_rwlock_wrlock",
    }
    if state == "failed":
        lock_fn["MUTEX"] = "__ast_pthread_mutex_trylock"
    return LockEntry(
        index=index,
        state=state,  # type: ignore[arg-type]
        file=file,
        type=type,
        line_num=line,
        func=func,
        name=name,
        addr=addr,
        times_locked=times,
        locked_here=tuple(LockSite(*s) for s in locked_here),
        backtrace=backtrace(f"asterisk:{lock_fn[type]}", *frames, "libc:+0", "libc:+1"),
    )


# Lock addresses shared by the samples.
CHAN_ALICE = "0x7f6b0c0125e0"
PVT_ALICE = "0x7f6b1001a8b8"
CHAN_BOB = "0x7f6b0c01d3a0"
BRIDGE = "0x7f6b140078c8"
QUEUE = "0x7f6b18004f50"
QUEUES = "0x55d3c1f4a6e8"
CHANNELS = "0x55d3c1f52a10"
AGENTS = "0x7f6b2c2b9188"


def two_thread_deadlock() -> list[ThreadInfo]:
    """A pbx thread holds a channel and waits for its PJSIP pvt; a serializer holds the pvt and waits
    for the channel."""
    return [
        ThreadInfo(
            "0x7f6b2a1fe6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            41872,
            (
                lock(
                    0,
                    "held",
                    ("channel.c", 3880, "__ast_read"),
                    "chan",
                    CHAN_ALICE,
                    frames=[
                        "asterisk:__ao2_lock",
                        "asterisk:+1",
                        "asterisk:ast_read",
                        "asterisk:ast_waitfordigit_full",
                    ],
                ),
                lock(
                    1,
                    "waiting",
                    ("chan_pjsip.c", 742, "chan_pjsip_read_stream"),
                    "pvt",
                    PVT_ALICE,
                    frames=["asterisk:__ao2_lock", "chan_pjsip:+0", "asterisk:+2", "asterisk:ast_read"],
                    locked_here=[("chan_pjsip.c", 1613, "chan_pjsip_indicate")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b297fb6c0",
            thread_name("worker_start", 1097, "threadpool.c", "worker_thread_start"),
            41903,
            (
                lock(
                    0,
                    "held",
                    ("chan_pjsip.c", 1613, "chan_pjsip_indicate"),
                    "pvt",
                    PVT_ALICE,
                    frames=["asterisk:__ao2_lock", "chan_pjsip:+1", "asterisk:ast_taskprocessor_execute"],
                ),
                lock(
                    1,
                    "waiting",
                    ("channel.c", 1087, "__ast_queue_frame"),
                    "chan",
                    CHAN_ALICE,
                    frames=[
                        "asterisk:__ao2_lock",
                        "asterisk:+3",
                        "asterisk:ast_queue_control",
                        "chan_pjsip:+2",
                    ],
                    locked_here=[("channel.c", 3880, "__ast_read")],
                ),
            ),
        ),
    ]


def chain() -> list[ThreadInfo]:
    """Waiters queued behind one busy thread, without a cycle: D waits for A, A for B, B for C."""
    return [
        ThreadInfo(
            "0x7f6b2b5ff6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42011,
            (
                lock(
                    0,
                    "held",
                    ("channel.c", 3880, "__ast_read"),
                    "chan",
                    CHAN_BOB,
                    frames=["asterisk:__ao2_lock", "asterisk:ast_read"],
                ),
                lock(
                    1,
                    "waiting",
                    ("bridge.c", 1712, "bridge_channel_internal_join"),
                    "bridge",
                    BRIDGE,
                    frames=["asterisk:__ao2_lock", "asterisk:ast_bridge_join"],
                    locked_here=[("bridge.c", 4521, "bridge_dissolve_check_stolen")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2bfff6c0",
            thread_name("bridge_manager_thread", 5036, "bridge.c", "bridge_manager_create"),
            42015,
            (
                lock(
                    0,
                    "held",
                    ("bridge.c", 4521, "bridge_dissolve_check_stolen"),
                    "bridge",
                    BRIDGE,
                    frames=["asterisk:__ao2_lock", "asterisk:+4"],
                ),
                lock(
                    1,
                    "waiting",
                    ("app_queue.c", 2530, "queue_member_follower_removal"),
                    "q",
                    QUEUE,
                    frames=["asterisk:__ao2_lock", "app_queue:+0"],
                    locked_here=[("app_queue.c", 7944, "update_queue")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b28ff96c0",
            thread_name("default_tps_processing_function", 203, "taskprocessor.c", "default_listener_start"),
            41990,
            (
                lock(
                    0,
                    "held",
                    ("app_queue.c", 7944, "update_queue"),
                    "q",
                    QUEUE,
                    frames=["asterisk:__ao2_lock", "app_queue:+1", "asterisk:ast_taskprocessor_execute"],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2a9fc6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42040,
            (
                lock(
                    0,
                    "waiting",
                    ("channel.c", 5127, "ast_indicate_data"),
                    "chan",
                    CHAN_BOB,
                    frames=["asterisk:__ao2_lock", "asterisk:ast_indicate"],
                    locked_here=[("channel.c", 3880, "__ast_read")],
                ),
            ),
        ),
    ]


def no_deadlock() -> list[ThreadInfo]:
    """Threads holding locks, two readers of one rwlock, a failed trylock: nobody waits."""
    return [
        ThreadInfo(
            "0x7f6b2b3fe6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42101,
            (
                lock(
                    0,
                    "held",
                    ("pbx.c", 2566, "pbx_extension_helper"),
                    "&conlock",
                    "0x55d3c1f4e120",
                    type="RDLOCK",
                    frames=["asterisk:ast_rdlock_contexts", "asterisk:pbx_extension_helper"],
                ),
                lock(
                    1,
                    "held",
                    ("channel.c", 3880, "__ast_read"),
                    "chan",
                    CHAN_BOB,
                    times=2,
                    frames=["asterisk:__ao2_lock", "asterisk:ast_read"],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2b9fd6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42102,
            (
                lock(
                    0,
                    "held",
                    ("pbx.c", 2566, "pbx_extension_helper"),
                    "&conlock",
                    "0x55d3c1f4e120",
                    type="RDLOCK",
                    frames=["asterisk:ast_rdlock_contexts", "asterisk:pbx_extension_helper"],
                ),
                lock(
                    1,
                    "failed",
                    ("channel.c", 2781, "ast_channel_trylock"),
                    "chan",
                    CHAN_ALICE,
                    frames=["asterisk:__ao2_trylock", "asterisk:ast_do_masquerade"],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b28ff96c0",
            thread_name("default_tps_processing_function", 203, "taskprocessor.c", "default_listener_start"),
            41990,
            (
                lock(
                    0,
                    "held",
                    ("app_queue.c", 7944, "update_queue"),
                    "q",
                    QUEUE,
                    frames=["asterisk:__ao2_lock", "app_queue:+1"],
                ),
            ),
        ),
    ]


def deadlock_with_waiters() -> list[ThreadInfo]:
    """The blog's picture, in Asterisk 20 form: two threads deadlocked on an agent and a channel, and the
    threads stuck behind them, directly or not; one waits for a lock whose holder is not listed."""
    device_state = thread_name("do_devstate_changes", 634, "devicestate.c", "ast_device_state_engine_init")
    return [
        ThreadInfo(
            "0x7f6b2a5fd6c0",
            thread_name("agent_run", 1602, "app_agent_pool.c", "agent_request_exec"),
            41950,
            (
                lock(
                    0,
                    "held",
                    ("app_agent_pool.c", 1482, "agent_login_channel_config"),
                    "agent",
                    AGENTS,
                    frames=["asterisk:__ao2_lock", "app_agent_pool:+0"],
                ),
                lock(
                    1,
                    "waiting",
                    ("channel.c", 1703, "ast_channel_cmp_cb"),
                    "chan",
                    CHAN_ALICE,
                    frames=["asterisk:__ao2_lock", "asterisk:+5", "asterisk:__ao2_callback"],
                    locked_here=[
                        ("channel.c", 3880, "__ast_read"),
                        ("app_agent_pool.c", 1011, "agent_lock_owner"),
                    ],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2a1fe6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            41872,
            (
                lock(
                    0,
                    "held",
                    ("channel.c", 3880, "__ast_read"),
                    "chan",
                    CHAN_ALICE,
                    times=2,
                    frames=["asterisk:__ao2_lock", "app_agent_pool:+1", "asterisk:ast_read"],
                ),
                lock(
                    1,
                    "waiting",
                    ("app_agent_pool.c", 1015, "agent_lock_owner"),
                    "agent",
                    AGENTS,
                    frames=["asterisk:__ao2_lock", "app_agent_pool:+2"],
                    locked_here=[("app_agent_pool.c", 1482, "agent_login_channel_config")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2b1fc6c0",
            device_state,
            41880,
            (
                lock(
                    0,
                    "held",
                    ("channel.c", 1371, "ast_channel_get_by_name_prefix"),
                    "channels",
                    CHANNELS,
                    frames=["asterisk:__ao2_lock", "asterisk:__ao2_find"],
                ),
                lock(
                    1,
                    "waiting",
                    ("channel.c", 1703, "ast_channel_cmp_cb"),
                    "chan",
                    CHAN_ALICE,
                    frames=["asterisk:__ao2_lock", "asterisk:+5", "asterisk:__ao2_callback"],
                    locked_here=[
                        ("channel.c", 3880, "__ast_read"),
                        ("app_agent_pool.c", 1011, "agent_lock_owner"),
                    ],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2b7fd6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42060,
            (
                lock(
                    0,
                    "waiting",
                    ("channel.c", 1371, "ast_channel_get_by_name_prefix"),
                    "channels",
                    CHANNELS,
                    frames=["asterisk:__ao2_lock", "asterisk:__ao2_find", "asterisk:ast_channel_get_by_name"],
                    locked_here=[("channel.c", 1371, "ast_channel_get_by_name_prefix")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b28bfe6c0",
            thread_name("monitor_sig_flags", 5870, "asterisk.c", "main"),
            41700,
            (
                lock(
                    0,
                    "held",
                    ("app_queue.c", 9340, "reload_queues"),
                    "queues",
                    QUEUES,
                    type="WRLOCK",
                    frames=["asterisk:__ao2_lock", "app_queue:+3"],
                ),
                lock(
                    1,
                    "waiting",
                    ("channel.c", 1371, "ast_channel_get_by_name_prefix"),
                    "channels",
                    CHANNELS,
                    frames=["asterisk:__ao2_lock", "asterisk:__ao2_find"],
                    locked_here=[("channel.c", 1371, "ast_channel_get_by_name_prefix")],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b2c3ff6c0",
            thread_name("pbx_thread", 4760, "pbx.c", "ast_pbx_start"),
            42077,
            (
                lock(
                    0,
                    "waiting",
                    ("app_queue.c", 8120, "queue_exec"),
                    "queues",
                    QUEUES,
                    type="RDLOCK",
                    frames=["asterisk:__ao2_lock", "app_queue:+4"],
                ),
            ),
        ),
        ThreadInfo(
            "0x7f6b297fb6c0",
            thread_name("worker_start", 1097, "threadpool.c", "worker_thread_start"),
            41903,
            (
                lock(
                    0,
                    "waiting",
                    ("res_pjsip_session.c", 2911, "ast_sip_session_suspend"),
                    "session",
                    "0x7f6b1c00a2f8",
                    frames=["asterisk:__ao2_lock", "res_pjsip_session:+0"],
                    locked_here=[("res_pjsip_session.c", 1402, "ast_sip_session_terminate")],
                ),
            ),
        ),
    ]


SAMPLES = {
    "ast20-two-thread-deadlock.txt": two_thread_deadlock,
    "ast20-chain.txt": chain,
    "ast20-no-deadlock.txt": no_deadlock,
    "ast20-deadlock-with-waiters.txt": deadlock_with_waiters,
}


def write_samples(directory: Path) -> list[Path]:
    written = []
    for name, build in SAMPLES.items():
        path = directory / name
        path.write_text(format_dump(build()), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
