"""A burst of connections over real sockets: 1,000 clients connecting at once are all welcomed quickly."""

from __future__ import annotations

import time

from twisted.internet.defer import gatherResults, inlineCallbacks

from testkit.cticlient import connect
from testkit.ctiharness import CTIHarness

CLIENTS = 1000


class ConnectBurst(CTIHarness):
    @inlineCallbacks
    def test_a_thousand_clients_connecting_at_once_are_welcomed_within_seconds(self):
        # With Twisted's default backlog (50) the kernel drops the SYNs beyond it and the clients retry
        # after 1 s, 3 s, 7 s...: about 11 s for 1,000. cti.backlog (1024) holds them all.
        started = time.monotonic()
        clients = yield gatherResults([connect(self.port) for _ in range(CLIENTS)], consumeErrors=True)
        for c in clients:
            self.addCleanup(c.transport.abortConnection)
        welcomes = [c.wait_for(lambda m: m["class"] == "welcome", timeout=10) for c in clients]
        yield gatherResults(welcomes, consumeErrors=True)
        elapsed = time.monotonic() - started
        self.assertEqual(len(self.daemon.hub.sessions), CLIENTS)
        self.assertLess(elapsed, 3.0, f"{CLIENTS} connections took {elapsed:.1f} s")
