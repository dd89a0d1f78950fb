"""``dial``, ``hangup`` and ``transfer``: AMI actions on the user's own line and calls only."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctid.cti.commands.base import AMISender, Client, Request, run_actions
from ctid.directory import User
from ctid.state.model import Call, Channel


@dataclass(frozen=True)
class CallsEnv:
    ami_action: AMISender
    call: Callable[[str], Call | None]
    """The call of this id (its linkedid), if the tracker knows it."""
    peer_channels: Callable[[Channel], list[Channel]]
    dial_context: Callable[[User], str]
    dial_timeout: Callable[[], float]
    expect_originate: Callable[[str, Client, Any], None]
    """Send the originate_result of this call id to this client, for this request id."""
    forget_originate: Callable[[str], None]


def dial(req: Request, env: CallsEnv) -> None:
    user = req.user
    if user.main_line is None:
        return req.fail("no_line", "you have no line to dial from")
    number = req.msg["number"]
    call_id = "ctid-" + os.urandom(8).hex()
    headers = [
        ("Channel", f"PJSIP/{user.main_line}"),
        ("Context", env.dial_context(user)),
        ("Exten", number),
        ("Priority", "1"),
        ("CallerID", f'"{number}" <{number}>'),
        ("Timeout", str(int(env.dial_timeout() * 1000))),
        ("Async", "true"),
        ("ChannelId", call_id),
        ("Variable", f"CTID_USER={user.id}"),
    ]
    env.expect_originate(call_id, req.client, req.rid)
    run_actions(
        req,
        env.ami_action,
        [("Originate", headers)],
        lambda: req.ok(call_id=call_id),
        on_error=lambda: env.forget_originate(call_id),
    )


def _own_channels(req: Request, env: CallsEnv) -> list[Channel]:
    call = env.call(req.msg["call_id"])
    if call is None:
        return []
    lines = set(req.user.lines)
    return [c for c in call.channels.values() if c.line in lines]


def hangup(req: Request, env: CallsEnv) -> None:
    own = _own_channels(req, env)
    if not own:
        return req.fail("no_such_call", "no such call of yours")
    run_actions(
        req,
        env.ami_action,
        [("Hangup", {"Channel": c.name}) for c in own],
        lambda: req.ok(call_id=req.msg["call_id"]),
    )


def transfer(req: Request, env: CallsEnv) -> None:
    own = _own_channels(req, env)
    if not own:
        return req.fail("no_such_call", "no such call of yours")
    own.sort(key=lambda c: (c.bridge is None, c.state != "Up"))
    mine = own[0]
    context = env.dial_context(req.user)
    number = req.msg["number"]
    if req.msg["mode"] == "blind":
        lines = set(req.user.lines)
        if not [p for p in env.peer_channels(mine) if p.line not in lines]:
            return req.fail("not_bridged", "the call has no other party to transfer")
        # As a phone's REFER does: Asterisk sends every other party to the number, takes the user's
        # channel out of the bridge and reports a BlindTransfer event (a Redirect reports nothing).
        action = ("BlindTransfer", {"Channel": mine.name, "Context": context, "Exten": number})
    else:
        action = ("Atxfer", {"Channel": mine.name, "Context": context, "Exten": number})
    run_actions(req, env.ami_action, [action], lambda: req.ok(call_id=req.msg["call_id"]))
