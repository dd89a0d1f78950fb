"""THE table of generated files: request name -> generator, and the AMI reload each file needs.

One module per file. A generator is a pure function `generate(snapshot, context) -> str`: no I/O on the
database (the snapshot is read before), no global state. Add a line here to publish a file; what is not
in this table does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from confdb.read.confgend import Snapshot
from confgend.generators import (
    agents,
    extensions,
    features,
    fixed,
    indications,
    logger,
    manager,
    modules,
    musiconhold,
    parking,
    pjsip,
    queues,
    rtp,
    voicemail,
)
from confgend.generators.base import Context


@dataclass(frozen=True)
class Generated:
    generate: Callable[[Snapshot, Context], str]
    reload: str | None  # the module for AMI `Reload`, None when a change needs a restart
    needs_db: bool = True


GENERATORS: Mapping[str, Generated] = MappingProxyType(
    {
        "asterisk/pjsip.conf": Generated(pjsip.generate, "res_pjsip.so"),
        "asterisk/extensions.conf": Generated(extensions.generate, "pbx_config.so"),
        "asterisk/voicemail.conf": Generated(voicemail.generate, "app_voicemail.so"),
        "asterisk/queues.conf": Generated(queues.generate, "app_queue.so"),
        "asterisk/agents.conf": Generated(agents.generate, "app_agent_pool.so"),
        "asterisk/musiconhold.conf": Generated(musiconhold.generate, "res_musiconhold.so"),
        "asterisk/features.conf": Generated(features.generate, "features", needs_db=False),
        "asterisk/manager.conf": Generated(manager.generate, "manager", needs_db=False),
        "asterisk/modules.conf": Generated(modules.generate, None, needs_db=False),
        "asterisk/res_parking.conf": Generated(parking.generate, "res_parking.so", needs_db=False),
        "asterisk/logger.conf": Generated(logger.generate, "logger", needs_db=False),
        "asterisk/rtp.conf": Generated(rtp.generate, "res_rtp_asterisk.so", needs_db=False),
        "asterisk/indications.conf": Generated(indications.generate, "indications", needs_db=False),
        # Asterisk's own files, with nothing of ours in them: read at start only.
        **{
            f"asterisk/{name}": Generated(fixed.file(name), None, needs_db=False)
            for name in (
                "acl.conf",
                "ccss.conf",
                "cdr.conf",
                "cel.conf",
                "pjproject.conf",
                "queuerules.conf",
                "stasis.conf",
                "udptl.conf",
            )
        },
    }
)
