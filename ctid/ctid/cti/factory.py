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
    """Start listening on ``hub.config.host:port`` with ``backlog``; returns the IListeningPort."""
    cfg = hub.config
    factory = CTIFactory(hub)
    if cfg.tls_cert and cfg.tls_key:
        options = tls_options(cfg.tls_cert, cfg.tls_key)
        return reactor.listenSSL(cfg.port, factory, options, backlog=cfg.backlog, interface=cfg.host)
    return reactor.listenTCP(cfg.port, factory, backlog=cfg.backlog, interface=cfg.host)


def tls_options(cert_file: str, key_file: str) -> Any:
    """Server TLS options, TLS 1.2 at least: the certificate file's first certificate, then its chain."""
    from twisted.internet import ssl

    with open(cert_file, "rb") as cert, open(key_file, "rb") as key:
        pem_certs = _pem_blocks(cert.read())
        key_pem = key.read()
    if not pem_certs:
        raise ValueError(f"{cert_file}: no PEM certificate in it")
    leaf = ssl.PrivateCertificate.loadPEM(pem_certs[0] + b"\n" + key_pem)
    return ssl.CertificateOptions(
        privateKey=leaf.privateKey.original,
        certificate=leaf.original,
        extraCertChain=[ssl.Certificate.loadPEM(block).original for block in pem_certs[1:]],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )


def _pem_blocks(data: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----"
    blocks = []
    for part in data.split(end)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(part[start:] + end)
    return blocks
