"""AMI client settings: defaults, and validation of a mapping (the ``ami:`` section of ctid's config)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class AMIConfigError(ValueError):
    """A bad AMI setting; the message names it."""


@dataclass(frozen=True)
class AMIConfig:
    """Every AMI tunable. There is no default secret: ``username`` and ``secret`` must be given."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    events: str | None = None
    """``Events:`` header of the Login action (e.g. ``"on"``, ``"call,system"``); None sends none."""
    connect_timeout: float = 5.0
    login_timeout: float = 5.0
    """Time for the banner, then for the Login answer."""
    action_timeout: float = 5.0
    """Default time for an action's complete answer (a list: its Complete event)."""
    ping_interval: float = 20.0
    """Seconds between keepalive Pings (a Ping that times out drops the connection); 0 disables."""
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.1
    """Each reconnect delay is multiplied by a random factor in [1 - jitter, 1 + jitter]."""
    connect_retry_max: float = 1.0
    """Cap on the delay after a connection that could not be made at all (Asterisk down or restarting):
    ctid is then back within this time of Asterisk's manager opening, before Asterisk is fully booted."""
    max_pending_actions: int = 1024
    max_queued_bytes: int = 256 * 1024
    """Bytes of actions held while the transport's write buffer is full."""
    max_message_bytes: int = 1 << 20
    max_headers: int = 16384
    max_list_items: int = 100_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            try:
                object.__setattr__(self, f.name, check_setting(f.name, getattr(self, f.name)))
            except ValueError as exc:
                raise AMIConfigError(f"ami.{f.name}: {exc}") from None
        if self.backoff_initial > self.backoff_max:
            raise AMIConfigError("ami.backoff_initial must not exceed ami.backoff_max")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], section: str = "ami") -> AMIConfig:
        """Build from a mapping such as parsed YAML; unknown keys and bad values are errors naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AMIConfigError(f"unknown setting(s): {', '.join(f'{section}.{k}' for k in unknown)}")
        try:
            return cls(**data)
        except AMIConfigError as exc:
            raise AMIConfigError(str(exc).replace("ami.", f"{section}.")) from None


_STR = {"host", "username", "secret"}
_POSITIVE_FLOAT = {
    "connect_timeout",
    "login_timeout",
    "action_timeout",
    "backoff_initial",
    "backoff_max",
    "connect_retry_max",
}
_INT_MIN = {"max_pending_actions": 1, "max_queued_bytes": 1024, "max_message_bytes": 1024, "max_headers": 64}


_FLOAT = {f.name for f in dataclasses.fields(AMIConfig) if f.type == "float"}


def check_setting(name: str, value: object) -> Any:
    """``value`` checked for the setting ``name`` (a whole number where a float is due becomes a float);
    ValueError, without the name, why not (a secret is never shown)."""

    def bad(why: str) -> ValueError:
        shown = "(hidden)" if name == "secret" else repr(value)
        return ValueError(f"{why}, got {shown}")

    if name in _STR:
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n\x00"):
            raise bad("must be a non-empty single-line string")
    elif name == "events":
        if value is not None and (not isinstance(value, str) or any(c in value for c in "\r\n\x00")):
            raise bad("must be a single-line string or null")
    elif name == "port":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise bad("must be an integer port 1..65535")
    elif name in _INT_MIN or name == "max_list_items":
        low = _INT_MIN.get(name, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise bad(f"must be an integer >= {low}")
    else:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise bad("must be a finite number")
        if name in _POSITIVE_FLOAT and value <= 0:
            raise bad("must be > 0")
        if name == "ping_interval" and value < 0:
            raise bad("must be >= 0 (0 disables)")
        if name == "backoff_factor" and value < 1:
            raise bad("must be >= 1")
        if name == "backoff_jitter" and not 0 <= value < 1:
            raise bad("must be in [0, 1)")
    return float(value) if name in _FLOAT else value  # type: ignore[arg-type]
