"""One SIP phone in its own process: ``python -m harness.sipagent``, driven by harness.sipphone.

pjsua2's Endpoint is a process-wide singleton and a crash in it would take pytest down, so each phone
(or trunk provider) is a process of its own. It reads one JSON command a line on stdin
(``{"id": 1, "cmd": "call", "args": {...}}``) and writes on its stdout the answers
(``{"id": 1, "ok": true, "result": ...}``) and events (``{"event": "call_state", ...}``). pjsua2 runs
without worker threads: this loop pumps ``libHandleEvents`` between commands. Its own log (pjsua's, SIP
messages included) goes to stderr, which the test side keeps in a file.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pjsua2 as pj

from harness.sipobjects import PhoneAccount, PhoneBuddy, PhoneCall

CODECS = ("PCMA/8000", "PCMU/8000", "G722/16000")  # what our lines allow (g722, alaw, ulaw)


def fix_openssl() -> None:
    """The wheel's OpenSSL 1.0.2 knows no digest (every challenge fails with PJ_ENOTSUP) until
    OpenSSL_add_all_digests() is called on the very library pjsua2 loaded."""
    libs = Path(pj.__file__).resolve().parents[1] / "pjsua2_python.libs"
    for path in glob.glob(str(libs / "libcrypto*.so*")):
        ctypes.CDLL(path).OpenSSL_add_all_digests()


def wav_closed(path: str) -> bool:
    """True once the recorder has written the WAV's final header (RIFF size = file size - 8)."""
    try:
        with open(path, "rb") as wav:
            head = wav.read(8)
            size = os.fstat(wav.fileno()).st_size
    except OSError:
        return False
    return len(head) == 8 and head[:4] == b"RIFF" and int.from_bytes(head[4:], "little") == size - 8


@dataclass
class Recording:
    """What a call brings, recorded into ``path`` until ``end``; ``request`` is answered then."""

    recorder: Any
    media: Any
    end: float
    request: int
    path: str


class Agent:
    """The phone: an endpoint, one transport, one account (maybe without registration), its calls."""

    def __init__(self) -> None:
        self.ep: pj.Endpoint | None = None
        self.account: PhoneAccount | None = None
        self.calls: dict[int, PhoneCall] = {}
        self.buddies: dict[str, PhoneBuddy] = {}
        self.recordings: dict[int, Recording] = {}  # by call
        self.closing: list[tuple[int, str, float]] = []  # recordings being closed: (request, path, deadline)
        self.tone = 0
        self.host = ""
        self.auto_ringing = True
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # anything printed by the library goes to the log, never into the protocol
        self.running = True
        # the commands the test side may send (harness.sipphone), by name
        self.commands: dict[str, Callable[..., Any]] = {
            "start": self.cmd_start,
            "account": self.cmd_account,
            "call": self.cmd_call,
            "answer": self.cmd_answer,
            "hangup": self.cmd_hangup,
            "hold": self.cmd_hold,
            "unhold": self.cmd_unhold,
            "dtmf": self.cmd_dtmf,
            "xfer": self.cmd_xfer,
            "xfer_replaces": self.cmd_xfer_replaces,
            "record": self.cmd_record,
            "subscribe": self.cmd_subscribe,
            "auto_ringing": self.cmd_auto_ringing,
            "quit": self.cmd_quit,
        }

    def send(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")

    def event(self, kind: str, **fields: Any) -> None:
        self.send({"event": kind, "t": time.monotonic(), **fields})

    # -- commands -----------------------------------------------------------------------------------

    def cmd_start(self, host: str, port: int, tone: int, log_level: int = 5) -> dict[str, Any]:
        fix_openssl()
        self.tone = tone
        self.host = host
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = "pbx-test-phone"
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = host
        tcfg.publicAddress = host
        self.transport = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, 0)
        for n, codec in enumerate(CODECS):
            ep.codecSetPriority(codec, 200 - n)
        info = ep.transportGetInfo(self.transport)
        return {"address": info.localName}

    def cmd_account(
        self, user: str, domain: str, secret: str = "", register: bool = True, display: str = ""
    ) -> dict[str, Any]:
        """An account; ``register`` False for a trunk provider (it only sends and receives calls)."""
        assert self.ep is not None
        cfg = pj.AccountConfig()
        cfg.idUri = f'"{display}" <sip:{user}@{domain}>' if display else f"sip:{user}@{domain}"
        cfg.sipConfig.transportId = self.transport
        if register:
            cfg.regConfig.registrarUri = f"sip:{domain}"
            cfg.regConfig.timeoutSec = 300
        if secret:
            cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, secret))
        cfg.mwiConfig.enabled = register
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.natConfig.sipOutboundUse = 0
        cfg.natConfig.iceEnabled = False
        # RTP on the phone's own loopback address, and that address in its SDP (not the host's interface)
        cfg.mediaConfig.transportConfig.boundAddress = self.host
        cfg.mediaConfig.transportConfig.publicAddress = self.host
        self.account = PhoneAccount(self)
        self.account.create(cfg, True)
        return {}

    def cmd_call(self, uri: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        assert self.account is not None
        call = PhoneCall(self, self.account)
        prm = pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            hdr = pj.SipHeader()
            hdr.hName, hdr.hValue = name, value
            prm.txOption.headers.append(hdr)
        call.makeCall(uri, prm)
        self.calls[call.getId()] = call
        return {"call": call.getId()}

    def cmd_answer(self, call: int, code: int = 200) -> dict[str, Any]:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.calls[call].answer(prm)
        return {}

    def cmd_hangup(self, call: int, code: int = 0) -> dict[str, Any]:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.calls[call].hangup(prm)
        return {}

    def cmd_hold(self, call: int) -> dict[str, Any]:
        self.calls[call].setHold(pj.CallOpParam(True))
        return {}

    def cmd_unhold(self, call: int) -> dict[str, Any]:
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.calls[call].reinvite(prm)
        return {}

    def cmd_dtmf(self, call: int, digits: str) -> dict[str, Any]:
        self.calls[call].dialDtmf(digits)  # RFC 2833 / 4733 events
        return {}

    def cmd_xfer(self, call: int, uri: str) -> dict[str, Any]:
        self.calls[call].xfer(uri, pj.CallOpParam(True))
        return {}

    def cmd_xfer_replaces(self, call: int, other: int) -> dict[str, Any]:
        self.calls[call].xferReplaces(self.calls[other], pj.CallOpParam(True))
        return {}

    def cmd_record(self, call: int, seconds: float, path: str, request: int) -> None:
        """Record what the call's audio brings for ``seconds``; answered when the WAV is closed."""
        media = self.calls[call].audio_media()
        if media is None:
            raise RuntimeError(f"call {call} has no active audio")
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        media.startTransmit(recorder)
        self.recordings[call] = Recording(recorder, media, time.monotonic() + seconds, request, path)

    def cmd_subscribe(self, uri: str) -> dict[str, Any]:
        assert self.account is not None
        buddy = PhoneBuddy(self, uri)
        cfg = pj.BuddyConfig()
        cfg.uri = uri
        cfg.subscribe = True
        buddy.create(self.account, cfg)
        self.buddies[uri] = buddy
        return {}

    def cmd_auto_ringing(self, enabled: bool) -> dict[str, Any]:
        self.auto_ringing = enabled
        return {}

    def cmd_quit(self) -> dict[str, Any]:
        self.running = False
        return {}

    # -- loop ---------------------------------------------------------------------------------------

    def finish_recordings(self) -> None:
        now = time.monotonic()
        for call in [c for c, r in self.recordings.items() if now >= r.end or not self._active(c)]:
            done = self.recordings.pop(call)
            with contextlib.suppress(pj.Error):  # the call ended meanwhile: the file is still closed below
                done.media.stopTransmit(done.recorder)
            done.recorder = done.media = None  # the last references: the bridge removes it, closes the file
            self.closing.append((done.request, done.path, now + 2.0))
        for entry in list(self.closing):
            request, path, deadline = entry
            if wav_closed(path) or now >= deadline:
                self.closing.remove(entry)
                self.send({"id": request, "ok": True, "result": {"path": path}})

    def _active(self, call: int) -> bool:
        return call in self.calls and self.calls[call].isActive()

    def handle(self, line: str) -> None:
        request = json.loads(line)
        rid, name, args = request["id"], request["cmd"], request.get("args", {})
        method = self.commands.get(name)
        try:
            if method is None:
                raise ValueError(f"unknown command {name!r}")
            if name == "record":
                method(request=rid, **args)
                return
            self.send({"id": rid, "ok": True, "result": method(**args)})
        except pj.Error as exc:
            self.send({"id": rid, "ok": False, "error": f"{exc.title}: {exc.reason} ({exc.status})"})
        except Exception as exc:
            self.send({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def run(self) -> None:
        pending = b""
        stdin = sys.stdin.fileno()
        while self.running:
            ready, _, _ = select.select([stdin], [], [], 0 if self.ep else 1.0)
            if ready:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    break  # the test side is gone
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        self.handle(line.decode())
            if self.ep is not None:
                self.ep.libHandleEvents(10)
                self.finish_recordings()
        self.shutdown()

    def shutdown(self) -> None:
        """Hang up, unregister (so the PBX keeps no stale contact), then leave without Python's GC
        tearing pjsua2 objects down after the library (a known crash)."""
        if self.ep is not None:
            self.ep.hangupAllCalls()
            if self.account is not None and self.account.getInfo().regIsActive:
                self.account.setRegistration(False)
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline and self.account.getInfo().regIsActive:
                    self.ep.libHandleEvents(20)
            self.ep.libDestroy()
        self.out.flush()
        os._exit(0)


if __name__ == "__main__":
    Agent().run()
