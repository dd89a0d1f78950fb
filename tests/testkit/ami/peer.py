"""What an AMI test server does, independent of how it runs (Twisted reactor or plain threads).

`AMIServerConnection` is one connection's behaviour, modelled on Asterisk 20's manager: banner, Login
(``Authentication failed`` then close), ``Permission denied`` before login, ``Ping``, ``Logoff`` (``Goodbye``
then close), Asterisk's unknown-command error for anything else, plus what the test scripted and, with a
`Trace`, the recorded traffic. `AMIServerBase` holds the scripting and the record of received actions.

Asterisk's boot is modelled too: while `AMIServerBase.booted` is False a login gets no ``FullyBooted`` and
the actions of modules that load late (`boot_gated`) get the unknown-command error; `boot` ends the boot
(``FullyBooted`` to every logged-in connection) and `shutdown` sends ``Shutdown`` and closes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ctid.ami.message import Message, encode_message
from ctid.ami.parser import AMIParseError
from testkit.ami.traces import Trace, TraceReplay

DEFAULT_BANNER = b"Asterisk Call Manager/9.0.0\r\n"
Fields = Mapping[str, str] | Iterable[tuple[str, str]]
Handler = Callable[["AMIServerConnection", Message], object]


class ServerLink(Protocol):
    """The transport side of one server connection (an `AMIProtocol`, or a socket wrapper)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@dataclass(frozen=True)
class RecordedAction:
    connection: int
    """Index of the connection in the server's `connections`."""
    name: str
    message: Message
    authenticated: bool
    """Whether the connection was logged in when the action arrived."""


class AMIServerConnection:
    """Server side of one AMI connection; also the `AMISink` of a Twisted `AMIProtocol`."""

    def __init__(self, server: AMIServerBase, index: int) -> None:
        self.server = server
        self.index = index
        self.conn: ServerLink | None = None
        self.authenticated = False
        self.open = False
        self.replay = TraceReplay(server.trace) if server.trace is not None else None
        self.parse_errors: list[AMIParseError] = []

    # -- AMISink

    def connection_made(self, conn: ServerLink) -> None:
        self.conn = conn
        self.open = True
        conn.write(self.server.trace.banner if self.server.trace is not None else self.server.banner)
        if self.server.read_paused:
            conn.pause_reading()
        self.server._changed()

    def banner_received(self, banner: str) -> None:  # pragma: no cover - a server expects no banner
        pass

    def parse_error(self, error: AMIParseError) -> None:
        self.parse_errors.append(error)

    def writing_paused(self) -> None:
        pass

    def writing_resumed(self) -> None:
        pass

    def connection_lost(self, reason: object) -> None:
        self.open = False
        self.server._connection_closed(self)

    def message_received(self, msg: Message) -> None:
        headers = {k.lower(): v for k, v in msg.items()}
        name = headers.get("action")
        self.server.actions.append(RecordedAction(self.index, name or "", msg, self.authenticated))
        try:
            self._handle(msg, headers, name)
        finally:  # waiters see the action once it is answered
            self.server._changed()

    def _handle(self, msg: Message, headers: dict[str, str], name: str | None) -> None:
        if name is None:
            self.send([("Response", "Error"), ("Message", "Missing action in request")])
            return
        lname = name.lower()
        replay = self.replay is not None and self.replay.expects(name)
        if replay and (lname != "login" or self._credentials_ok(headers)):
            self._replay(lname, headers.get("actionid"))
            return
        if lname == "login":
            self._login(msg, headers)
        elif not self.authenticated and lname not in ("logoff", "challenge"):
            self.reply(msg, [("Response", "Error"), ("Message", "Permission denied")])
        elif not self.server.booted and lname in self.server.boot_gated:
            self.unknown_command(msg, name)
        elif lname in self.server.silent:
            pass
        elif lname in self.server.handlers:
            self.server.handlers[lname](self, msg)
        elif lname == "logoff":
            self.reply(msg, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
            self.close()
        elif lname == "ping":
            self.reply(msg, [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
        else:
            self.unknown_command(msg, name)

    # -- sending

    def send_raw(self, data: bytes) -> None:
        if self.conn is not None and self.open and data:
            self.conn.write(data)

    def send(self, fields: Fields) -> None:
        """Send one message."""
        self.send_raw(encode_message(fields))

    def reply(self, action: Message, fields: Fields, *more: Fields) -> None:
        """Send messages answering ``action``: its ActionID (if any) goes second in each, as Asterisk does."""
        action_id = next((v for k, v in action.items() if k.lower() == "actionid"), None)
        for message in (fields, *more):
            items = list(message.items() if isinstance(message, Mapping) else message)
            if action_id is not None:
                items.insert(1, ("ActionID", action_id))
            self.send(items)

    def unknown_command(self, action: Message, name: str) -> None:
        """Asterisk's answer to an action no loaded module registered."""
        hint = "Use Action: ListCommands to show available commands."
        self.reply(action, [("Response", "Error"), ("Message", f"Invalid/unknown command: {name}. {hint}")])

    def close(self) -> None:
        if self.conn is not None and self.open:
            self.conn.close()

    def abort(self) -> None:
        if self.conn is not None and self.open:
            self.conn.abort()

    # -- internals

    def _credentials_ok(self, headers: Mapping[str, str]) -> bool:
        return headers.get("username") == self.server.username and headers.get("secret") == self.server.secret

    def _login(self, msg: Message, headers: Mapping[str, str]) -> None:
        if self._credentials_ok(headers):
            self._logged_in()
            self.reply(msg, [("Response", "Success"), ("Message", "Authentication accepted")])
            if self.server.booted:  # as Asterisk: only to a session that reads the system class
                self.send(fully_booted())
        else:
            self.server.login_failures += 1
            self.reply(msg, [("Response", "Error"), ("Message", "Authentication failed")])
            self.close()

    def _logged_in(self) -> None:
        self.authenticated = True
        self.server.logins += 1
        self.server._changed()

    def _replay(self, lname: str, action_id: str | None) -> None:
        assert self.replay is not None
        data, answer = self.replay.match(action_id)
        response = (answer or {}).get("Response", "")
        if lname == "login" and response == "Success":
            self._logged_in()
        self.send_raw(data)
        if response == "Goodbye" or (lname == "login" and response == "Error"):
            self.close()


def fully_booted() -> list[tuple[str, str]]:
    return [
        ("Event", "FullyBooted"),
        ("Privilege", "system,all"),
        ("Uptime", "1"),
        ("LastReload", "1"),
        ("Status", "Fully Booted"),
    ]


class AMIServerBase:
    """Scripting and inspection shared by the Twisted and the threaded test servers.

    ``handlers``: lower-cased action name -> ``handler(connection, action)`` for logged-in connections;
    ``silent``: lower-cased action names never answered; ``actions``: every action received, in order;
    ``booted`` / ``boot_gated``: see the module's docstring.
    """

    def __init__(
        self,
        *,
        username: str = "ctid",
        secret: str = "test-secret",
        trace: Trace | None = None,
        banner: bytes = DEFAULT_BANNER,
    ) -> None:
        self.username = username
        self.secret = secret
        self.trace = trace
        self.banner = banner
        self.handlers: dict[str, Handler] = {}
        self.silent: set[str] = set()
        self.actions: list[RecordedAction] = []
        self.connections: list[AMIServerConnection] = []
        self.logins = 0
        self.login_failures = 0
        self.read_paused = False
        self.booted = True
        self.boot_gated: set[str] = {"devicestatelist", "queuestatus"}
        """Lower-cased actions unknown until `boot` (res_manager_devicestate and app_queue load late)."""
        self.port = 0
        self.lock: Any = contextlib.nullcontext()  # a real lock where connections run in threads

    @property
    def open_connections(self) -> list[AMIServerConnection]:
        return [c for c in self.connections if c.open]

    # -- scripting

    def reply_with(self, action: str, *messages: Fields) -> None:
        """Answer every ``action`` with these messages (ActionID added)."""
        self.handlers[action.lower()] = lambda conn, msg: conn.reply(msg, *messages)

    def reply_list(
        self, action: str, items: Iterable[Fields], complete_event: str, message: str = ""
    ) -> None:
        """Answer ``action`` like an Asterisk list action: start response, item events, Complete event."""
        events = [list(i.items() if isinstance(i, Mapping) else i) for i in items]

        def handle(conn: AMIServerConnection, msg: Message) -> None:
            start = [("Response", "Success"), ("EventList", "start"), ("Message", message or "Events follow")]
            done = [("Event", complete_event), ("EventList", "Complete"), ("ListItems", str(len(events)))]
            conn.reply(msg, start, *events, done)

        self.handlers[action.lower()] = handle

    def send_event(self, fields: Fields) -> int:
        """Send an event to every logged-in connection; returns how many got it."""
        data = encode_message(fields)
        with self.lock:
            targets = [c for c in self.open_connections if c.authenticated]
            for c in targets:
                c.send_raw(data)
        return len(targets)

    def boot(self) -> int:
        """End the boot: gated actions work, and every logged-in connection gets ``FullyBooted`` (as
        Asterisk sends it at the end of its boot); returns how many got it."""
        with self.lock:
            self.booted = True
        return self.send_event(fully_booted())

    def shutdown(self, *, restart: bool = True, cleanly: bool = True, close: bool = True) -> int:
        """Asterisk stops: ``Shutdown`` to every logged-in connection, then (``close``) each connection is
        closed after its output; later logins find Asterisk booting (`booted` False) until `boot`."""
        with self.lock:
            self.booted = False
        n = self.send_event(
            [
                ("Event", "Shutdown"),
                ("Privilege", "system,all"),
                ("Shutdown", "Cleanly" if cleanly else "Uncleanly"),
                ("Restart", "True" if restart else "False"),
            ]
        )
        if close:
            with self.lock:
                for c in self.open_connections:
                    c.close()
        return n

    def drop_connections(self) -> None:
        """Abort every open connection (the client sees the connection lost)."""
        with self.lock:
            for c in self.open_connections:
                c.abort()

    def pause_reading(self) -> None:
        """Stop reading on every connection (current and new): the client's writes back up."""
        with self.lock:
            self.read_paused = True
            for c in self.open_connections:
                if c.conn is not None:
                    c.conn.pause_reading()

    def resume_reading(self) -> None:
        with self.lock:
            self.read_paused = False
            for c in self.open_connections:
                if c.conn is not None:
                    c.conn.resume_reading()

    # -- inspection

    def actions_named(self, name: str) -> list[Message]:
        with self.lock:
            return [a.message for a in self.actions if a.name.lower() == name.lower()]

    def _nth_action(self, name: str, count: int) -> Message | None:
        found = self.actions_named(name)
        return found[count - 1] if len(found) >= count else None

    # -- called by connections

    def _connection_closed(self, connection: AMIServerConnection) -> None:
        self._changed()

    def _changed(self) -> None:
        """Something happened (connection, action, login, close): subclasses wake their waiters."""
