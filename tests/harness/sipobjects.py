"""The pjsua2 objects of one phone (harness.sipagent): its account, calls and presence subscriptions.

Each callback turns what pjsua2 reports into an event for the test side (``agent.event``); a callback
that raises becomes an ``error`` event, so that a test fails with it rather than waiting in vain.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

if TYPE_CHECKING:
    from harness.sipagent import Agent

_HEADER = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*)$", re.M)


def headers(msg: str, name: str) -> list[str]:
    """The values of header ``name`` (or its compact form) in a SIP message's head."""
    head = msg.split("\r\n\r\n", 1)[0]
    short = {"from": "f", "to": "t", "contact": "m", "call-id": "i"}.get(name.lower(), "")
    return [v.strip() for k, v in _HEADER.findall(head) if k.lower() in (name.lower(), short)]


def identity(value: str) -> dict[str, str]:
    """Display name and user part of a From / P-Asserted-Identity value."""
    name = re.match(r'\s*"((?:[^"\\]|\\.)*)"', value) or re.match(r"\s*([^<\"]+?)\s*<", value)
    user = re.search(r"sips?:([^@;>]+)@", value) or re.search(r"tel:([^;>]+)", value)
    return {"name": name.group(1) if name else "", "number": user.group(1) if user else ""}


def q850_cause(msg: str) -> int | None:
    for value in headers(msg, "Reason"):
        found = re.search(r"Q\.850\s*;.*?cause\s*=\s*(\d+)", value, re.I)
        if found:
            return int(found.group(1))
    return None


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """A pjsua2 callback whose exception becomes an ``error`` event (the test sees it) instead of a
    line in the log that nobody reads."""

    @functools.wraps(callback)
    def wrapper(self: Any, *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as exc:
            self.agent.event("error", callback=callback.__name__, error=f"{type(exc).__name__}: {exc}")

    return wrapper


class PhoneAccount(pj.Account):
    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    @guarded
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        info = self.getInfo()
        self.agent.event(
            "reg_state", code=prm.code, reason=prm.reason, expiration=prm.expiration, active=info.regIsActive
        )

    @guarded
    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = PhoneCall(self.agent, self, prm.callId)
        self.agent.calls[prm.callId] = call
        msg = prm.rdata.wholeMsg
        info = call.getInfo()
        pai = headers(msg, "P-Asserted-Identity")
        self.agent.event(
            "incoming",
            call=prm.callId,
            remote_uri=info.remoteUri,
            request_uri=msg.split(" ", 2)[1] if " " in msg else "",
            **{"from": identity((headers(msg, "From") or [""])[0])},
            pai=identity(pai[0]) if pai else None,
            message=msg,
        )
        if self.agent.auto_ringing:
            ringing = pj.CallOpParam(True)
            ringing.statusCode = 180
            call.answer(ringing)

    @guarded
    def onMwiInfo(self, prm: pj.OnMwiInfoParam) -> None:
        msg = prm.rdata.wholeMsg
        body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""
        waiting = re.search(r"Messages-Waiting:\s*(\w+)", body, re.I)
        voice = re.search(r"Voice-Message:\s*(\d+)/(\d+)", body, re.I)
        self.agent.event(
            "mwi",
            waiting=bool(waiting and waiting.group(1).lower() == "yes"),
            new=int(voice.group(1)) if voice else None,
            old=int(voice.group(2)) if voice else None,
            body=body,
        )


class PhoneCall(pj.Call):
    def __init__(self, agent: Agent, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.agent = agent
        self.tone: pj.ToneGenerator | None = None

    def audio_media(self) -> pj.AudioMedia | None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return self.getAudioMedia(media.index)
        return None

    @guarded
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.agent.calls.setdefault(info.id, self)
        msg = ""
        if prm.e.type == pj.PJSIP_EVENT_TSX_STATE and prm.e.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
            msg = prm.e.body.tsxState.src.rdata.wholeMsg
        self.agent.event(
            "call_state",
            call=info.id,
            state=info.stateText,
            code=info.lastStatusCode,
            reason=info.lastReason,
            q850=q850_cause(msg) if msg else None,
            method=msg.split(" ", 1)[0] if msg and not msg.startswith("SIP/") else "",
            message=msg,
        )
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.tone = None
            # pjsua gives an ended call's id to a later call (ids wrap at its build's call limit, 4 here):
            # the ended call's object goes now, while its id still names this call. Replaced later, by the
            # call that reuses the id, its destructor would hang that new call up (603) and unlink it.
            if self.agent.calls.get(info.id) is self:
                del self.agent.calls[info.id]

    @guarded
    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        media = self.audio_media()
        if media is not None and self.agent.tone:
            if self.tone is None:
                self.tone = pj.ToneGenerator()
                self.tone.createToneGenerator()
                desc = pj.ToneDesc()
                desc.freq1, desc.freq2, desc.on_msec, desc.off_msec, desc.volume = (
                    self.agent.tone,
                    0,
                    10000,
                    0,
                    0,
                )  # looped
                tones = pj.ToneDescVector()
                tones.append(desc)
                self.tone.play(tones, True)
            self.tone.startTransmit(media)
        self.agent.event("media", call=self.getId(), active=media is not None)

    @guarded
    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.agent.event("dtmf", call=self.getId(), digit=prm.digit)

    @guarded
    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        self.agent.event(
            "transfer_status",
            call=self.getId(),
            code=prm.statusCode,
            reason=prm.reason,
            final=prm.finalNotify,
        )

    @guarded
    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        prm.newCall = PhoneCall(self.agent, self.account_ref())  # registered at its first state
        self.agent.event("transfer_request", call=self.getId(), target=prm.dstUri)

    @guarded
    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:
        new = PhoneCall(self.agent, self.account_ref(), prm.newCallId)
        prm.newCall = new
        self.agent.calls[prm.newCallId] = new
        self.agent.event("replaced", call=self.getId(), new_call=prm.newCallId)

    def account_ref(self) -> pj.Account:
        assert self.agent.account is not None
        return self.agent.account


class PhoneBuddy(pj.Buddy):
    def __init__(self, agent: Agent, uri: str) -> None:
        super().__init__()
        self.agent = agent
        self.uri = uri

    @guarded
    def onBuddyState(self) -> None:
        info = self.getInfo()
        self.agent.event(
            "buddy",
            uri=self.uri,
            status=info.presStatus.statusText,
            note=info.presStatus.note,
            online=info.presStatus.status == pj.PJSUA_BUDDY_STATUS_ONLINE,
            sub_state=info.subStateName,
            sub_code=info.subTermCode,
            sub_reason=info.subTermReason,
        )
