"""The ports of a PBX (the local stack's, or a test's) and the environment its services are configured from.

``service_env`` is the one place where ports become settings: the daemons (harness.daemons) write their
configuration from it, and Asterisk is started from it, for the stack and for the call tests alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.ports import free_port, free_udp_range

RTP_PORTS = 200  # the RTP range's size: 100 calls' worth of even ports


@dataclass
class Ports:
    postgres: int = 5433
    amqp: int = 5673
    rabbitmq_dist: int = 25673
    epmd: int = 4370
    agid: int = 4573
    confgend: int = 8669
    cti: int = 5003
    sip: int = 5060  # UDP and TCP
    ami: int = 5038
    rtp_start: int = 10000

    @property
    def rtp_end(self) -> int:
        return self.rtp_start + RTP_PORTS - 1

    @classmethod
    def free_services(cls, postgres: int, amqp: int) -> Ports:
        """Free loopback ports for every PBX service, beside existing PostgreSQL and RabbitMQ servers."""
        return cls(
            postgres=postgres,
            amqp=amqp,
            rabbitmq_dist=0,
            epmd=0,
            agid=free_port(),
            confgend=free_port(),
            cti=free_port(),
            sip=free_port(udp=True),
            ami=free_port(),
            rtp_start=free_udp_range(RTP_PORTS),
        )


def service_env(ports: Ports, secrets_dir: Path, amqp_url: str) -> dict[str, str]:
    """What the daemons and Asterisk are configured from (also written into the stack's stack.env)."""
    return {
        "PBX_SECRETS_DIR": str(secrets_dir),
        "PBX_AMQP_URL": amqp_url,
        "PBX_AGID_PORT": str(ports.agid),
        "PBX_CONFGEND_PORT": str(ports.confgend),
        "PBX_CONFGEN_PORT": str(ports.confgend),  # what the pbx-confgen client reads
        "PBX_CTI_PORT": str(ports.cti),
        "PBX_AMI_PORT": str(ports.ami),
        "PBX_SIP_PORT": str(ports.sip),
        "PBX_RTP_START": str(ports.rtp_start),
        "PBX_RTP_END": str(ports.rtp_end),
    }
