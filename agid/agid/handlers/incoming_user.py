"""``incoming_user``: how to ring a user. ``AGI(agi://127.0.0.1:4573/incoming_user,USER_ID[,CALLS])`` or
``incoming_user?exten=1001&context=internal[&calls=N]``. CALLS is the user's calls in progress,
``${GROUP_COUNT(u<USER_ID>@agid_user)}`` as the dialplan library passes it; without it agid asks Asterisk
(one more round trip).

Decision (``AGID_ACTION``), in this order:

1. user unknown -> ``UNAVAILABLE``; disabled -> ``VOICEMAIL`` if the user has an enabled box, else
   ``UNAVAILABLE``;
2. unconditional forward -> ``FORWARD`` to ``AGID_FWD_NUMBER``;
3. do-not-disturb, or already ``simultaneous_calls`` calls for the user (CALLS) -> the busy treatment:
   busy forward (``FORWARD``), else ``VOICEMAIL`` with the busy greeting, else ``BUSY``;
4. no enabled line -> the no-answer treatment: no-answer forward, else ``VOICEMAIL`` with the unavailable
   greeting, else ``UNAVAILABLE``;
5. else ``DIAL``: ``AGID_DIAL`` = every enabled line of the user, joined with ``&`` (a line shared with
   other users rings for each of them; a user with several lines rings on all). A line that allows one
   contact is ``PJSIP/<line>``; one that allows several is what ``${PJSIP_DIAL_CONTACTS(<line>)}`` gives
   now (``PJSIP/<line>`` alone would ring only its first registered contact), or ``PJSIP/<line>`` when
   nothing is registered, so that Dial reports the line unavailable;
   ``AGID_RINGTIME`` seconds; then ``AGID_FWD_BUSY`` / ``AGID_FWD_NOANSWER`` / ``AGID_VOICEMAIL`` tell the
   dialplan where to go on DIALSTATUS BUSY / NOANSWER. The caller's channel joins group
   ``u<ID>@agid_user`` (``GROUP(agid_user)``, set with the decision) so that the next call counts it.

``AGID_VM_GREETING`` names the voicemail greeting of a ``VOICEMAIL`` decision: ``b`` (busy) or ``u``
(unavailable).

Database down or slow: ``AGID_ACTION=DEFAULT``, ``AGID_DEGRADED=1``: the dialplan rings its static default.
"""

from __future__ import annotations

from agid.db import DBUnavailable
from agid.handlers._support import BadInput, argument, channel_value, db_call, db_load, finish
from agid.session import AGISession
from confdb.read import agid as read

GROUP_CATEGORY = "agid_user"
OUTPUTS = (
    "AGID_USER_ID",
    "AGID_USER_LANGUAGE",
    "AGID_ACTION",
    "AGID_DIAL",
    "AGID_RINGTIME",
    "AGID_FWD_NUMBER",
    "AGID_FWD_BUSY",
    "AGID_FWD_NOANSWER",
    "AGID_VOICEMAIL",
    "AGID_VM_GREETING",
)


def _busy(user: read.UserRouting) -> tuple[str, str | None, str]:
    if user.fwd_busy:
        return "FORWARD", user.fwd_busy, "b"
    return ("VOICEMAIL", None, "b") if user.voicemail else ("BUSY", None, "b")


def _unanswered(user: read.UserRouting) -> tuple[str, str | None, str]:
    if user.fwd_noanswer:
        return "FORWARD", user.fwd_noanswer, "u"
    return ("VOICEMAIL", None, "u") if user.voicemail else ("UNAVAILABLE", None, "u")


async def _dial_target(session: AGISession, line: read.Line) -> str:
    if line.max_contacts > 1:
        contacts = await channel_value(session, f"${{PJSIP_DIAL_CONTACTS({line.name})}}")
        if contacts and contacts.strip():
            return contacts.strip()
    return f"PJSIP/{line.name}"


async def handle(session: AGISession) -> None:
    user_ref = argument(session, 0, "id")
    exten = session.query.get("exten", "").strip()
    context = session.query.get("context", "internal").strip() or "internal"
    if user_ref and not user_ref.isdigit():
        raise BadInput(f"incoming_user: user id {user_ref!r} is not a number")
    if not user_ref and not exten:
        raise BadInput("incoming_user: no user id (argument 1) nor exten= given")
    out: dict[str, str | int | None] = dict.fromkeys(OUTPUTS)
    try:
        if user_ref:
            user = await db_load(session, read.users_by_id, int(user_ref))
        else:
            user = await db_call(session, read.user_by_extension, exten, context)
    except DBUnavailable as exc:
        out["AGID_ACTION"] = "DEFAULT"
        finish(session, out, f"database unavailable: {exc}", degraded=True)
        return
    if user is None:
        out["AGID_ACTION"] = "UNAVAILABLE"
        finish(session, out, f"no user {user_ref or exten + '@' + context}")
        return
    out["AGID_USER_ID"] = user.id
    out["AGID_USER_LANGUAGE"] = user.language
    out["AGID_VOICEMAIL"] = user.voicemail or ""
    out["AGID_RINGTIME"] = user.ring_seconds
    lines = [line for line in user.lines if line.enabled]
    cause = ""
    action: str
    number: str | None = None
    greeting = "u"
    if not user.enabled:
        action, cause = ("VOICEMAIL" if user.voicemail else "UNAVAILABLE"), "user disabled"
    elif user.fwd_unconditional:
        action, number, cause = "FORWARD", user.fwd_unconditional, "unconditional forward"
    elif user.dnd:
        (action, number, greeting), cause = _busy(user), "do not disturb"
    elif not lines:
        (action, number, greeting), cause = _unanswered(user), "no enabled line"
    else:
        count = argument(session, 1, "calls")
        if not count.isdigit():  # not given by the dialplan: ask Asterisk
            count = await channel_value(session, f"${{GROUP_COUNT(u{user.id}@{GROUP_CATEGORY})}}") or ""
        if count.isdigit() and int(count) >= user.simultaneous_calls:
            (action, number, greeting) = _busy(user)
            cause = f"{count} calls in progress (simultaneous_calls {user.simultaneous_calls})"
        else:
            action = "DIAL"
            out["AGID_DIAL"] = "&".join([await _dial_target(session, line) for line in lines])
            out["AGID_FWD_BUSY"] = user.fwd_busy or ""
            out["AGID_FWD_NOANSWER"] = user.fwd_noanswer or ""
            out[f"GROUP({GROUP_CATEGORY})"] = f"u{user.id}"  # counted by the next call
    out["AGID_ACTION"] = action
    out["AGID_FWD_NUMBER"] = number
    out["AGID_VM_GREETING"] = greeting if action == "VOICEMAIL" else None
    finish(session, out, cause)
