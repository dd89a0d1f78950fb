"""A minimal, blocking AMI client for the reload path (runs in a worker thread, never on the reactor):
login, `Reload` of each module, retry while Asterisk answers that a reload is in progress, logoff.
Every socket operation is bounded by `timeout`."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("confgend.ami")
_ids = itertools.count(1)


class AMIError(Exception):
    pass


@dataclass
class AMIReloader:
    host: str
    port: int
    username: str
    secret: str
    timeout: float = 5.0
    busy_retries: int = 10
    busy_delay: float = 0.5

    def reload(self, modules: Iterable[str]) -> set[str]:
        """Reload each module; returns those that could not be reloaded (AMI down, refused, still busy)."""
        todo = list(dict.fromkeys(modules))
        if not todo:
            return set()
        try:
            conn = _Connection(self.host, self.port, self.timeout)
        except (OSError, AMIError) as exc:
            log.warning(
                "AMI %s:%d unreachable (%s); %s not reloaded", self.host, self.port, exc, ", ".join(todo)
            )
            return set(todo)
        failed: set[str] = set()
        try:
            reply = conn.action({"Action": "Login", "Username": self.username, "Secret": self.secret})
            if reply.get("Response") != "Success":
                raise AMIError(f"login refused: {reply.get('Message', '')}")
            for module in todo:
                if not self._reload_one(conn, module):
                    failed.add(module)
            with contextlib.suppress(OSError, AMIError):
                conn.action({"Action": "Logoff"})
        except (OSError, AMIError) as exc:
            log.warning("AMI: %s; not reloaded: %s", exc, ", ".join(m for m in todo if m not in failed))
            failed.update(todo)
        finally:
            conn.close()
        return failed

    def _reload_one(self, conn: _Connection, module: str) -> bool:
        for attempt in range(self.busy_retries + 1):
            reply = conn.action({"Action": "Reload", "Module": module})
            if reply.get("Response") == "Success":
                log.info("reloaded %s", module)
                return True
            message = reply.get("Message", "")
            if "in progress" in message.lower() and attempt < self.busy_retries:
                time.sleep(self.busy_delay)
                continue
            log.warning("reload of %s refused: %s", module, message or reply)
            return False
        return False


class _Connection:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        try:
            banner = self._line()
            if not banner.startswith(b"Asterisk Call Manager"):
                raise AMIError(f"unexpected banner {banner[:60]!r}")
        except BaseException:
            self.sock.close()
            raise

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AMIError("timeout")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AMIError("connection closed by Asterisk")
        self.buffer += chunk
        if len(self.buffer) > 1 << 20:
            raise AMIError("message too long")

    def _line(self) -> bytes:
        deadline = time.monotonic() + self.timeout
        while b"\r\n" not in self.buffer:
            self._fill(deadline)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _message(self, deadline: float) -> dict[str, str]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        msg: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                msg.setdefault(name.strip(), value.strip())
        return msg

    def action(self, fields: dict[str, str]) -> dict[str, str]:
        action_id = f"confgend-{os.getpid()}-{next(_ids)}"
        data = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items()) + "\r\n"
        if any(ch in "\r\n" for v in fields.values() for ch in v):
            raise AMIError("a header value contains a line break")
        self.sock.sendall(data.encode("utf-8"))
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._message(deadline)
            if "Event" not in msg and msg.get("ActionID") == action_id:
                return msg

    def close(self) -> None:
        self.sock.close()
