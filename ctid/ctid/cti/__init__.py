"""The CTI server: newline-delimited JSON over TCP (optionally TLS). See docs/cti-protocol.md."""

PROTOCOL_VERSION = 1
