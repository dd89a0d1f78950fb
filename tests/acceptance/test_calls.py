"""A real call on the running appliance, and Asterisk's log clean since boot.

Two users are added with `pbx-admin` on the target (their SIP secrets printed once, as an administrator
sees them); two SIP phones (harness.sipagent with pjsua2, copied to the target and driven over ssh:
conftest.TargetSipPhones) register their lines to the target's own Asterisk at 127.0.0.1:5060, and one
calls the other through the generated dialplan and agid: the callee rings and shows who calls, the caller
hears ringback, the callee answers, each hears the other's tone, the caller hangs up with cause 16.
Then Asterisk's journal and messages.log must hold no error since boot (TOLERATED_ERRORS apart).

Only running targets: on `make acceptance` these tests are not generated for the chroot target. This
module runs after the others (conftest.py), which check the target as it booted; its users are deleted
at its end.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from harness.sipphone import TONES

pytestmark = pytest.mark.running

NORMAL_CLEARING = 16
SECRETS = "/etc/pbx/secrets"
EXTENS = range(8900, 9000)  # the test users' extensions: the first two free ones
USERS = (("Acceptance", "Caller"), ("Acceptance", "Callee"))
LIVE_TIMEOUT = 90.0  # from `pbx-admin user add` to the line in Asterisk (confgend follows the bus)
AVAILABLE_TIMEOUT = 60.0  # from the REGISTER to the contact qualified (Avail)
CALL_TIMEOUT = 20.0  # each step of the call (ringing, answer, hangup) on a VM under TCG
# Asterisk's errors that are tolerated, each with its reason: regex -> why.
FIRST_BOOT = (
    "at the appliance's first boot Asterisk starts before pbx-firstboot has set up the database and "
    "confgend, when the confgen client has no last good copy of any file yet (later, with confgend down, it "
    "prints that copy and says so in a warning); pbx-firstboot restarts Asterisk once confgend answers "
    "(roles/pbx/templates/pbx-firstboot.j2)"
)
TOLERATED_ERRORS = {
    r"#exec </usr/bin/pbx-confgen (asterisk/\S+)>: pbx-confgen: \1: cannot connect to confgend .*; "
    r"no local copy, nothing printed$": FIRST_BOOT,
}
# An #exec stub's failure ends with this line: tolerated right after a tolerated error of the same stub.
EXEC = re.compile(r"#exec </usr/bin/pbx-confgen (asterisk/\S+)>")
EXEC_EXIT = "Exited with return value 1"
# An error in Asterisk's own format ("ERROR[1234]", in messages.log and on the console) or a program's
# "name: error: ..." on stderr (the #exec stubs' confgen client).
ERROR = re.compile(r"\bERROR\[\d+\]|\berror:", re.I)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")  # messages.log's dateformat %F %T.%3q


@dataclass(frozen=True)
class User:
    id: int
    name: str
    exten: str
    line: str
    sip_username: str
    sip_secret: str = field(repr=False)  # printed once by pbx-admin: kept out of reports
    added: float = 0.0  # time.monotonic() when pbx-admin had added it


def sh(host, command: str) -> str:
    """Run on the target; fail with its output unless it succeeds."""
    result = host.run(command)
    assert result.rc == 0, f"{command!r} exited with {result.rc}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def asterisk(host, command: str) -> str:
    return sh(host, f"asterisk -rx {shlex.quote(command)}")


def wait_until(what: str, check, timeout: float, interval: float = 1.0, explain=None):
    """``check()`` returns (done, what was seen): waits until done, at most ``timeout`` s, else fails naming
    ``what``, the last thing seen and ``explain()`` (e.g. the log of the daemon that should have acted)."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = check()
        if done:
            return
        if time.monotonic() > deadline:
            more = f"\n{explain()}" if explain else ""
            pytest.fail(f"waited {timeout:g} s for {what}; last seen:\n{seen}{more}")
        time.sleep(interval)


def journal(host, unit: str, lines: int = 30, records_only: bool = False) -> str:
    """The end of ``unit``'s journal since boot; ``records_only``: only the first line of each of our
    daemons' records ("name[pid]: LEVEL logger: ..."), not the tracebacks under them."""
    command = f"journalctl -b -q --no-pager -u {unit} -o short-monotonic"
    if records_only:
        command += " | grep -E '\\]: (DEBUG|INFO|WARNING|ERROR|CRITICAL) '"
    output = host.run(f"{command} | tail -n {lines}").stdout
    kind = "records" if records_only else "lines"
    return f"--- the last {lines} {kind} of {unit}'s journal ---\n{output}"


# --- the users, and their lines in Asterisk ---


@pytest.fixture(scope="module")
def users(running_host) -> Iterator[list[User]]:
    """Two users added with pbx-admin on free extensions, each with a new line; deleted afterwards."""
    host = running_host
    taken = set(
        sh(host, f'psql "$(cat {SECRETS}/pbx_writer.dsn)" -XAtq -c "SELECT exten FROM extensions"').split()
    )
    free = [str(e) for e in EXTENS if str(e) not in taken][: len(USERS)]
    assert len(free) == len(USERS), f"no {len(USERS)} free extensions in {EXTENS}"
    created: list[User] = []
    try:
        for (first, last), exten in zip(USERS, free, strict=True):
            out = json.loads(
                sh(host, f"pbx-admin --json user add --firstname {first} --lastname {last} --exten {exten}")
            )
            assert out.get("sip_secret") and out.get("line"), f"pbx-admin printed no line or secret: {out}"
            created.append(
                User(
                    out["id"],
                    f"{first} {last}",
                    out["exten"],
                    out["line"],
                    out["sip_username"],
                    out["sip_secret"],
                    time.monotonic(),
                )
            )
        yield created
    finally:
        for user in created:
            sh(host, f"pbx-admin user delete {user.id}")


def endpoints(host) -> str:
    return asterisk(host, "pjsip show endpoints")


def endpoint_state(text: str, line: str) -> tuple[str | None, list[str]]:
    """From `pjsip show endpoints`: the endpoint's device state ("Not in use", "Unavailable"...) and the
    statuses of its AOR's contacts ("Avail", "NonQual", "Unknown"...); (None, []) when it is not listed."""
    name = re.escape(line)
    state = re.search(rf"^\s*Endpoint:\s+{name}(?:/\S*)?\s+(\S.*?)\s+\d+ of (?:inf|\d+)\s*$", text, re.M)
    contacts = re.findall(
        rf"^\s*Contact:\s+{name}/\S+\s+(?:\S+\s+)?(Avail|Unavail|NonQual|Unknown)\b", text, re.M
    )
    return (state.group(1) if state else None), contacts


def test_asterisk_runs_every_pjsip_module_of_modules_conf(running_host):
    """modules.conf comes from confgend (autoload = no): each pjsip module it loads is running."""
    host = running_host
    wanted = re.findall(
        r"^load\s*=>?\s*(\S*pjsip\S*\.so)\s*$", sh(host, "pbx-confgen asterisk/modules.conf"), re.M
    )
    assert {"res_pjsip.so", "chan_pjsip.so", "res_pjsip_registrar.so"} <= set(wanted), wanted
    shown = asterisk(host, "module show like pjsip")
    status = dict(re.findall(r"^(\S+\.so)\s.*?\s(Running|Not Running|Declined|Unknown)\s", shown, re.M))
    not_running = {m: status.get(m, "not loaded") for m in wanted if status.get(m) != "Running"}
    assert not not_running, f"pjsip modules of modules.conf not running: {not_running}\n{shown}"


@pytest.fixture(scope="module")
def lines_in_asterisk(running_host, users) -> float:
    """Waits until Asterisk lists both new lines (confgend follows the bus, regenerates pjsip.conf and has
    Asterisk reload it over AMI); the seconds since `pbx-admin user add`. Once failed, it fails every test
    that uses it at once."""
    host = running_host
    for user in users:

        def listed(user=user):
            text = endpoints(host)
            return endpoint_state(text, user.line)[0] is not None, text

        what = f"line {user.line} (user {user.exten}) in `pjsip show endpoints`"
        wait_until(
            what,
            listed,
            LIVE_TIMEOUT,
            2.0,
            explain=lambda: journal(host, "pbx-confgend.service", records_only=True),
        )
    return time.monotonic() - users[0].added


def test_new_users_lines_reach_asterisk_without_a_restart(running_host, lines_in_asterisk):
    seconds = lines_in_asterisk
    uptime = asterisk(running_host, "core show uptime seconds")
    found = re.search(r"System uptime:\s*(\d+)", uptime)
    assert found, uptime
    assert int(found.group(1)) > seconds, f"Asterisk restarted after the users were added: {uptime}"
    print(f"\nacceptance: the new lines were in Asterisk within {seconds:.1f} s of `pbx-admin user add`")


# --- the call ---


def test_call_between_two_new_users(running_host, users, lines_in_asterisk, target_phones):
    host = running_host
    caller_user, callee_user = users
    # each phone sends its own tone; TONES[0] and [1] as on the harness's first two phones
    caller = target_phones.register(
        caller_user.sip_username, caller_user.sip_secret, tone=TONES[0], timeout=CALL_TIMEOUT
    )
    callee = target_phones.register(
        callee_user.sip_username, callee_user.sip_secret, tone=TONES[1], timeout=CALL_TIMEOUT
    )

    # both lines available: registered, their contact qualified
    def available():
        text = endpoints(host)
        states = {u.line: endpoint_state(text, u.line) for u in users}
        return all(s == "Not in use" and "Avail" in c for s, c in states.values()), f"{states}\n{text}"

    wait_until(
        "both lines available (Not in use, contact Avail)",
        available,
        AVAILABLE_TIMEOUT,
        explain=lambda: journal(host, "asterisk.service"),
    )

    # the caller dials the callee's extension: it rings and shows who calls, the caller hears ringback
    caller.call(callee_user.exten)
    incoming = callee.wait_ringing(CALL_TIMEOUT)
    assert caller.wait_ringback(CALL_TIMEOUT) in (180, 183)
    shown = incoming.caller_id()
    assert (shown.name, shown.number) == (caller_user.name, caller_user.exten), shown

    # answered: each side hears the other's tone
    callee.answer()
    caller.wait_confirmed(CALL_TIMEOUT)
    caller.assert_hears(callee)
    callee.assert_hears(caller)

    # the caller hangs up: the callee gets a BYE with cause 16, normal clearing
    caller.hangup()
    ended = callee.wait_disconnected(CALL_TIMEOUT)
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended
    caller.wait_disconnected(CALL_TIMEOUT)


# --- Asterisk's log (last: the call's own lines are in it) ---


def test_asterisk_logged_no_error_since_boot(running_host):
    host = running_host
    boot = sh(host, "uptime -s").strip()  # local time, as Asterisk's log stamps
    errors: list[str] = []

    # the journal of its unit: systemd's messages about it, and Asterisk's stdout/stderr
    failed = sh(host, "journalctl -b -q --no-pager -p err -u asterisk.service -o short-monotonic")
    errors += [f"journal (priority err): {line}" for line in failed.splitlines() if line.strip()]
    output = sh(host, "journalctl -b -q --no-pager -u asterisk.service -o short-monotonic")
    errors += [f"journal: {line}" for line in output.splitlines() if ERROR.search(line)]

    # its own log file (logger.conf from confgend), since boot: a long-lived host keeps older lines
    log = "/var/log/asterisk/messages.log"
    if not host.file(log).exists:
        errors.append(f"{log} does not exist: Asterisk did not read confgend's logger.conf")
    else:
        stamp = ""
        for line in sh(host, f"cat {log}").splitlines():
            found = STAMP.match(line)
            stamp = found.group(1) if found else stamp  # a continuation line belongs to the line above
            if stamp >= boot and ERROR.search(line):
                errors.append(f"messages.log: {line}")

    left = not_tolerated(errors)
    assert not left, f"Asterisk logged errors since boot ({boot}):\n" + "\n".join(left)


def not_tolerated(errors: list[str]) -> list[str]:
    """The errors that TOLERATED_ERRORS does not excuse (nor the exit status line that follows an excused
    #exec stub's error)."""
    left: list[str] = []
    excused: set[str] = set()  # stubs whose error was excused: their exit status line comes next
    for line in errors:
        stub = EXEC.search(line)
        if any(re.search(rx, line) for rx in TOLERATED_ERRORS):
            if stub:
                excused.add(stub.group(1))
        elif stub and stub.group(1) in excused and line.rstrip().endswith(EXEC_EXIT):
            excused.discard(stub.group(1))
        else:
            left.append(line)
    return left
