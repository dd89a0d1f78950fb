"""``ping``: a liveness probe for the dialplan and for monitoring.

``AGI(agi://127.0.0.1:4573/ping)`` sets ``AGID_PONG=pong`` (and then, like every session,
``AGID_STATUS=OK``). Touches nothing else.
"""

from __future__ import annotations

from agid.session import AGISession


async def handle(session: AGISession) -> None:
    await session.set_variable("AGID_PONG", "pong")
