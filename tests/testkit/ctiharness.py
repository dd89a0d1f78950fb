"""What the CTI tests over real sockets share: ctid against the AMI test server, real CTI clients."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from confdb import passwords
from ctid.config import build
from ctid.cti.validator import load, validate
from ctid.daemon import Ctid
from ctid.directory import Agent, User
from testkit.ami.server import AMITestServer
from testkit.ami.traces import Trace
from testkit.cticlient import connect

TRACES = Path(__file__).resolve().parents[2] / "ctid" / "tests" / "data" / "asterisk-traces"
PASSWORD = "correct-horse"
HASH = passwords.hash_password(PASSWORD, log2_n=10)  # cheaper than the real cost; same code path
USERS = [
    User(1, "Alice 1001", "alice", HASH, True, ("1001",), "1001", context="internal"),
    User(2, "Bob 1002", "bob", HASH, True, ("1002",), "1002", context="internal"),
    User(3, "Carol 1003", "carol", HASH, True, ("1003",), "1003", context="internal"),
    User(4, "Dan", "dan", HASH, False, ("1004",), "1004"),
]


def trace_events(name: str) -> list[list[tuple[str, str]]]:
    out = []
    for m in Trace.load(TRACES, name).messages:
        if "Event" in m.message:
            out.append([tuple(line.split(": ", 1)) for line in m.raw.decode().split("\r\n") if ": " in line])
    return out


def sleep(seconds: float):
    return deferLater(reactor, seconds, lambda: None)


def device(name: str, state: str) -> list[tuple[str, str]]:
    """A DeviceStateChange event (also the item of DeviceStateList), as Asterisk sends it."""
    return [("Event", "DeviceStateChange"), ("Privilege", "call,all"), ("Device", name), ("State", state)]


def member(queue: str, interface: str, name: str, status: str = "1") -> list[tuple[str, str]]:
    """A QueueMember item of QueueStatus."""
    return [
        ("Event", "QueueMember"),
        ("Queue", queue),
        ("MemberName", name),
        ("Location", interface),
        ("StateInterface", interface),
        ("Membership", "dynamic"),
        ("Penalty", "0"),
        ("CallsTaken", "0"),
        ("LastCall", "0"),
        ("InCall", "0"),
        ("Status", status),
        ("Paused", "0"),
        ("PausedReason", ""),
    ]


def check_schema(msg: dict) -> None:
    schema = load("server", msg["class"])
    assert schema is not None, msg["class"]
    validate(msg, schema)


class CTIHarness(unittest.TestCase):
    """ctid against the AMI test server; the test classes add their own tests.

    ``booted`` False: Asterisk is still booting when ctid logs in (setUp then waits for the login only);
    ``sync_overrides``: attributes of ctid's `AMIStateSync` (boot_timeout, retry_initial, ...)."""

    timeout = 60
    cti_overrides: dict = {}  # noqa: RUF012
    sync_overrides: dict = {}  # noqa: RUF012
    booted = True
    client_tls = None  # client TLS options when the server listens with TLS

    def setUp(self):
        self.ami = AMITestServer(username="ctid", secret="s3cret")
        self.ami.booted = self.booted
        # what Asterisk lists at a resync (items of CoreShowChannels, DeviceStateList, QueueStatus)
        self.channels: list = []
        self.devices: list = []
        self.members: list = []
        for action, items, done in (
            ("coreshowchannels", "channels", "CoreShowChannelsComplete"),
            ("devicestatelist", "devices", "DeviceStateListComplete"),
            ("queuestatus", "members", "QueueStatusComplete"),
        ):
            self.ami.handlers[action] = lambda conn, msg, i=items, d=done: self._list(conn, msg, i, d)
        self.ami.reply_with("BlindTransfer", [("Response", "Success"), ("Message", "Transfer succeeded")])
        self.ami.reply_with("Atxfer", [("Response", "Success"), ("Message", "Atxfer successfully queued")])
        self.ami.reply_with("Hangup", [("Response", "Success"), ("Message", "Channel Hungup")])
        self.ami.reply_with(
            "QueuePause", [("Response", "Success"), ("Message", "Interface paused successfully")]
        )
        self.ami.reply_with("QueueAdd", [("Response", "Success"), ("Message", "Added interface to queue")])
        self.ami.reply_with(
            "QueueRemove", [("Response", "Success"), ("Message", "Removed interface from queue")]
        )
        self.script()
        port = self.ami.start()
        self.addCleanup(self.ami.stop)
        config = build(
            {
                "ami": {
                    "port": port,
                    "username": "ctid",
                    "secret": "s3cret",
                    "backoff_initial": 0.05,
                    "backoff_max": 0.2,
                },
                "cti": {"port": 0, "login_timeout": 5.0, **self.cti_overrides},
                "db": {"dsn_file": "/nonexistent"},
                "bus": {"url_file": "/nonexistent"},
            }
        )
        self.daemon = Ctid(config, reactor)
        self.daemon.directory.replace_all(USERS, [Agent(1, "7001", 2, ("support", "sales"))])
        for name, value in self.sync_overrides.items():
            setattr(self.daemon.sync, name, value)
        self.daemon.start()
        self.addCleanup(self.daemon.stop)
        self.port = self.daemon.port.getHost().port
        return self.ami.wait_for_action("QueueStatus") if self.booted else self.ami.wait_for_logins(1)

    def script(self) -> None:
        """Script the AMI test server before ctid connects (subclasses)."""

    def capture_logs(self) -> list[str]:
        """ctid's log lines from now on, formatted."""
        lines: list[str] = []

        def observe(event: dict) -> None:
            lines.append(f"{event.get('log_level').name}: {formatEvent(event)}")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def _list(self, conn, msg, items: str, complete: str) -> None:
        events = getattr(self, items)
        start = [("Response", "Success"), ("EventList", "start"), ("Message", "Events will follow")]
        done = [("Event", complete), ("EventList", "Complete"), ("ListItems", str(len(events)))]
        conn.reply(msg, start, *events, done)

    @inlineCallbacks
    def client(self, login: str | None = None, topics=None, source: str | None = None):
        c = yield connect(self.port, tls=self.client_tls, source=source)
        self.addCleanup(lambda: c.transport.abortConnection() if c.transport.connected else None)
        welcome = yield c.wait_for(lambda m: m["class"] == "welcome")
        assert welcome["version"] == 1
        if login:
            r = yield c.request("login", login=login, password=PASSWORD, version=1)
            self.assertEqual(r["class"], "response", r)
        if topics:
            r = yield c.request("subscribe", topics=topics)
            self.assertEqual(r["class"], "response", r)
        return c

    def play(self, name: str, until=None, start=None) -> None:
        """Send the trace's events, from the first that ``start`` accepts to the first ``until`` accepts."""
        for fields in trace_events(name):
            d = dict(fields)
            if start is not None:
                if not start(d):
                    continue
                start = None
            if until is not None and until(d):
                return
            self.ami.send_event(fields)
