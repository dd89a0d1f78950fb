"""A blocking CTI client for the call tests (docs/cti-protocol.md): log in, subscribe, wait for events.

ctid's own test client (testkit.cticlient) runs on the Twisted reactor; a call test is plain
blocking code, so this one is a socket and a reader thread. Every message is kept in order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.ports import LOOPBACK

Msg = dict[str, Any]
TIMEOUT = 10.0


class CtiError(AssertionError):
    """ctid refused a request, or a message a test waited for did not come."""


class CtiClient:
    def __init__(self, port: int, host: str = LOOPBACK, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.messages: list[Msg] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.closed = False
        threading.Thread(target=self._read, name=f"cti client :{port}", daemon=True).start()
        self.wait_for("the welcome", lambda m: m["class"] == "welcome", timeout)

    def _read(self) -> None:
        try:
            with self.sock.makefile("rb") as lines:
                for raw in lines:
                    if raw.strip():
                        with self._cond:
                            self.messages.append(json.loads(raw))
                            self._cond.notify_all()
        except OSError:
            pass  # reset or closed: the waits say "the connection closed"
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(
        self, what: str, match: Callable[[Msg], bool], timeout: float = TIMEOUT, since: int = 0
    ) -> Msg:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((m for m in self.messages[since:] if match(m)), None)
                if found is not None:
                    return found
                if self.closed or time.monotonic() >= deadline:
                    seen = "; ".join(json.dumps(m)[:300] for m in self.messages[since:][-8:]) or "nothing"
                    why = "the connection closed" if self.closed else f"not within {timeout:g} s"
                    raise CtiError(f"CTI: waited for {what}: {why}; last messages: {seen}")
                self._cond.wait(0.1)

    def request(self, cls: str, timeout: float = TIMEOUT, **fields: Any) -> Msg:
        """Send a request; its response (CtiError on an error answer)."""
        rid = next(self._ids)
        self.sock.sendall(json.dumps({"class": cls, "id": rid, **fields}).encode() + b"\n")
        answer = self.wait_for(
            f"the answer to {cls}",
            lambda m: m.get("id") == rid and m["class"] in ("response", "error"),
            timeout,
        )
        if answer["class"] == "error":
            raise CtiError(f"CTI {cls} refused: {answer.get('code')}: {answer.get('message')}")
        return answer

    def login(self, login: str, password: str) -> Msg:
        return self.request("login", login=login, password=password, version=1)["user"]

    def subscribe(self, *topics: str) -> Msg:
        return self.request("subscribe", topics=list(topics))

    def events(self, cls: str) -> list[Msg]:
        with self._cond:
            return [m for m in self.messages if m["class"] == cls]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
