"""Guessing one account from many addresses, over real sockets (127.0.0.2, 127.0.0.3, ... are loopback):
a growing, capped backoff per account, reset by a success; never a lock, and never for the addresses the
user logged in from."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from testkit.ctiharness import PASSWORD, CTIHarness, check_schema, sleep


class AccountBackoff(CTIHarness):
    cti_overrides = {"login_account_failures": 3, "login_account_max_delay": 1.5}  # noqa: RUF012

    def setUp(self):
        self.addresses = (f"127.0.0.{i}" for i in range(2, 255))  # a fresh source address each time
        return super().setUp()

    @inlineCallbacks
    def login(self, login: str, password: str, source: str | None = None):
        c = yield self.client(source=source or next(self.addresses))
        r = yield c.request("login", login=login, password=password)
        check_schema(r)
        c.transport.abortConnection()
        return r

    @inlineCallbacks
    def guess(self, times: int):
        for _ in range(times):  # one attempt per address: the per-address limit never sees them
            r = yield self.login("alice", "guess")
            self.assertEqual(r.get("code"), "login_failed", r)

    @inlineCallbacks
    def test_guessing_one_account_from_many_addresses_backs_off_then_lets_the_user_in(self):
        yield self.guess(3)
        r = yield self.login("alice", "guess")
        self.assertEqual(r["code"], "rate_limited")
        self.assertTrue(0 < r["retry_after"] <= 1.0, r)
        r = yield self.login("alice", PASSWORD)  # the right password too: the account waits
        self.assertEqual(r["code"], "rate_limited")
        r = yield self.login("bob", PASSWORD)  # other accounts do not
        self.assertEqual(r["class"], "response")
        r = yield self.login("nobody", "guess")  # an unknown login is counted the same way
        self.assertEqual(r["code"], "login_failed")

        yield sleep(1.0)
        yield self.guess(1)  # the 4th failure: the next wait doubles, up to the cap (1.5 s here)
        r = yield self.login("alice", PASSWORD)
        self.assertEqual(r["code"], "rate_limited")
        self.assertTrue(1.0 < r["retry_after"] <= 1.5, r)

        yield sleep(r["retry_after"])
        home = next(self.addresses)
        r = yield self.login("alice", PASSWORD, source=home)  # a wait, never a lock
        self.assertEqual(r["class"], "response", r)
        yield self.guess(3)  # the success reset the count: three more are not limited

        # The attack goes on, but the address the user logged in from is not held back by it.
        r = yield self.login("alice", PASSWORD)
        self.assertEqual(r["code"], "rate_limited")
        r = yield self.login("alice", PASSWORD, source=home)
        self.assertEqual(r["class"], "response", r)
