"""Server-held keys of the merchants package, read through identity's SecretStore.

- `device-secret-hmac-key`: the key of the keyed hash under which device secrets are stored.
- `statement-seal-key`: 32+ random bytes from which the bureau's Ed25519 e-seal is derived
  (HKDF-SHA256), so it is provisioned like every other secret (a base64 file, or
  `CHONGJUN_SECRET_STATEMENT_SEAL_KEY`). Its public half is published in the JWKS.

In dev a missing secret is created on first use; in production it is a startup error
(`require_keys`, run by the app's lifespan).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from foundation.settings import Settings
from identity import SecretStore

__all__ = ("DEVICE_HMAC_SECRET", "SEAL_SECRET", "SealKey", "device_hmac_key", "require_keys", "seal_key")

DEVICE_HMAC_SECRET = "device-secret-hmac-key"
SEAL_SECRET = "statement-seal-key"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@cache
def _store(directory: Path, production: bool) -> SecretStore:
    return SecretStore(directory, production=production)


def _secrets(settings: Settings) -> SecretStore:
    return _store(settings.resolved_secrets_dir.resolve(), settings.is_production)


def device_hmac_key(settings: Settings) -> bytes:
    """The key of the keyed hash under which device secrets are stored."""
    return _secrets(settings).get(DEVICE_HMAC_SECRET)


class SealKey:
    """The bureau's e-seal for settlement statements: an Ed25519 key and its published JWK."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = _b64url(raw)
        # RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no spaces.
        thumbprint = hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest()
        self.kid = "seal-" + _b64url(thumbprint)[:16]
        self.public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


@cache
def _seal_from(secret: bytes) -> SealKey:
    seed = HKDF(SHA256(), 32, salt=None, info=b"chongjun statement seal v1").derive(secret)
    return SealKey(Ed25519PrivateKey.from_private_bytes(seed))


def seal_key(settings: Settings) -> SealKey:
    return _seal_from(_secrets(settings).get(SEAL_SECRET))


def require_keys(settings: Settings) -> None:
    """Read both secrets now, so that production without them does not start (MissingSecret)."""
    device_hmac_key(settings)
    seal_key(settings)
