"""Real calls through our Asterisk: call setup latency with agid and without it (``calls.setup``), and how
soon a user added live registers (``config.live_change``).

Both run the whole PBX of the call tests (harness.fullpbx: the demo company, pbx-event-relay, agid,
confgend, ctid and our Asterisk on loopback ports), started once per run and shared. The calls are made
by SIPp (Debian's ``sip-tester``, /usr/bin/sipp): one SIPp is the callees' phones (it registers their
lines, then rings and answers every INVITE at once), another places the calls at a fixed rate from the
callers' lines (digest-authenticated INVITE, ringing, answer, 200 ms of call, BYE); each call is timed
from its first INVITE to the 180 Ringing in SIPp's message trace (microseconds). pjsua2 phones
(harness.sipphone) are one Python process each, pump their events every 10 ms and start calls through a
pipe: too slow and too coarse for 20 calls/s measured to the millisecond, which is what SIPp is made for.

``CALLS_BENCH_SECONDS`` (default 4) sets how long each rate is held; the goal rate is held at least 10 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from support import REPO, Env, result

RATES = (5, 10, 20, 40)  # calls per second, each held SECONDS
GOAL_RATE = 20
GOAL_ADDED_P99_MS = 5.0  # agid adds at most this to the p99 of the setup at GOAL_RATE
LIVE_GOAL_S = 2.0
CONFGEND_MIN_INTERVAL = 2.0  # bus.min_interval: a change within 2 s of the previous round waits for it
SECONDS = float(os.environ.get("CALLS_BENCH_SECONDS", "4"))
GOAL_SECONDS = 10.0  # the goal rate is held longer: its p99 is then the 3rd slowest of 200 calls, not the max
PAIRS = 20  # callers and callees: each callee gets a call every PAIRS / rate seconds
DEMO_USERS = 60
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
STATIC_PREFIX = "s"  # s1002: a plain Dial of 1002's line, no agid, no library (the reference)

_CALLEE_REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="the callees' phones: register each line, then stay (their calls: the out-of-call scenario)">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]R[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]R[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      [field1]
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="3600000"/>
</scenario>
"""

_CALLEE_ANSWER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a callee's phone: rings and answers at once">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

_INVITE = """
      INVITE sip:[field2]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]C[call_number]
      To: <sip:[field2]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE
      {auth}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
"""

_CALLER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a call: INVITE (challenged), ringing, answer, 200 ms, BYE; setup = first INVITE to 180">
  <send retrans="500" start_rtd="setup">
    <![CDATA[{_INVITE.format(cseq=1, auth="")}    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send>
    <![CDATA[
      ACK sip:[field2]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[{_INVITE.format(cseq=2, auth="[field1]")}    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="180" rtd="setup"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [routes]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [routes]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


# -- the shared PBX -----------------------------------------------------------------------------------


def _pbx(env: Env) -> Any:
    """The whole PBX of this run, started on first use and stopped by env.close()."""
    pbx = getattr(env, "_calls_pbx", None)
    if pbx is None:
        from harness.fullpbx import FullPbx

        base = Path(tempfile.mkdtemp(prefix="pbx-bench-full-"))  # short: Asterisk's CLI socket is in it
        pbx = FullPbx(base, env.pbx_database(), env.rabbitmq.url, demo_users=DEMO_USERS)
        env.on_close(lambda: (pbx.stop(), shutil.rmtree(base, ignore_errors=True)))
        pbx.start(timeout=60)
        env._calls_pbx = pbx  # type: ignore[attr-defined]
    return pbx


def _single_line_users(pbx: Any) -> list[Any]:
    """Demo users with a line of their own and no second one (a callee's call rings exactly one phone)."""
    import csv

    with pbx.credentials_file.open(newline="") as rows:
        entries = list(csv.DictReader(rows))
    lines: dict[str, int] = {}
    extens: dict[str, int] = {}
    for row in entries:
        lines[row["line"]] = lines.get(row["line"], 0) + 1
        extens[row["exten"]] = extens.get(row["exten"], 0) + 1
    return [
        user
        for exten, user in sorted(pbx.users.items())
        if lines[user.line] == 1 and extens[exten] == 1 and user.line == user.sip_username
    ]


def _auth(user: Any) -> str:
    return f"[authentication username={user.sip_username} password={user.sip_secret}]"


# -- calls.setup ----------------------------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _free_udp() -> int:
    from harness.ports import free_port

    return free_port(udp=True)


def _wait_contacts(pbx: Any, port: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = pbx.asterisk.cli("pjsip show contacts")
        ready = [line for line in shown.splitlines() if f"@127.0.0.1:{port} " in line and " Avail " in line]
        if len(ready) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the callees' {count} lines not registered and reachable within {timeout:g} s:\n{shown}"
    )


def _place_calls(workdir: Path, pbx: Any, callers_csv: Path, rate: int, calls: int) -> dict[str, Any]:
    """One SIPp run: ``calls`` calls at ``rate``/s; setup times (ms) and the failed calls."""
    host, port = pbx.sip
    stats = workdir / f"stats-{callers_csv.stem}-{rate}.csv"
    argv = [SIPP, f"{host}:{port}", "-sf", str(workdir / "caller.xml"), "-inf", str(callers_csv)]
    argv += ["-r", str(rate), "-m", str(calls), "-i", "127.0.0.1", "-p", str(_free_udp())]
    argv += ["-mp", str(_free_udp()), "-recv_timeout", "5000", "-timeout", f"{int(calls / rate) + 30}s"]
    argv += ["-trace_shortmsg", "-trace_stat", "-stf", str(stats), "-fd", "3600", "-aa"]
    argv += ["-timer_resol", "1", "-trace_err", "-nostdin"]  # SIPp's clock by default ticks every 10 ms
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, err = proc.communicate(timeout=calls / rate + 60)
    setup = _setup_times(workdir / f"caller_{proc.pid}_shortmessages.log")
    header, *rows = [line.split(";") for line in stats.read_text().splitlines() if line.strip()]
    last = dict(zip(header, rows[-1], strict=False))
    ok, failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
    if proc.returncode not in (0, 1) or ok + failed != calls:
        raise RuntimeError(
            f"sipp at {rate} calls/s exited with {proc.returncode} ({ok} ok, {failed} failed of {calls}): "
            f"{err.decode(errors='replace')[-1500:]}"
        )
    errors = workdir / f"caller_{proc.pid}_errors.log"
    why = ""
    if (
        failed and errors.exists()
    ):  # the first reason SIPp gives, e.g. "while expecting '180' ... received ..."
        found = [line for line in errors.read_text(errors="replace").splitlines() if "call" in line.lower()]
        why = found[0].split(": ", 1)[-1][:240] if found else ""
    return {"setup_ms": setup, "ok": ok, "failed": failed, "first_error": why}


def _setup_times(trace: Path) -> list[float]:
    """Per call (Call-ID), ms from its first INVITE sent to its first 180 received, from SIPp's short
    message trace (date, time, epoch seconds with microseconds, S/R, Call-ID, CSeq, first line). SIPp's
    own response time counter moves in steps of 4 ms here: too coarse for a 5 ms goal."""
    sent: dict[str, float] = {}
    rang: dict[str, float] = {}
    for line in trace.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 7:
            continue
        at, way, call, first = float(fields[2]), fields[3], fields[4], fields[6]
        if way == "S" and first.startswith("INVITE ") and call not in sent:
            sent[call] = at
        elif way == "R" and first.startswith("SIP/2.0 180 ") and call in sent and call not in rang:
            rang[call] = at
    return [(rang[call] - sent[call]) * 1000 for call in rang]


def setup(env: Env) -> list[dict[str, Any]]:
    """Calls 1xxx -> 1yyy through the generated dialplan (agid's incoming_user, the library's Dial) at
    rising rates; the same calls to s1yyy, a plain Dial of the callee's line added to the callers'
    context (no agid, no library), right after each rate as the reference."""
    if not os.access(SIPP, os.X_OK):
        raise RuntimeError(f"{SIPP} not found: apt-get install sip-tester (the Makefile's apt packages)")
    pbx = _pbx(env)
    users = _single_line_users(pbx)
    if len(users) < 2 * PAIRS:
        raise RuntimeError(f"only {len(users)} demo users with a line of their own; {2 * PAIRS} needed")
    callers, callees = users[:PAIRS], users[PAIRS : 2 * PAIRS]
    workdir = Path(tempfile.mkdtemp(prefix="calls-setup-", dir=env.scratch))
    for name, text in (
        ("caller.xml", _CALLER),
        ("register.xml", _CALLEE_REGISTER),
        ("answer.xml", _CALLEE_ANSWER),
    ):
        (workdir / name).write_text(text)
    (workdir / "callees.csv").write_text("SEQUENTIAL\n" + "".join(f"{u.line};{_auth(u)}\n" for u in callees))
    for path, prefix in (("agid", ""), ("static", STATIC_PREFIX)):
        rows = [f"{a.line};{_auth(a)};{prefix}{b.exten}\n" for a, b in zip(callers, callees, strict=True)]
        (workdir / f"{path}.csv").write_text("SEQUENTIAL\n" + "".join(rows))
    for callee in callees:  # into "internal", the demo users' context, where their calls are looked up
        exten = f"{STATIC_PREFIX}{callee.exten},1,Dial,PJSIP/{callee.line}"
        pbx.asterisk.cli(f"dialplan add extension {exten} into internal replace")

    port = _free_udp()
    phones = subprocess.Popen(
        [SIPP, "{}:{}".format(*pbx.sip), "-sf", str(workdir / "register.xml"),
         "-oocsf", str(workdir / "answer.xml"), "-inf", str(workdir / "callees.csv"), "-m", str(len(callees)),
         "-aa", "-i", "127.0.0.1", "-p", str(port), "-mp", str(_free_udp()), "-timer_resol", "1",
         "-trace_err", "-nostdin"],
        cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        _wait_contacts(pbx, port, len(callees), 30.0)
        for path in ("agid", "static"):  # warm-up: first calls pay caches and connections
            _place_calls(workdir, pbx, workdir / f"{path}.csv", 5, 10)
        for rate in RATES:
            calls = int(rate * (max(SECONDS, GOAL_SECONDS) if rate == GOAL_RATE else SECONDS))
            runs[rate] = {path: _place_calls(workdir, pbx, workdir / f"{path}.csv", rate, calls)
                          for path in ("agid", "static")}  # fmt: skip
    finally:
        phones.terminate()
        try:
            phones.wait(10)
        except subprocess.TimeoutExpired:
            phones.kill()

    table: dict[str, dict[str, Any]] = {}
    for rate, paths in runs.items():
        table[str(rate)] = {
            path: {
                "p50_ms": round(_percentile(run["setup_ms"], 0.50), 1) if run["setup_ms"] else None,
                "p99_ms": round(_percentile(run["setup_ms"], 0.99), 1) if run["setup_ms"] else None,
                "calls": run["ok"] + run["failed"],
                "failed": run["failed"],
                **({"first_error": run["first_error"]} if run["failed"] else {}),
            }
            for path, run in paths.items()
        }
    best = {
        path: max((rate for rate in runs if runs[rate][path]["failed"] == 0), default=0)
        for path in ("agid", "static")
    }
    at_goal = table[str(GOAL_RATE)]
    p99, reference = at_goal["agid"]["p99_ms"], at_goal["static"]["p99_ms"]
    added = p99 - reference
    common = {
        "rates": table,
        "seconds_per_rate": SECONDS,
        "goal_rate_seconds": max(SECONDS, GOAL_SECONDS),
        "pairs": PAIRS,
    }
    return [
        result(
            "calls.setup",
            p99,
            f"ms p99 INVITE to 180 at {GOAL_RATE} calls/s",
            reference,
            round(reference + GOAL_ADDED_P99_MS, 1),
            ok=added <= GOAL_ADDED_P99_MS and at_goal["agid"]["failed"] == 0,
            added_by_agid_p99_ms=round(added, 1),
            added_by_agid_p50_ms=round(at_goal["agid"]["p50_ms"] - at_goal["static"]["p50_ms"], 1),
            **common,
        ),
        result(
            "calls.setup_max_rate",
            best["agid"],
            "calls/s with no failed call",
            best["static"],
            GOAL_RATE,
            ok=best["agid"] >= GOAL_RATE,
            rates_tried=list(RATES),
        ),
    ]


# -- config.live_change ---------------------------------------------------------------------------------


def live_change(env: Env) -> dict[str, Any]:
    """From the start of `pbx-admin user add` to the new line's first successful REGISTER (attempts every
    20 ms once the command has printed the line's name and secret); three users added 2.5 s apart (each an
    isolated change, not one coalesced with the previous round), the median. Reference: one REGISTER
    (challenge and answer) of an existing line, median of 20, in the same run."""
    import json

    from harness.sipregister import register_once, wait_registered

    pbx = _pbx(env)
    existing = pbx.user("1001")
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        code = register_once(pbx.sip, existing.sip_username, existing.sip_secret)
        samples.append(time.perf_counter() - started)
        if code != 200:
            raise RuntimeError(f"the reference REGISTER of {existing.sip_username} got {code}")
    reference = statistics.median(samples)

    admin_env = os.environ | pbx.env
    admin_env |= {"PBX_ADMIN_DSN": pbx.db.dsn(), "PBX_ADMIN_BUS_URL": pbx.amqp_url}
    totals, commands = [], []
    for n in range(3):
        time.sleep(CONFGEND_MIN_INTERVAL + 0.5)  # an isolated change: confgend's previous round is over
        started = time.monotonic()
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "pbx-admin"), "--json", "user", "add", "--firstname", "Bench",
             "--lastname", f"Live{n}", "--exten", str(1900 + n)],
            env=admin_env, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        commands.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError(f"pbx-admin user add failed ({done.returncode}): {done.stderr}")
        added = json.loads(done.stdout)
        totals.append(
            wait_registered(pbx.sip, added["line"], added["sip_secret"], timeout=30.0, since=started)
        )
    value = statistics.median(totals)
    return result(
        "config.live_change",
        value,
        "s",
        reference,
        LIVE_GOAL_S,
        ok=value <= LIVE_GOAL_S,
        samples_s=[round(t, 3) for t in totals],
        pbx_admin_s=[round(t, 3) for t in commands],
        after_the_command_s=[round(t - c, 3) for t, c in zip(totals, commands, strict=True)],
    )
