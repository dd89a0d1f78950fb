"""The harness's Asterisk: the role's configuration stubs, the CLI, restart and kill (with the full PBX)."""

from __future__ import annotations

import pytest

from harness.asterisk import AsteriskServer, generated_files, render_stub
from harness.fullpbx import FullPbx
from harness.sipphone import SipPhones

pytestmark = pytest.mark.calls


def test_configuration_is_the_roles_with_private_folders(asterisk: AsteriskServer) -> None:
    etc = asterisk.config_file.parent
    files = generated_files()
    assert {"pjsip.conf", "extensions.conf", "manager.conf", "modules.conf"} <= set(files)
    for file in files:
        stub = (etc / file).read_text()
        assert stub == render_stub(str(asterisk.confgen_command), file)
        assert f"#exec {asterisk.confgen_command} asterisk/{file}\n" in stub
    conf = asterisk.config_file.read_text()
    assert "\n[directories]\n" in conf and "execincludes = yes" in conf and "runuser" not in conf
    assert f"astrundir => {asterisk.run_dir}" in conf and f"astlogdir => {asterisk.log_dir}" in conf
    assert f"--port {asterisk.confgend_port} " in asterisk.confgen_command.read_text()


def test_cli_sees_the_generated_configuration(pbx: FullPbx, asterisk: AsteriskServer) -> None:
    assert "Asterisk 22" in asterisk.cli("core show version")
    transports = asterisk.cli("pjsip show transports")
    assert f"127.0.0.1:{asterisk.sip_port}" in transports, transports
    assert pbx.user("1001").line in asterisk.cli("pjsip show endpoints")
    assert "Asterisk Ready" in asterisk.log_text()


def test_restart_then_kill_and_start(pbx: FullPbx, asterisk: AsteriskServer, phones: SipPhones) -> None:
    user = pbx.user("1001")
    first = asterisk.pid
    asterisk.restart()
    assert asterisk.pid not in (None, first) and asterisk.ami_answers()
    phones.register(user.sip_username, user.sip_secret)
    asterisk.kill()
    assert not asterisk.running and not asterisk.ami_answers()
    asterisk.start()
    pbx.wait_ami_users(30)
    phones.register(user.sip_username, user.sip_secret)
