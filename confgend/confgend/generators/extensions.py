"""extensions.conf: the contexts of the database with their includes and extensions, then the static
dialplan library (static/dialplan-library.conf) that the generated lines jump into.

The generated part is thin: one `Gosub(pbx-<kind>,s,1(...))` per extension, plus a hint for every user
extension (BLF). Incalls with a schedule ask agid first (pbx-schedule: check_schedule), and when agid
has no answer test each open period with GotoIfTime, falling through to the schedule's closed
destination. Every argument the library needs for its static default (interfaces, ring time, mailbox,
trunks...) is written here, so that a call completes without agid. Every name is checked and every free
text reduced to harmless characters (escape.dialplan_text) before it becomes an application argument.
The AGI address of the library is `asterisk.agid.host`/`port`.
"""

from __future__ import annotations

import functools
from datetime import time
from importlib import resources

from confdb.read.confgend import Destination, Extension, Incall, Line, Outcall, Snapshot
from confgend import escape
from confgend.generators.base import ConfWriter, Context

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SERVICES = {
    "voicemail_own": "Gosub(pbx-voicemail-own,s,1)",
    "voicemail_any": "Gosub(pbx-voicemail-any,s,1)",
    "echo": "Gosub(pbx-echo,s,1)",
}
MAX_FORWARDS = 5  # forwards followed in a row by one call (pbx-user); a loop of forwards ends in voicemail
LIBRARY_AGID = "agi://127.0.0.1:4573/"  # as written in the static library; replaced by the configured one


@functools.cache
def _static_library() -> str:
    """The file as shipped in the package (read once: it does not change while confgend runs)."""
    return resources.files("confgend").joinpath("static/dialplan-library.conf").read_text("utf-8")


def library(agid: str = LIBRARY_AGID) -> str:
    """The static dialplan library, its AGI() calls aimed at `agid` (`agi://host:port/`)."""
    text = _static_library()
    return text if agid == LIBRARY_AGID else text.replace(LIBRARY_AGID, agid)


def agid_url(ctx: Context) -> str:
    """`agi://<asterisk.agid.host>:<asterisk.agid.port>/` (127.0.0.1:4573 by default), checked."""
    host = ctx.setting("agid", "host", default="127.0.0.1")
    port = ctx.setting("agid", "port", default=4573)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise escape.Unsafe(f"asterisk.agid.port {port!r} is not a port number")
    host = escape.host(host, "asterisk.agid.host")
    if ":" in host and not host.startswith("["):
        raise escape.Unsafe(f"asterisk.agid.host {host!r}: give the port in asterisk.agid.port")
    return f"agi://{host}:{port}/"


class _Dialplan:
    def __init__(self, snap: Snapshot, ctx: Context) -> None:
        self.snap = snap
        self.ctx = ctx
        self.users = snap.by_id("users")
        self.lines = snap.by_id("lines")
        self.voicemails = snap.by_id("voicemails")
        self.groups = snap.by_id("groups")
        self.queues = snap.by_id("queues")
        self.schedules = snap.by_id("schedules")
        self.outcall_context = next((c.name for c in snap.contexts if c.type == "outcall"), None)
        self._interfaces: dict[int | None, str] = {}

    # -- what one target becomes

    def interfaces(self, user_id: int | None) -> str:
        """What rings a user: its enabled lines, `&`-joined (memoised: the hint and the Gosub want it)."""
        found = self._interfaces.get(user_id)
        if found is None:
            found = self._interfaces[user_id] = self._make_interfaces(user_id)
        return found

    def _make_interfaces(self, user_id: int | None) -> str:
        user = self.users.get(user_id)
        if user is None or not user.enabled:
            return ""
        parts = []
        for line_id in user.lines:
            line: Line | None = self.lines.get(line_id)
            if line is None or not line.enabled:
                continue
            try:
                name = escape.ident(line.name, "line name")
            except escape.Unsafe as exc:
                self.ctx.skip(f"line {line.name!r} of user {user.id}", exc)
                continue
            parts.append(f"PJSIP/{name}" if line.max_contacts <= 1 else f"${{PJSIP_DIAL_CONTACTS({name})}}")
        return "&".join(parts)

    def forward_context(self, user_id: int) -> str:
        """Where a user's forwards are dialled: the context of its first enabled line, as if the user dialled
        the number (internal numbers, and external ones through that context's includes); with no line, the
        outcall context; "" when there is neither (the forward is then not followed)."""
        user = self.users[user_id]
        for line_id in user.lines:
            line = self.lines.get(line_id)
            if line is not None and line.enabled and escape.is_ident(line.context):
                return line.context
        return self.outcall_context or ""

    def mailbox(self, voicemail_id: int | None) -> str:
        box = self.voicemails.get(voicemail_id)
        if box is None or not box.enabled:
            return ""
        return f"{escape.digits(box.mailbox, 'mailbox')}@{escape.ident(box.context, 'voicemail context')}"

    def user(self, user_id: int | None) -> str:
        user = self.users.get(user_id)
        if user is None:
            raise escape.Unsafe(f"user {user_id} does not exist")
        if not user.enabled:
            raise escape.Unsafe(f"user {user_id} is disabled")
        args = (
            int(user.id),
            self.interfaces(user.id),
            int(user.ring_seconds),
            self.mailbox(user.voicemail_id),
            self.forward_context(user.id),
        )
        return "Gosub(pbx-user,s,1({},{},{},{},{}))".format(*args)

    def group(self, group_id: int | None) -> str:
        group = self.groups.get(group_id)
        if group is None:
            raise escape.Unsafe(f"group {group_id} does not exist")
        ifaces = "&".join(i for i in (self.interfaces(m.user_id) for m in group.members) if i)
        name = escape.ident(group.name, "group name")
        return f"Gosub(pbx-group,s,1({name},{ifaces},{int(group.ring_seconds)}))"

    def queue(self, queue_id: int | None) -> str:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise escape.Unsafe(f"queue {queue_id} does not exist")
        wait = str(int(queue.max_wait_seconds)) if queue.max_wait_seconds else ""
        return f"Gosub(pbx-queue,s,1({escape.ident(queue.name, 'queue name')},{wait}))"

    def voicemail(self, voicemail_id: int | None) -> str:
        box = self.mailbox(voicemail_id)
        if not box:
            raise escape.Unsafe(f"voicemail {voicemail_id} does not exist or is disabled")
        return f"VoiceMail({box},u)"

    def destination(self, dest: Destination) -> str:
        if dest.type == "user":
            return self.user(dest.id)
        if dest.type == "group":
            return self.group(dest.id)
        if dest.type == "queue":
            return self.queue(dest.id)
        if dest.type == "voicemail":
            return self.voicemail(dest.id)
        if dest.type == "number":
            if self.outcall_context is None:
                raise escape.Unsafe("no outcall context to dial a number through")
            return f"Goto({escape.ident(self.outcall_context)},{escape.dialable(dest.number)},1)"
        if dest.type == "hangup":
            return "Hangup()"
        raise escape.Unsafe(f"unknown destination type {dest.type!r}")

    def extension(self, ext: Extension) -> str:
        if ext.type == "user":
            return self.user(ext.user_id)
        if ext.type == "group":
            return self.group(ext.group_id)
        if ext.type == "queue":
            return self.queue(ext.queue_id)
        if ext.type == "voicemail":
            return self.voicemail(ext.voicemail_id)
        if ext.type == "service":
            if ext.service in SERVICES:
                return SERVICES[ext.service]
            if ext.service in ("dnd_toggle", "fwd_unconditional", "fwd_cancel"):
                return f"Gosub(pbx-service,s,1({ext.service},${{EXTEN}}))"
        raise escape.Unsafe(f"unknown extension type {ext.type!r}/{ext.service!r}")

    # -- blocks of lines

    def extension_lines(self, ext: Extension) -> list[str]:
        exten = escape.exten(ext.exten)
        lines = []
        if ext.type == "user" and not exten.startswith("_"):
            hint = self.interfaces(ext.user_id).replace("${PJSIP_DIAL_CONTACTS(", "PJSIP/").replace(")}", "")
            if hint:
                lines.append(f"exten => {exten},hint,{hint}")
        lines.append(f"exten => {exten},1,{self.extension(ext)}")
        lines.append(" same => n,Hangup()")
        return lines

    def incall_lines(self, incall: Incall) -> list[str]:
        did = escape.exten(incall.did, "DID")
        prefix = escape.dialplan_text(incall.callerid_name_prefix, 20)
        target = self.destination(incall.dest)
        context = escape.ident(incall.context, "incall context")
        lines = [f"exten => {did},1,Gosub(pbx-incall,s,1({prefix},${{EXTEN}},{context}))"]
        schedule = self.schedules.get(incall.schedule_id) if incall.schedule_id is not None else None
        if schedule is not None:
            tz = escape.timezone(schedule.timezone)
            # agid's answer first (pbx-schedule sets PBX_SCHEDULE); when it has none, the periods here.
            lines.append(f" same => n,Gosub(pbx-schedule,s,1({int(schedule.id)}))")
            lines.append(' same => n,GotoIf($["${PBX_SCHEDULE}" = "open"]?open)')
            lines.append(' same => n,GotoIf($["${PBX_SCHEDULE}" = "closed"]?closed)')
            for period in schedule.periods:
                days = "&".join(DAYS[d - 1] for d in period.weekdays if 1 <= d <= 7)
                if not days:
                    continue
                times = f"{period.start:%H:%M}-{last_minute(period.end):%H:%M}"
                lines.append(f" same => n,GotoIfTime({times},{days},*,*,{tz}?open)")
            lines.append(f" same => n(closed),{self.destination(schedule.closed)}")
            lines.append(" same => n,Hangup()")
            lines.append(f" same => n(open),{target}")
        else:
            lines.append(f" same => n,{target}")
        lines.append(" same => n,Hangup()")
        return lines

    def outcall_lines(self, outcall: Outcall) -> list[list[str]]:
        context = escape.ident(outcall.context, "outcall context")
        trunks = [escape.ident(t, "trunk name") for t in outcall.trunks]
        if not trunks:
            raise escape.Unsafe("no trunk")
        blocks = []
        for pat in outcall.patterns:
            try:
                pattern = escape.exten(pat.pattern, "pattern")
                prefix = escape.prefix(pat.prefix or "")
                strip = max(0, min(int(pat.strip), 20))
                number = f"{prefix}${{EXTEN:{strip}}}" if strip else f"{prefix}${{EXTEN}}"
                callerid = escape.dialable(pat.callerid, "caller ID") if pat.callerid else ""
                ring = str(int(outcall.ring_seconds))
                args = ",".join([number, ring, callerid, "${EXTEN}", context, *trunks])
                blocks.append([f"exten => {pattern},1,Gosub(pbx-outcall,s,1({args}))", " same => n,Hangup()"])
            except escape.Unsafe as exc:
                self.ctx.skip(f"outcall {outcall.name!r} pattern {pat.pattern!r}", exc)
        return blocks


def last_minute(end: time) -> time:
    """The last minute of a period ending at ``end``: agid's periods end before ``end`` (start <= t < end),
    while an Asterisk time range includes its end minute (08:30-12:00 is open until 12:00:59). 24:00, stored
    as time.max, ends at 23:59 either way."""
    if end == time.max:
        return time(23, 59)
    minutes = end.hour * 60 + end.minute - 1
    return time(max(0, minutes) // 60, max(0, minutes) % 60)


def generate(snap: Snapshot, ctx: Context) -> str:
    agid = agid_url(ctx)  # a bad setting fails the file (last good copy), never a wrong address
    plan = _Dialplan(snap, ctx)
    body: dict[str, list[str]] = {}
    includes: dict[str, list[str]] = {}
    for context in snap.contexts:
        try:
            out = ConfWriter()
            out.section(escape.ident(context.name, "context name"))
        except escape.Unsafe as exc:
            ctx.skip(f"context {context.name!r}", exc)
            continue
        body[context.name] = []
        includes[context.name] = []
        for name in context.includes:
            try:
                includes[context.name].append(f"include => {escape.ident(name, 'included context')}")
            except escape.Unsafe as exc:
                ctx.skip(f"include {name!r} of context {context.name!r}", exc)

    def add(context: str, what: str, make) -> None:
        if context not in body:
            ctx.skip(what, escape.Unsafe(f"context {context!r} is not generated"))
            return
        try:
            body[context].extend(make())
        except (escape.Unsafe, ValueError, TypeError) as exc:
            ctx.skip(what, exc)

    for ext in snap.extensions:
        add(
            ext.context, f"extension {ext.exten!r}@{ext.context!r}", lambda ext=ext: plan.extension_lines(ext)
        )
    for incall in snap.incalls:
        add(
            incall.context, f"incall {incall.did!r}@{incall.context!r}", lambda i=incall: plan.incall_lines(i)
        )
    for outcall in snap.outcalls:

        def outcall_block(o: Outcall = outcall) -> list[str]:
            return [line for block in plan.outcall_lines(o) for line in block]

        add(outcall.context, f"outcall {outcall.name!r}", outcall_block)

    out = ConfWriter("generated by confgend from the PBX database: do not edit", compact=True)
    out.raw_section("general")
    # clearglobalvars=no: a reload clears the globals before it reads the file (the #exec of pbx-confgen),
    # and a call meanwhile would find PBX_MAX_FORWARDS empty (no loop guard); the values written below
    # replace the old ones instead.
    out.options(
        [("static", "yes"), ("writeprotect", "yes"), ("clearglobalvars", "no"), ("autofallthrough", "yes")]
    )
    out.raw_section("globals")
    out.option("PBX_MAX_FORWARDS", MAX_FORWARDS)
    for name in body:
        out.raw_section(name)
        out.extend(includes[name])
        out.extend(body[name])
    return out.render() + "\n" + library(agid)
