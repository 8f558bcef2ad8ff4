"""RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps), the profile every authenticator app speaks."""

from __future__ import annotations

import base64
import hmac
import os
import struct
from urllib.parse import quote

__all__ = ("new_totp_secret", "provisioning_uri", "totp_at", "verify_totp")

STEP_SECONDS = 30
DIGITS = 6


def new_totp_secret() -> bytes:
    return os.urandom(20)  # 160 bits, the RFC 4226 §4 recommendation for SHA-1


def totp_at(secret: bytes, step: int) -> str:
    digest = hmac.new(secret, struct.pack(">Q", step), "sha1").digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def verify_totp(secret: bytes, code: str, now: float) -> int | None:
    """The matching step, or None. Accepts the current step and one step back (RFC 6238 §5.2).

    Anything but six ASCII digits is None before any comparison: `hmac.compare_digest` raises
    on a str with non-ASCII characters, and a login must not become a 500 on such input.
    """
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    current = int(now) // STEP_SECONDS
    for step in (current, current - 1):
        if hmac.compare_digest(totp_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: bytes, username: str, issuer: str = "崇军魔方") -> str:
    label = quote(f"{issuer}:{username}")
    encoded = base64.b32encode(secret).decode().rstrip("=")
    return f"otpauth://totp/{label}?secret={encoded}&issuer={quote(issuer)}&algorithm=SHA1&digits=6&period=30"
