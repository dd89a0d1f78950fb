"""agid: the FastAGI server the Asterisk dialplan calls for per-call decisions.

See docs/agi-protocol.md for the protocol subset, the ``AGID_STATUS`` contract and the bounds.
"""

__version__ = "0.1.0"
