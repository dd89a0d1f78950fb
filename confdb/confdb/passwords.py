"""Password hashing (scrypt, stdlib) and generated secrets.

Format: $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>, self-describing so parameters can rise later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

LOG2_N = 14
R = 8
P = 1
_DKLEN = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=R, p=P, dklen=_DKLEN, maxmem=2**26)
    return f"$scrypt$ln={log2_n},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check; a malformed hash is a mismatch, never an exception."""
    try:
        _, scheme, params, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        values = dict(item.split("=") for item in params.split(","))
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=2 ** int(values["ln"]),
            r=int(values["r"]),
            p=int(values["p"]),
            dklen=len(expected),
            maxmem=2**26,
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


def sip_ha1(username: str, realm: str, secret: str) -> str:
    """HA1 of RFC 2617 digest, what pjsip's auth_type=md5 / md5_cred expects."""
    return hashlib.md5(f"{username}:{realm}:{secret}".encode()).hexdigest()


def generate_sip_secret(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_pin(length: int = 6) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))
