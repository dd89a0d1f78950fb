"""Operator tools for the PBX: CTI proxies (ctispy, ctisave, ctistat) and the deadlock graph (lockgraph).

Everything here runs on Debian bookworm's python3 with the standard library only.
"""

__version__ = "0.1.0"
