"""The FastAGI environment block, as a typed object.

Asterisk (res_agi.c ``setup_env``) opens every AGI session with lines ``agi_<key>: <value>`` terminated by
LF, then ``agi_arg_1: ...`` ... for the AGI() arguments, then an empty line. Values may be empty
(``agi_accountcode: ``). Asterisk writes ``unknown`` for an absent caller ID, DNID or RDNIS.

Parsing never raises: a block that is not what Asterisk sends (line without ``:``, duplicate key, key
without the ``agi_`` prefix, holes in the ``agi_arg_N`` numbering) still yields an :class:`AGIEnv`, with
the defects listed in :attr:`AGIEnv.problems`. The server refuses to run a handler on such an environment
(``AGID_STATUS=FAILED``), but the session still ends cleanly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

_ARG_KEY = re.compile(r"agi_arg_([0-9]{1,9})\Z")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AGIEnv:
    """The environment Asterisk sent. Missing keys read as ``""``."""

    network: bool = False
    network_script: str = ""
    request: str = ""
    channel: str = ""
    language: str = ""
    type: str = ""
    uniqueid: str = ""
    version: str = ""
    callerid: str = ""
    calleridname: str = ""
    callingpres: str = ""
    callingani2: str = ""
    callington: str = ""
    callingtns: str = ""
    dnid: str = ""
    rdnis: str = ""
    context: str = ""
    extension: str = ""
    priority: str = ""
    enhanced: str = ""
    accountcode: str = ""
    threadid: str = ""
    #: ``agi_arg_1``, ``agi_arg_2``, ... in order.
    args: tuple[str, ...] = ()
    #: Every ``key: value`` pair as received, keys with their ``agi_`` prefix.
    variables: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: What was wrong with the block; empty for anything Asterisk sends.
    problems: tuple[str, ...] = ()

    @property
    def handler_name(self) -> str:
        """The handler named by the AGI URL: ``agi://host/NAME?query`` -> ``NAME``."""
        return self.network_script.partition("?")[0]

    @property
    def query(self) -> Mapping[str, str]:
        """The query string of the AGI URL, decoded (``a=1&b=x%20y``); for a repeated key the last wins."""
        qs = self.network_script.partition("?")[2]
        return MappingProxyType(dict(parse_qsl(qs, keep_blank_values=True)))


_FIELDS = frozenset(
    name for name in AGIEnv.__dataclass_fields__ if name not in {"network", "args", "variables", "problems"}
)


def parse_env(lines: Iterable[str]) -> AGIEnv:
    """Build an :class:`AGIEnv` from the lines of the block (without their LF and without the empty line)."""
    variables: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        key, sep, value = line.partition(":")
        if not sep:
            problems.append(f"line {number}: no ':' in {line[:80]!r}")
            continue
        # Asterisk writes "key: value"; drop exactly that one space so values keep their own spacing.
        value = value.removeprefix(" ")
        if not key.startswith("agi_"):
            problems.append(f"line {number}: key {key[:80]!r} lacks the agi_ prefix")
        if key in variables:
            problems.append(f"line {number}: duplicate key {key[:80]!r}")
        variables[key] = value

    numbered: dict[int, str] = {}
    for key, value in variables.items():
        match = _ARG_KEY.match(key)
        if match:
            numbered[int(match.group(1))] = value
    args = tuple(numbered[i] for i in sorted(numbered))
    if numbered and sorted(numbered) != list(range(1, len(numbered) + 1)):
        problems.append(f"agi_arg_N keys are not numbered 1..{len(numbered)}")

    known = {name: variables.get("agi_" + name, "") for name in _FIELDS}
    return AGIEnv(
        network=variables.get("agi_network", "") == "yes",
        args=args,
        variables=MappingProxyType(variables),
        problems=tuple(problems),
        **known,
    )
