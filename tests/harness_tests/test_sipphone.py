"""The SIP phones themselves, calling each other directly (no PBX): two providers on their own addresses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sipphone import PhoneError, SipPhones


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[SipPhones]:
    group = SipPhones("127.0.0.1", 9, tmp_path)  # no PBX: the phones call each other's address
    try:
        yield group
    finally:
        group.close()


def test_call_audio_dtmf_hangup(direct: SipPhones) -> None:
    alice, bob = direct.provider("alice", address="127.0.0.2"), direct.provider("bob", address="127.0.0.3")
    call = alice.call(f"sip:1234@{bob.address}")
    incoming = bob.wait_ringing()
    assert call.wait_ringback() == 180
    assert incoming.caller_id().number == "alice"
    incoming.answer()
    call.wait_confirmed()
    assert call.listen(1.0).has_tone(bob.tone)
    assert incoming.listen(1.0).has_tone(alice.tone)
    call.dtmf("12#")
    deadline = time.monotonic() + 5
    while incoming.received_dtmf() != "12#" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert incoming.received_dtmf() == "12#"
    call.hangup()
    assert incoming.wait_disconnected().code == 200
    assert call.wait_disconnected().code == 200


def test_a_refused_call_and_a_wait_that_times_out(direct: SipPhones) -> None:
    alice, bob = direct.provider("alice", address="127.0.0.2"), direct.provider("bob", address="127.0.0.3")
    call = alice.call(f"sip:1234@{bob.address}")
    bob.wait_ringing().hangup(486)
    assert call.wait_disconnected().code == 486
    with pytest.raises(PhoneError, match=r"waited for an incoming call to alice: not within 0.5 s; saw: "):
        alice.wait_ringing(timeout=0.5)


def test_a_crashed_phone_is_named(direct: SipPhones) -> None:
    alice = direct.provider("alice", address="127.0.0.2")
    alice.agent.proc.kill()
    with pytest.raises(PhoneError, match="the SIP agent of alice exited with -9"):
        alice.wait_ringing(timeout=5)
