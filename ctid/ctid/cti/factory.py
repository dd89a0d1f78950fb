"""Listening for CTI clients: plain TCP, or TLS when a certificate and key are configured."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol, ServerFactory

from ctid.cti.server import CTIServer


class CTIFactory(ServerFactory):
    def __init__(self, hub: CTIServer) -> None:
        self.hub = hub

    def buildProtocol(self, addr: Any) -> Protocol | None:
        return self.hub.build_protocol()  # None (too many clients) closes the connection at once


def listen(reactor: Any, hub: CTIServer) -> Any:
    """Start listening on ``hub.config.host:port``; returns the IListeningPort."""
    cfg = hub.config
    factory = CTIFactory(hub)
    if cfg.tls_cert and cfg.tls_key:
        from twisted.internet import ssl

        with open(cfg.tls_cert, "rb") as cert, open(cfg.tls_key, "rb") as key:
            pem = cert.read() + b"\n" + key.read()
        options = ssl.PrivateCertificate.loadPEM(pem).options()
        return reactor.listenSSL(cfg.port, factory, options, interface=cfg.host)
    return reactor.listenTCP(cfg.port, factory, interface=cfg.host)
