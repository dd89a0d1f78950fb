"""Real SIP phones for the call tests, each a pjsua2 process (harness.sipagent) driven over a pipe.

    phones = SipPhones(pbx_host, sip_port, workdir)
    alice = phones.register("k2j4h5g6", secret)      # a line: registers, waits for 200 OK
    bob = phones.register(...)
    alice.call("1002")
    bob.wait_ringing()                               # the INVITE arrived, the phone answered 180
    alice.wait_ringback()                            # the caller saw 180 or 183
    bob.answer(); alice.wait_confirmed()
    alice.assert_hears(bob); bob.assert_hears(alice) # audio both ways: each phone sends its own tone
    alice.hangup(); assert bob.wait_disconnected().q850 == 16

The phone-level methods act on its current call (the last placed or received); with several calls
(transfers, a second incoming call), use the Call objects that call() and wait_ringing() return.

A provider (``phones.provider()``) is an endpoint without registration on its own address, to pose as a
SIP trunk (matched by confgend's ``identify``): it receives the PBX's INVITEs and calls into the PBX.
Every wait has a timeout and its error names what was awaited and what was seen.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import LOOPBACK
from harness.procs import log_tail
from harness.tones import Audio

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
TIMEOUT = 10.0
TONES = (600, 1000, 1400, 1800, 800, 1200, 1600, 2000)  # Hz, multiples of 20 (Goertzel bins of 50 ms)
Event = dict[str, Any]


class PhoneError(AssertionError):
    """A phone did not see what a test waited for (or its agent failed)."""


@dataclass(frozen=True)
class Disconnect:
    code: int  # the SIP status that ended the call (200 after a BYE, 486 busy, ...)
    reason: str
    q850: int | None  # the cause of a Reason: Q.850 header of the message that ended it, if any


@dataclass(frozen=True)
class CallerId:
    name: str
    number: str


class AgentProcess:
    """One harness.sipagent process: commands with answers, events kept in order."""

    def __init__(self, name: str, log: Path, command: list[str] | None = None) -> None:
        self.name = name
        self.log = log
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._answers: dict[int, Event] = {}
        self.events: list[Event] = []
        self._log = log.open("ab")
        self._quitting = False
        self.proc = subprocess.Popen(
            command or [str(PYTHON), "-m", "harness.sipagent"],  # another: e.g. the agent over ssh
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO / "tests",
        )
        threading.Thread(target=self._read, name=f"sipagent {name}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            msg = json.loads(raw)
            with self._cond:
                if "event" in msg:
                    self.events.append(msg)
                else:
                    self._answers[msg["id"]] = msg
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def dead(self) -> str:
        code = self.proc.poll()
        if code is None:
            return ""
        return (
            f"the SIP agent of {self.name} exited with {code}; its log ends with:\n{log_tail(self.log, 30)}"
        )

    def command(self, cmd: str, timeout: float = TIMEOUT, **args: Any) -> Any:
        rid = next(self._ids)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"id": rid, "cmd": cmd, "args": args}).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise PhoneError(self.dead() or f"{self.name}: its SIP agent is gone") from None
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._answers:
                if self.dead() or time.monotonic() >= deadline:
                    raise PhoneError(self.dead() or f"{self.name}: no answer to {cmd!r} within {timeout:g} s")
                self._cond.wait(0.1)
            answer = self._answers.pop(rid)
        if not answer["ok"]:
            raise PhoneError(f"{self.name}: {cmd} failed: {answer['error']}")
        return answer["result"]

    def wait(
        self, what: str, match: Callable[[Event], bool], timeout: float = TIMEOUT, since: int = 0
    ) -> Event:
        """The first event from index ``since`` on that ``match``es; PhoneError naming ``what`` if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.events[since:] if match(e)), None)
                if found is not None:
                    return found
                failed = next((e for e in self.events[since:] if e["event"] == "error"), None)
                if failed is not None:
                    raise PhoneError(f"{self.name}: waited for {what}: the phone failed: {summary(failed)}")
                if self.dead() or time.monotonic() >= deadline:
                    seen = "; ".join(summary(e) for e in self.events[since:][-12:]) or "no event"
                    problem = self.dead() or f"not within {timeout:g} s"
                    raise PhoneError(f"{self.name}: waited for {what}: {problem}; saw: {seen}")
                self._cond.wait(0.1)

    def quit(self) -> None:
        """Ask the agent to quit (it hangs up, unregisters and exits, in about a second); close() waits."""
        if self.proc.poll() is None and not self._quitting:
            try:
                self.command("quit", timeout=5.0)
                self._quitting = True
            except PhoneError:
                pass  # close() kills it

    def agent_path(self, local: Path) -> str:
        """Where the agent writes a file (a recording) that the test reads at ``local``."""
        return str(local)

    def fetch(self, agent_path: str, local: Path) -> Path:
        """The file the agent wrote at ``agent_path``, readable here (an agent elsewhere copies it to
        ``local``)."""
        return Path(agent_path)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if not self._quitting:
                    self.command("quit", timeout=5.0)
                self.proc.wait(5.0)
            except (PhoneError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def summary(event: Event) -> str:
    """One event, short, for error messages."""
    shown = {k: v for k, v in event.items() if k not in ("event", "t", "message", "body")}
    return f"{event['event']} {shown}"


class Call:
    """One call of a phone (placed or received)."""

    def __init__(self, phone: Phone, call_id: int, since: int) -> None:
        self.phone = phone
        self.id = call_id
        self.since = since  # index of the phone's first event about this call

    def __repr__(self) -> str:
        return f"<call {self.id} of {self.phone.name}>"

    def _state(self, what: str, match: Callable[[Event], bool], timeout: float) -> Event:
        return self.phone.agent.wait(
            f"{what} on {self!r}",
            lambda e: e.get("call") == self.id and e["event"] == "call_state" and match(e),
            timeout,
            self.since,
        )

    def states(self) -> list[str]:
        return [
            e["state"]
            for e in self.phone.agent.events[self.since :]
            if e.get("call") == self.id and e["event"] == "call_state"
        ]

    def wait_ringback(self, timeout: float = TIMEOUT) -> int:
        """The caller's side: a 180 Ringing or 183 Session Progress arrived; its code."""
        return self._state("ringback (180 or 183)", lambda e: e["code"] in (180, 183), timeout)["code"]

    def wait_confirmed(self, timeout: float = TIMEOUT) -> None:
        self._state("the call answered (CONFIRMED)", lambda e: e["state"] == "CONFIRMED", timeout)

    def wait_disconnected(self, timeout: float = TIMEOUT) -> Disconnect:
        event = self._state("the call ended (DISCONNECTED)", lambda e: e["state"] == "DISCONNECTED", timeout)
        q850 = event["q850"]
        if q850 is None:  # the cause may have come with the BYE seen just before
            q850 = next((e["q850"] for e in self._events("call_state") if e["q850"] is not None), None)
        return Disconnect(event["code"], event["reason"], q850)

    def _events(self, kind: str) -> list[Event]:
        return [
            e
            for e in self.phone.agent.events[self.since :]
            if e.get("call") == self.id and e["event"] == kind
        ]

    def answer(self, code: int = 200) -> None:
        self.phone.agent.command("answer", call=self.id, code=code)

    def hangup(self, code: int = 0) -> None:
        """Hang up (BYE once answered, CANCEL while calling, or ``code`` to refuse: 486 busy...)."""
        self.phone.agent.command("hangup", call=self.id, code=code)

    def hold(self) -> None:
        self.phone.agent.command("hold", call=self.id)

    def unhold(self) -> None:
        self.phone.agent.command("unhold", call=self.id)

    def dtmf(self, digits: str) -> None:
        """RFC 2833 (4733) DTMF events, as a phone's keypad sends them."""
        self.phone.agent.command("dtmf", call=self.id, digits=digits)

    def transfer(self, number: str) -> None:
        """Blind transfer: REFER the other party to ``number``."""
        self.phone.agent.command("xfer", call=self.id, uri=self.phone.uri(number))

    def transfer_to(self, other: Call) -> None:
        """Attended transfer: REFER with Replaces, joining this call's party to ``other``'s."""
        self.phone.agent.command("xfer_replaces", call=self.id, other=other.id)

    def wait_transfer_status(self, timeout: float = TIMEOUT) -> int:
        """The final status of the transfer this phone asked for (NOTIFY sipfrag), e.g. 200."""
        event = self.phone.agent.wait(
            f"a final transfer status on {self!r}",
            lambda e: e.get("call") == self.id and e["event"] == "transfer_status" and e["final"],
            timeout,
            self.since,
        )
        return event["code"]

    def caller_id(self) -> CallerId:
        """What the callee's phone shows: P-Asserted-Identity if present, else From."""
        incoming = next((e for e in self._events("incoming")), None)
        if incoming is None:
            raise PhoneError(f"{self!r} is not an incoming call")
        shown = incoming["pai"] or incoming["from"]
        return CallerId(shown["name"] or incoming["from"]["name"], shown["number"])

    def received_dtmf(self) -> str:
        return "".join(e["digit"] for e in self._events("dtmf"))

    def assert_hears(self, other: Phone, seconds: float = 1.5) -> Audio:
        """What this call brings holds ``other``'s tone (PhoneError with the measures otherwise)."""
        audio = self.listen(seconds)
        if not audio.has_tone(other.tone):
            heard = audio.describe(other.tone)
            raise PhoneError(f"{self!r} does not hear {other.name}'s {other.tone} Hz: {heard}")
        return audio

    def assert_silence(self, seconds: float = 1.5) -> Audio:
        audio = self.listen(seconds)
        if not audio.is_silent():
            raise PhoneError(f"{self!r} is not silent: {audio.describe(*TONES)}")
        return audio

    def listen(self, seconds: float = 1.5, timeout: float = TIMEOUT) -> Audio:
        """Record what this call brings for ``seconds`` and return it (see harness.tones)."""
        path = self.phone.workdir / f"{self.phone.name}-call{self.id}-{time.monotonic_ns()}.wav"
        agent = self.phone.agent
        result = agent.command(
            "record", timeout + seconds, call=self.id, seconds=seconds, path=agent.agent_path(path)
        )
        return Audio.read(agent.fetch(result["path"], path))


class Phone:
    """A SIP phone (or a trunk provider): one account on its own loopback address and port."""

    def __init__(self, agent: AgentProcess, name: str, pbx: str, tone: int, workdir: Path) -> None:
        self.agent = agent
        self.name = name
        self.pbx = pbx  # host:port of the PBX's SIP
        self.tone = tone  # Hz, what this phone sends on every call
        self.workdir = workdir
        self.address = ""
        self._claimed: set[float] = set()  # incoming calls already returned by wait_ringing
        self._current: Call | None = None

    def __repr__(self) -> str:
        return f"<phone {self.name} at {self.address}>"

    def uri(self, number: str) -> str:
        return number if number.startswith("sip:") else f"sip:{number}@{self.pbx}"

    def call(self, number: str, headers: dict[str, str] | None = None) -> Call:
        """Dial ``number`` (or a full ``sip:`` URI); the call becomes this phone's current one."""
        since = len(self.agent.events)
        result = self.agent.command("call", uri=self.uri(number), headers=headers or {})
        self.current = Call(self, result["call"], since)
        return self.current

    # The current call (the last one placed or received), as a person handles a one-line phone.

    @property
    def current(self) -> Call:
        if self._current is None:
            raise PhoneError(f"{self.name} has no call")
        return self._current

    @current.setter
    def current(self, call: Call) -> None:
        self._current = call

    def wait_ringback(self, timeout: float = TIMEOUT) -> int:
        return self.current.wait_ringback(timeout)

    def answer(self) -> None:
        self.current.answer()

    def wait_confirmed(self, timeout: float = TIMEOUT) -> None:
        self.current.wait_confirmed(timeout)

    def hangup(self, code: int = 0) -> None:
        self.current.hangup(code)

    def wait_disconnected(self, timeout: float = TIMEOUT) -> Disconnect:
        return self.current.wait_disconnected(timeout)

    def dtmf(self, digits: str) -> None:
        self.current.dtmf(digits)

    def assert_hears(self, other: Phone, seconds: float = 1.5) -> Audio:
        return self.current.assert_hears(other, seconds)

    def wait_ringing(self, timeout: float = TIMEOUT) -> Call:
        """The next incoming call not returned before: it rings (the phone sent 180)."""
        event = self.agent.wait(
            f"an incoming call to {self.name}",
            lambda e: e["event"] == "incoming" and e["t"] not in self._claimed,
            timeout,
        )
        self._claimed.add(event["t"])
        self.current = Call(self, event["call"], self.agent.events.index(event))
        return self.current

    def wait_mwi(self, waiting: bool, timeout: float = TIMEOUT) -> Event:
        """A message-waiting NOTIFY with Messages-Waiting ``waiting``; its new/old counts."""
        return self.agent.wait(
            f"MWI Messages-Waiting: {'yes' if waiting else 'no'}",
            lambda e: e["event"] == "mwi" and e["waiting"] == waiting,
            timeout,
        )

    def subscribe(self, number: str) -> Buddy:
        """Presence (BLF) subscription to ``number``."""
        since = len(self.agent.events)
        self.agent.command("subscribe", uri=self.uri(number))
        return Buddy(self, self.uri(number), since)

    def set_auto_ringing(self, enabled: bool) -> None:
        """False: an incoming call gets no automatic 180 (the test answers or refuses it itself)."""
        self.agent.command("auto_ringing", enabled=enabled)


class Buddy:
    """A presence subscription: the state text the phone shows (e.g. "Ready", "On the phone", "Ringing")."""

    def __init__(self, phone: Phone, uri: str, since: int) -> None:
        self.phone = phone
        self.uri = uri
        self.since = since

    def wait_state(self, text: str, timeout: float = TIMEOUT) -> Event:
        return self.phone.agent.wait(
            f"presence of {self.uri} {text!r}",
            lambda e: e["event"] == "buddy" and e["uri"] == self.uri and text.lower() in e["status"].lower(),
            timeout,
            self.since,
        )

    def states(self) -> list[str]:
        return [
            e["status"]
            for e in self.phone.agent.events[self.since :]
            if e["event"] == "buddy" and e["uri"] == self.uri
        ]


class SipPhones:
    """The phones of one test, against the PBX's SIP at ``host:port``; all closed by close()."""

    def __init__(self, host: str, port: int, workdir: Path) -> None:
        self.host = host
        self.port = port
        self.workdir = workdir
        self.phones: list[Phone] = []

    def _start(self, name: str, address: str, port: int, tone: int | None) -> Phone:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tone = tone or TONES[len(self.phones) % len(TONES)]
        agent = self.agent(name)
        phone = Phone(agent, name, f"{self.host}:{self.port}", tone, self.workdir)
        self.phones.append(phone)
        phone.address = agent.command("start", 20.0, host=address, port=port, tone=tone)["address"]
        return phone

    def register(
        self, username: str, secret: str, *, tone: int | None = None, timeout: float = TIMEOUT
    ) -> Phone:
        """A phone with line ``username`` registered (200 OK to its REGISTER), or PhoneError with the code."""
        phone = self._start(username, LOOPBACK, 0, tone)
        phone.agent.command("account", user=username, domain=phone.pbx, secret=secret, register=True)
        event = phone.agent.wait(f"registration of {username}", lambda e: e["event"] == "reg_state", timeout)
        if event["code"] != 200:
            raise PhoneError(f"registration of {username} refused: {event['code']} {event['reason']}")
        return phone

    def provider(
        self,
        name: str = "provider",
        *,
        address: str = "127.0.0.2",
        port: int = 0,
        tone: int | None = None,
        number: str = "",
        display: str = "",
    ) -> Phone:
        """A trunk provider: no registration, its own ``address`` (and ``port``; 0: any). Its calls come
        from ``number`` (default ``name``) with the display name ``display`` (none by default)."""
        phone = self._start(name, address, port, tone)
        phone.agent.command(
            "account", user=number or name, domain=phone.address, register=False, display=display
        )
        return phone

    def agent(self, name: str) -> AgentProcess:
        """The agent process of a new phone (a variant may run it elsewhere, e.g. over ssh)."""
        return AgentProcess(name, self.workdir / f"{name}.log")

    def close(self) -> None:
        for phone in self.phones:  # all at once: each takes about a second to stop
            phone.agent.quit()
        for phone in self.phones:
            phone.agent.close()
        self.phones = []

    def log_sections(self) -> list[tuple[str, str]]:
        return [(f"phone {p.name} log", log_tail(p.agent.log, 150)) for p in self.phones]
