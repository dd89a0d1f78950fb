"""THE table of AGI handlers: dialplan name -> handler coroutine.

``AGI(agi://127.0.0.1:4573/NAME,arg1,arg2)`` runs ``HANDLERS["NAME"]``. One module per handler; add a
line here to publish it. No discovery: what is not in this table does not exist (AGID_STATUS=FAILED).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agid.handlers import ping
from agid.registry import Handler

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "ping": ping.handle,
    }
)
