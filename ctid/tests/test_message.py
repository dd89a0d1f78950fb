"""encode_message and AMIConfig validation."""

from __future__ import annotations

import pytest

from ctid.ami.config import AMIConfig, AMIConfigError
from ctid.ami.message import AMIEncodeError, command_output, encode_message


def test_encode_in_order_with_repeated_headers() -> None:
    data = encode_message([("Action", "Originate"), ("Variable", ["A=1", "B=x: y"]), ("Async", "true")])
    assert data == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=x: y\r\nAsync: true\r\n\r\n"
    assert encode_message({"Action": "Ping", "Empty": ""}) == b"Action: Ping\r\nEmpty: \r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        {"Action": "Ping\r\nAction: Hangup"},
        {"Action": "x\n"},
        {"Action": "x\r"},
        {"Action": "x\x00"},
        {"Bad:Name": "x"},
        {"": "x"},
        {" Lead": "x"},
        {"Variable": ["ok", "bad\r\n"]},
        {"Num": 5},
        {},
    ],
)
def test_encode_rejects_injection(headers: dict) -> None:
    with pytest.raises(AMIEncodeError):
        encode_message(headers)


def test_command_output() -> None:
    assert command_output({"Response": "Success", "Output": "a\nb"}) == "a\nb"
    assert command_output({"Response": "Success"}) == ""


def test_config_defaults_and_validation() -> None:
    config = AMIConfig.from_mapping({"username": "ctid", "secret": "s", "port": 5039, "action_timeout": 2})
    assert (config.host, config.port, config.action_timeout) == ("127.0.0.1", 5039, 2.0)
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"port": 0}, "ami.port"),
        ({"port": "5038"}, "ami.port"),
        ({"secret": ""}, "ami.secret"),
        ({"action_timeout": 0}, "ami.action_timeout"),
        ({"action_timeout": float("nan")}, "ami.action_timeout"),
        ({"backoff_jitter": 1.5}, "ami.backoff_jitter"),
        ({"backoff_initial": 60.0}, "ami.backoff_initial"),
        ({"max_queued_bytes": 10}, "ami.max_queued_bytes"),
        ({"events": "on\r\nAction: x"}, "ami.events"),
        ({"nosuch": 1}, "ami.nosuch"),
        ({"ping_interval": True}, "ami.ping_interval"),
    ],
)
def test_config_errors_name_the_setting(values: dict, named: str) -> None:
    with pytest.raises(AMIConfigError, match=named):
        AMIConfig.from_mapping({"username": "ctid", "secret": "s", **values})


def test_config_error_hides_the_secret() -> None:
    with pytest.raises(AMIConfigError) as info:
        AMIConfig(username="ctid", secret="bad\nsecret")
    assert "bad" not in str(info.value)


def test_encode_refuses_what_is_not_text_and_gives_back_asterisks_bytes() -> None:
    with pytest.raises(AMIEncodeError, match=r"'Reason'.*lone surrogate"):
        encode_message([("Action", "QueuePause"), ("Reason", "lunch \ud800")])
    with pytest.raises(AMIEncodeError, match="'Variable'"):
        encode_message([("Action", "Originate"), ("Variable", ["A=1", "B=\udfff"])])
    # U+DC80..U+DCFF: a byte the parser kept from Asterisk, written back as that byte
    assert encode_message({"Channel": "Jos\udce9"}) == b"Channel: Jos\xe9\r\n\r\n"
