"""`AccountBackoff` with a fake clock: the waits grow and stop at the cap; success, quiet and bounds."""

from __future__ import annotations

from twisted.internet.task import Clock

from ctid.cti.ratelimit import AccountBackoff


def make(**kw) -> tuple[AccountBackoff, Clock]:
    clock = Clock()
    return AccountBackoff(5, 60.0, 60.0, now=clock.seconds, **kw), clock


def attack(backoff: AccountBackoff, clock: Clock, times: int, login: str = "alice") -> list[float]:
    """``times`` attempts, each as soon as allowed, from fresh addresses; the waits met before each."""
    waits = []
    for i in range(times):
        wait = backoff.retry_after(login, f"10.0.0.{i}")
        waits.append(wait)
        clock.advance(wait)
        assert backoff.retry_after(login, f"10.0.0.{i}") == 0
        backoff.attempted(login)
    return waits


def test_the_wait_doubles_after_the_free_attempts_and_stops_at_the_cap() -> None:
    backoff, clock = make()
    assert attack(backoff, clock, 14) == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.retry_after("bob", "10.0.0.1") == 0  # other accounts are not concerned


def test_a_success_resets_and_trusts_its_address() -> None:
    backoff, clock = make()
    attack(backoff, clock, 8)
    assert backoff.retry_after("alice", "192.0.2.1") == 8
    clock.advance(8)
    backoff.attempted("alice")
    backoff.succeeded("alice", "192.0.2.1")
    assert attack(backoff, clock, 6) == [0, 0, 0, 0, 0, 1]  # counted afresh
    assert backoff.retry_after("alice", "192.0.2.9") == 2
    assert backoff.retry_after("alice", "192.0.2.1") == 0  # where the user logged in from: never held


def test_trusted_addresses_are_the_last_few() -> None:
    backoff, clock = make(trusted_per_account=2)
    for address in ("a", "b", "c", "b"):
        backoff.succeeded("alice", address)
    attack(backoff, clock, 6)
    assert [backoff.retry_after("alice", a) > 0 for a in ("a", "b", "c")] == [True, False, False]


def test_quiet_forgets_and_nothing_is_kept_forever() -> None:
    backoff, clock = make(max_accounts=100)
    attack(backoff, clock, 12)
    clock.advance(60 + 59)
    assert backoff.retry_after("alice", "x") == 0  # the wait is over, not yet forgotten
    backoff.attempted("alice")
    assert backoff.retry_after("alice", "x") == 60
    clock.advance(60 + 60)
    backoff.attempted("alice")
    assert backoff.retry_after("alice", "x") == 0  # forgotten: a first attempt again
    for i in range(1000):  # any login string is counted (known or not), in a bounded table
        backoff.attempted(f"guess-{i}")
        backoff.succeeded(f"user-{i}", "x")
    assert len(backoff._attempts) == 100 and len(backoff._trusted) == 100
