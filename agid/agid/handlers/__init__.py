"""THE table of AGI handlers: dialplan name -> handler coroutine.

``AGI(agi://127.0.0.1:4573/NAME,arg1,arg2)`` runs ``HANDLERS["NAME"]``. One module per handler; add a
line here to publish it. No discovery: what is not in this table does not exist (AGID_STATUS=FAILED).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agid.handlers import (
    check_schedule,
    incoming_did,
    incoming_queue,
    incoming_user,
    outgoing_user,
    ping,
    reverse_lookup,
)
from agid.registry import Handler

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "ping": ping.handle,
        "incoming_user": incoming_user.handle,
        "reverse_lookup": reverse_lookup.handle,
        "incoming_did": incoming_did.handle,
        "outgoing_user": outgoing_user.handle,
        "incoming_queue": incoming_queue.handle,
        "check_schedule": check_schedule.handle,
    }
)
