"""A bare SIP REGISTER over UDP with digest authentication, for measuring how soon a line can register.

A phone (harness.sipphone) takes a process start and gives up after one refused registration; polling
"is this line known yet?" needs attempts that cost a few milliseconds each:

    code = register_once(("127.0.0.1", 5060), "k2j4h5g6", secret)   # 200, or 401/403 for an unknown line
    elapsed = wait_registered(("127.0.0.1", 5060), "k2j4h5g6", secret, timeout=5.0)

Each attempt is a REGISTER, the 401 challenge, the REGISTER with the digest answer (RFC 2617, qop=auth);
the contact is this socket's address.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time

from harness.ports import LOOPBACK

_CHALLENGE = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


class RegisterError(AssertionError):
    """The line did not register in time (the last answer is in the message)."""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _header(message: str, name: str) -> str:
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def register_once(
    server: tuple[str, int],
    username: str,
    secret: str,
    *,
    expires: int = 60,
    timeout: float = 2.0,
    sock: socket.socket | None = None,
) -> int:
    """One registration attempt: the final status code (0 when nothing answered within ``timeout``)."""
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
    try:
        host, port = server
        local_host, local_port = sock.getsockname()[:2]
        uri = f"sip:{host}:{port}"
        call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
        authorization = ""
        deadline = time.monotonic() + timeout
        for cseq in (1, 2):
            branch = "z9hG4bK" + secrets.token_hex(8)
            lines = [
                f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport",
                "Max-Forwards: 70",
                f"From: <sip:{username}@{host}:{port}>;tag={tag}",
                f"To: <sip:{username}@{host}:{port}>",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} REGISTER",
                f"Contact: <sip:{username}@{local_host}:{local_port}>",
                f"Expires: {expires}",
                "User-Agent: pbx-test-register",
                *([authorization] if authorization else []),
                "Content-Length: 0",
            ]
            sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), (host, port))
            code, answer = _final_answer(sock, branch, deadline)
            if code not in (401, 407) or cseq == 2:
                return code
            challenge = _header(answer, "WWW-Authenticate" if code == 401 else "Proxy-Authenticate")
            authorization = _authorization(code, challenge, username, secret, uri)
        return 0  # not reached
    finally:
        if own:
            sock.close()


def _final_answer(sock: socket.socket, branch: str, deadline: float) -> tuple[int, str]:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return 0, ""
        sock.settimeout(left)
        try:
            data = sock.recv(65536).decode(errors="replace")
        except TimeoutError:
            return 0, ""
        if not data.startswith("SIP/2.0 ") or branch not in _header(data, "Via"):
            continue  # a request (OPTIONS...) or an answer to an earlier attempt
        code = int(data.split(" ", 2)[1])
        if code >= 200:
            return code, data


def _authorization(code: int, challenge: str, username: str, secret: str, uri: str) -> str:
    fields = {k.lower(): quoted or bare for k, quoted, bare in _CHALLENGE.findall(challenge)}
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
    ha1 = _md5(f"{username}:{realm}:{secret}")
    ha2 = _md5(f"REGISTER:{uri}")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in fields.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append("algorithm=MD5")
    if "opaque" in fields:
        parts.append(f'opaque="{fields["opaque"]}"')
    name = "Authorization" if code == 401 else "Proxy-Authorization"
    return f"{name}: Digest " + ", ".join(parts)


def wait_registered(
    server: tuple[str, int],
    username: str,
    secret: str,
    *,
    timeout: float,
    interval: float = 0.02,
    since: float | None = None,
) -> float:
    """Attempt every ``interval`` until a 200: seconds from ``since`` (default: now) to that answer.
    RegisterError with the last code after ``timeout``."""
    started = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    last = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RegisterError(
                    f"line {username} not registered within {timeout:g} s at {server[0]}:{server[1]} "
                    f"(last answer: {last or 'none'})"
                )
            last = register_once(server, username, secret, timeout=min(1.0, left), sock=sock)
            if last == 200:
                return time.monotonic() - started
            time.sleep(interval)
