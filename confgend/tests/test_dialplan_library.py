"""The static dialplan library: it passes asterisklint on its own, every agid call it makes has a fallback
that still completes the call, it reads only variables agid sets, and modules.conf loads what it uses.

The fallback check walks the dialplan like Asterisk would, following both branches of every GotoIf: from
the branch taken when AGID_STATUS is not OK, no path may reach Hangup(), Busy() or the end of the
extension (autofallthrough hangs up), and every path must reach Return() after the static default."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from confgend import escape
from confgend.generators import GENERATORS, extensions
from confgend.generators.base import Context
from confgend.generators.modules import MODULES
from testkit.confgend import dataset
from testkit.confgend.astconf import parse
from testkit.confgend.dataset import make_context

ASTERISKLINT = Path(sys.executable).parent / "asterisklint"
AGID_HANDLERS = Path(__file__).resolve().parents[2] / "agid/agid/handlers"
REQUIRED_HANDLERS = {
    "incoming_user",
    "reverse_lookup",
    "incoming_did",
    "outgoing_user",
    "incoming_queue",
    "check_schedule",
}
NOT_IN_AGID_YET = {"service"}  # pbx-service: documented, answers with an error beep for now
AGI = re.compile(r"AGI\(agi://127\.0\.0\.1:4573/([a-z_]+)")
FAILURE_BRANCH = re.compile(r'^\$\["\$\{AGID_STATUS\}" != "OK"\]\?([a-z]+)$')
ENDS_A_CALL = {"Hangup", "Busy", "Congestion"}


@dataclass
class Step:
    label: str | None
    app: str
    args: str


def contexts(text: str) -> dict[str, list[Step]]:
    """context -> the priorities of its single extension (the library has one per context)."""
    out: dict[str, list[Step]] = {}
    for section in parse(text).sections:
        steps: list[Step] = []
        for key, value in section.items:
            if key == "exten":
                _, priority, command = value.split(",", 2)
                assert not steps, f"{section.name}: one extension per library context"
            else:
                assert key == "same", (section.name, key)
                priority, command = value.split(",", 1)
            label = priority[2:-1] if priority.startswith("n(") else None
            app, _, args = command.partition("(")
            steps.append(Step(label, app, args[:-1]))
        out[section.name] = steps
    return out


def walk(steps: list[Step], start: int) -> tuple[set[int], list[str]]:
    """Every priority reachable from `start` (both branches of each GotoIf), and what ends a path badly."""
    labels = {s.label: i for i, s in enumerate(steps) if s.label}
    seen: set[int] = set()
    bad: list[str] = []
    todo = [start]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        if i >= len(steps):
            bad.append("falls off the end of the extension (autofallthrough hangs up)")
            continue
        seen.add(i)
        step = steps[i]
        if step.app in ENDS_A_CALL:
            bad.append(f"reaches {step.app}({step.args})")
        elif step.app == "Return":
            continue
        elif step.app == "Goto":
            todo.append(labels[step.args])
        elif step.app == "GotoIf":
            branches = step.args.rsplit("?", 1)[1]
            yes, _, no = branches.partition(":")
            todo.append(labels[yes])
            todo.append(labels[no] if no else i + 1)
        else:
            todo.append(i + 1)
    return seen, bad


@pytest.fixture(scope="module")
def library() -> dict[str, list[Step]]:
    return contexts(extensions.library())


# What the static default of each context must do when agid fails: ring, queue, dial out...
STATIC_DEFAULT = {
    "pbx-user": [("Set", "PBX_DIAL=${ARG2}"), ("Dial", "${PBX_DIAL},${PBX_RING},${PBX_DIAL_OPTIONS}")],
    "pbx-queue": [("Queue", "${ARG1},t,,,${PBX_QUEUE_WAIT}")],
    "pbx-outcall": [("Dial", "PJSIP/${ARG1}@${PBX_TRUNK},${ARG2}")],
    "pbx-incall": [("Set", "CALLERID(name)=${PBX_PREFIX}${CALLERID(name)}")],
    "pbx-schedule": [],  # PBX_SCHEDULE stays empty: the generated GotoIfTime decide
    "pbx-service": [("Playback", "beeperr")],
}


def test_every_agid_call_has_a_fallback_that_completes_the_call(library) -> None:
    handlers = set()
    for name, steps in library.items():
        for i, step in enumerate(steps):
            if step.app != "AGI":
                continue
            handler = AGI.match(f"AGI({step.args}")
            assert handler, (name, step.args)
            handlers.add(handler.group(1))
            # AGID_STATUS is cleared before the call: a value left by an earlier AGI() cannot pass for OK
            assert (steps[i - 1].app, steps[i - 1].args) == ("Set", "AGID_STATUS="), (name, i)
            # ... and tested right after it
            after = steps[i + 1]
            branch = FAILURE_BRANCH.match(after.args) if after.app == "GotoIf" else None
            assert branch, f"{name}: AGI({step.args}) is not followed by a test of AGID_STATUS"
            start = next(j for j, s in enumerate(steps) if s.label == branch.group(1))
            reached, bad = walk(steps, start)
            assert bad == [], f"{name}: when {handler.group(1)} fails the call {bad}"
            apps = {(steps[j].app, steps[j].args) for j in reached}
            for needed in STATIC_DEFAULT[name]:
                assert needed in apps, f"{name}: the fallback of {handler.group(1)} never does {needed}"
    assert handlers >= REQUIRED_HANDLERS


def test_the_walker_sees_a_hangup_on_failure() -> None:
    """The check above can fail: a library that hangs up when agid fails is caught."""
    bad_library = (
        "[pbx-x]\nexten => s,1,Set(AGID_STATUS=)\n same => n,AGI(agi://127.0.0.1:4573/incoming_user)\n"
        ' same => n,GotoIf($["${AGID_STATUS}" != "OK"]?failed)\n same => n,Return()\n'
        " same => n(failed),Hangup()\n"
    )
    steps = contexts(bad_library)["pbx-x"]
    assert walk(steps, 4)[1] == ["reaches Hangup()"]
    assert walk(contexts(bad_library.replace(" same => n,Return()\n", ""))["pbx-x"], 3)[1]


def test_the_library_calls_only_handlers_agid_has_and_reads_only_what_they_set(library) -> None:
    from agid.handlers import HANDLERS

    text = extensions.library()
    called = set(AGI.findall(text))
    assert called - set(HANDLERS) == NOT_IN_AGID_YET
    agid_source = "\n".join(p.read_text() for p in AGID_HANDLERS.glob("*.py"))
    read = set(re.findall(r"\$\{(AGID_[A-Z0-9_]+)", text)) - {"AGID_STATUS"}
    assert read, "the library reads agid's decisions"
    unknown = sorted(name for name in read if name not in agid_source)
    assert unknown == [], f"variables no agid handler sets: {unknown}"


def test_the_static_library_alone_passes_asterisklint(tmp_path: Path) -> None:
    assert ASTERISKLINT.exists(), f"{ASTERISKLINT} is missing: make deps installs it (requirements-dev.txt)"
    path = tmp_path / "extensions.conf"
    path.write_text("[general]\nstatic=yes\nwriteprotect=yes\n\n[globals]\n\n" + extensions.library())
    proc = subprocess.run(
        [str(ASTERISKLINT), "dialplan-check", str(path)], capture_output=True, text=True, timeout=60
    )
    report = proc.stdout + proc.stderr
    assert [line for line in report.splitlines() if " E_" in line or " W_" in line] == [], report
    assert "Traceback" not in report, report


def test_agid_address_is_configurable() -> None:
    ctx = Context({"agid": {"host": "10.0.0.7", "port": 4600}})
    out = GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), ctx)
    assert "agi://127.0.0.1:4573/" not in out
    assert out.count("AGI(agi://10.0.0.7:4600/") == extensions.library().count("AGI(agi://")
    for bad in ({"port": "4573;x"}, {"port": 0}, {"host": "a b"}, {"host": "x\n[evil]"}, {"host": "h:1"}):
        with pytest.raises(escape.Unsafe):
            GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), Context({"agid": bad}))


# The module of every application and function the dialplan uses ("core": built into Asterisk).
APP_MODULES = {
    "Set": "core", "Goto": "core", "GotoIf": "core", "GotoIfTime": "core", "Answer": "core",
    "Hangup": "core", "Busy": "core", "Gosub": "app_stack.so", "Return": "app_stack.so",
    "AGI": "res_agi.so", "Dial": "app_dial.so", "Queue": "app_queue.so", "VoiceMail": "app_voicemail.so",
    "VoiceMailMain": "app_voicemail.so", "Playback": "app_playback.so", "Echo": "app_echo.so",
    "AgentRequest": "app_agent_pool.so", "AgentLogin": "app_agent_pool.so", "ExecIf": "core",
}  # fmt: skip
FUNCTION_MODULES = {
    "CALLERID": "func_callerid.so",
    "PJSIP_DIAL_CONTACTS": "chan_pjsip.so",
    "PJSIP_ENDPOINT": "func_pjsip_endpoint.so",  # pbx-originated: the line's own caller ID
    "GROUP": "func_groupcount.so",  # set and counted by agid's incoming_user
    "GROUP_COUNT": "func_groupcount.so",
    "QUEUE_WAITING_COUNT": "app_queue.so",  # read by agid's incoming_queue
    "CHANNEL": "func_channel.so",
    "LISTFILTER": "func_strings.so",
    "IF": "func_logic.so",
}


def test_modules_conf_loads_what_the_dialplan_uses(tmp_path: Path) -> None:

    ctx = make_context(tmp_path)
    dialplan = GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), ctx)
    modules_conf = parse(GENERATORS["asterisk/modules.conf"].generate(dataset.snapshot(), ctx))
    loaded = {value for key, value in modules_conf.sections[0].items if key == "load"}
    commands = "\n".join(
        value for s in parse(dialplan).sections for key, value in s.items if key in ("exten", "same")
    )
    apps = set(re.findall(r"(?:,|\?|^)([A-Z][A-Za-z]+)\(", commands, re.M))
    assert apps - set(APP_MODULES) == set(), "add the module of these applications to APP_MODULES"
    used_by_agid = {"GROUP", "GROUP_COUNT", "QUEUE_WAITING_COUNT"}
    functions = set(re.findall(r"\$\{([A-Z_]+)\(", dialplan)) | used_by_agid
    assert functions - set(FUNCTION_MODULES) == set(), "add the module of these functions"
    needed = {APP_MODULES[a] for a in apps} | {FUNCTION_MODULES[f] for f in functions}
    assert needed - {"core"} - loaded == set()
    sip_and_media = {
        "res_pjsip.so", "chan_pjsip.so", "res_pjsip_authenticator_digest.so", "res_pjsip_registrar.so",
        "res_pjsip_outbound_registration.so", "res_pjsip_endpoint_identifier_ip.so",
        "res_pjsip_endpoint_identifier_user.so", "res_musiconhold.so", "codec_alaw.so", "codec_ulaw.so",
        "format_wav_gsm.so", "pbx_config.so", "app_mixmonitor.so",
    }  # fmt: skip
    assert sip_and_media <= loaded and set(MODULES) <= loaded


def test_the_any_mailbox_code_asks_which_mailbox(library, tmp_path: Path) -> None:
    """*99 (voicemail_any) asks for the mailbox; only the caller's-own code goes straight to one."""

    dialplan = GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), make_context(tmp_path))
    assert "exten => *99,1,Gosub(pbx-voicemail-any,s,1)" in dialplan
    apps = [(step.app, step.args) for step in library["pbx-voicemail-any"]]
    assert ("VoiceMailMain", "") in apps
    assert not any("PBX_MAILBOX" in args for _app, args in apps)


def test_each_feature_code_goes_to_the_subroutine_named_for_it(library, tmp_path: Path) -> None:
    """Every service the database accepts reaches the library context named for it (`voicemail_any` ->
    `pbx-voicemail-any`), or pbx-service with its name for the codes agid is to carry out; each target
    exists in the library."""
    from confdb.validation import SERVICES as ACCEPTED

    dialplan = GENERATORS["asterisk/extensions.conf"].generate(dataset.snapshot(), make_context(tmp_path))
    generated = {
        ext.service: value.split(",", 2)[2]
        for ext in dataset.snapshot().extensions
        if ext.type == "service"
        for section in parse(dialplan).sections
        if section.name == ext.context
        for key, value in section.items
        if key == "exten" and value.startswith(f"{ext.exten},1,")
    }
    assert set(generated) == ACCEPTED, "the dataset has one code per service"
    for service, command in generated.items():
        own = "pbx-" + service.replace("_", "-")
        if own in library:
            assert command == f"Gosub({own},s,1)", service
        else:
            assert command == f"Gosub(pbx-service,s,1({service},${{EXTEN}}))", service
            assert "pbx-service" in library
    assert {"pbx-voicemail-own", "pbx-voicemail-any", "pbx-echo"} <= set(library)


def test_a_call_dialled_through_cti_shows_the_line_not_the_number_dialled(library) -> None:
    """ctid's Originate gives the user's channel the number dialled as caller ID (what the user's phone
    shows while it rings first); every context that calls someone gives it back the line's own first."""
    for name in ("pbx-user", "pbx-group", "pbx-queue", "pbx-outcall"):
        first = library[name][0]
        assert (first.app, first.args) == ("Gosub", "pbx-originated,s,1"), name
    steps = library["pbx-originated"]
    assert (steps[0].app, steps[0].args) == ("GotoIf", '$["${CTID_USER}" = ""]?done')
    assert ("Set", "CALLERID(all)=${PJSIP_ENDPOINT(${CHANNEL(endpoint)},callerid)}") in [
        (s.app, s.args) for s in steps
    ]
    assert walk(steps, 0)[1] == []
