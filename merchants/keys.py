"""Server-held keys of the merchants package: the device-secret HMAC key and the e-seal key.

In dev a missing key file is created (0600, atomically, so concurrent workers agree on one key);
in production a missing file is an error: keys are provisioned, never invented at start.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chongjun.config import Settings

__all__ = ("SealKey", "device_hmac_key", "seal_key")

DEVICE_HMAC_FILE = "device-secret-hmac.key"
SEAL_KEY_FILE = "statement-seal-ed25519.pem"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _read_or_create(path: Path, make: callable, *, production: bool) -> bytes:
    if path.exists():
        return path.read_bytes()
    if production:
        raise RuntimeError(f"key file {path.name} is missing from the secrets directory")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(make())
    try:
        # link() fails if another process got there first: everyone then reads the winner's key.
        os.link(staging, path)
    except FileExistsError:
        pass
    finally:
        staging.unlink()
    return path.read_bytes()


@cache
def _device_hmac_key(directory: Path, production: bool) -> bytes:
    return _read_or_create(directory / DEVICE_HMAC_FILE, lambda: secrets.token_bytes(32), production=production)


def device_hmac_key(settings: Settings) -> bytes:
    """The key of the keyed hash under which device secrets are stored."""
    return _device_hmac_key(settings.resolved_secrets_dir.resolve(), settings.is_production)


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
def _seal_key(directory: Path, production: bool) -> SealKey:
    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    pem = _read_or_create(directory / SEAL_KEY_FILE, make, production=production)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{SEAL_KEY_FILE} is not an Ed25519 private key")
    return SealKey(key)


def seal_key(settings: Settings) -> SealKey:
    return _seal_key(settings.resolved_secrets_dir.resolve(), settings.is_production)
