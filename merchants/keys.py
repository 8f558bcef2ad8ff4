"""Server-held keys of the merchants package, read through identity's SecretStore.

- `device-secret-hmac-key`: the key of the keyed hash under which device secrets are stored.
- `statement-seal-key`: 32+ random bytes from which the bureau's e-seal is derived: Ed25519
  (HKDF-SHA256) under the intl crypto profile, SM2 (HKDF-SM3) under gm, so it is provisioned like every other secret (a base64 file, or
  `CHONGJUN_SECRET_STATEMENT_SEAL_KEY`). Its public half is published in the JWKS.
  **Versioned:** the unversioned file is version 0; `statement-seal-key.v1`, `.v2`, ... are the
  rotations (`chongjun seal rotate` writes the next one). The highest version seals; each
  version has its own kid (its JWK thumbprint), and the public half of every version that ever
  sealed is kept in PostgreSQL (`seal_keys`, benefits/redemption), so statements sealed before a
  rotation still verify after it, even once the old secret file is gone.

In dev a missing secret is created on first use; in production it is a startup error
(`require_keys`, run by the app's lifespan).
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from foundation.encoding import b64url
from foundation.gmcrypto import hkdf_sm3
from foundation.settings import Settings
from foundation.sm2 import N as SM2_N
from foundation.sm2 import SM2PrivateKey
from identity import SecretStore, sign_bytes, sm2_jwk

__all__ = (
    "DEVICE_HMAC_SECRET",
    "SEAL_SECRET",
    "SealKey",
    "SealRing",
    "device_hmac_key",
    "require_keys",
    "rotate_seal_key",
    "seal_key",
    "seal_ring",
)

DEVICE_HMAC_SECRET = "device-secret-hmac-key"
SEAL_SECRET = "statement-seal-key"


@cache
def _store(directory: Path, production: bool) -> SecretStore:
    return SecretStore(directory, production=production)


def _secrets(settings: Settings) -> SecretStore:
    return _store(settings.resolved_secrets_dir.resolve(), settings.is_production)


def device_hmac_key(settings: Settings) -> bytes:
    """The key of the keyed hash under which device secrets are stored."""
    return _secrets(settings).get(DEVICE_HMAC_SECRET)


class SealKey:
    """One version of the bureau's e-seal: an Ed25519 key (`EdDSA`, the intl crypto profile) or
    an SM2 key (`SM2` with SM3, signature `r ‖ s`: the gm profile), and its published JWK.

    It is an `identity.Signer` (kid, alg, public_jwk, sign_bytes), so the seal, the archive and the
    verifier (identity.signing.VERIFIERS has both algs) take either unchanged.
    """

    def __init__(self, private_key: Ed25519PrivateKey | SM2PrivateKey, version: int = 0) -> None:
        self.private_key = private_key
        self.version = version
        if isinstance(private_key, SM2PrivateKey):
            self.alg = "SM2"
            jwk = sm2_jwk(private_key.public_key())
            # RFC 7638 thumbprint: the required members in lexicographic order, no spaces.
            canonical = f'{{"crv":"SM2","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
        else:
            self.alg = "EdDSA"
            raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
            canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{jwk["x"]}"}}'
        self.kid = "seal-" + b64url(hashlib.sha256(canonical.encode()).digest())[:16]
        self.public_jwk = {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign_bytes(self, data: bytes) -> bytes:
        """The JWS signature value over `data` (Ed25519: 64 bytes; SM2: `r ‖ s`, 64 bytes)."""
        return sign_bytes(self.private_key, data)


@cache
def _seal_from(secret: bytes, version: int = 0, alg: str = "EdDSA") -> SealKey:
    if alg == "SM2":
        # A scalar in [1, n-2] from 64 bytes of HKDF-SM3 (the reduction's bias is below 2^-250).
        wide = int.from_bytes(hkdf_sm3(secret, b"chongjun statement seal sm2 v1", 64), "big")
        return SealKey(SM2PrivateKey.from_scalar(wide % (SM2_N - 2) + 1), version)
    # "v1" names the derivation, not the key version: every version is derived the same way.
    seed = HKDF(SHA256(), 32, salt=None, info=b"chongjun statement seal v1").derive(secret)
    return SealKey(Ed25519PrivateKey.from_private_bytes(seed), version)


class SealRing:
    """Every seal key version this process holds; the highest one seals."""

    def __init__(self, keys: dict[int, SealKey]) -> None:
        if not keys:
            raise ValueError("a seal ring holds at least one key")
        self.versions = dict(sorted(keys.items()))

    @property
    def current(self) -> SealKey:
        return self.versions[max(self.versions)]

    def jwks(self) -> list[dict[str, str]]:
        return [key.public_jwk for key in self.versions.values()]


def _has_rotations(store: SecretStore) -> bool:
    prefix = SEAL_SECRET + ".v"
    return store.directory.is_dir() and any(p.name.startswith(prefix) for p in store.directory.iterdir())


def seal_ring(settings: Settings) -> SealRing:
    """The seal key versions in the secret store (re-read each call, so a rotation is seen at once),
    derived for the crypto profile (intl Ed25519, gm SM2). What the other profile sealed stays
    verifiable: every key that ever sealed is published from PostgreSQL (`seal_keys`)."""
    store = _secrets(settings)
    alg = "SM2" if settings.crypto_profile == "gm" else "EdDSA"
    keys: dict[int, SealKey] = {}
    rotated = _has_rotations(store)
    env = "CHONGJUN_SECRET_" + SEAL_SECRET.upper().replace("-", "_")
    if not rotated or (store.directory / SEAL_SECRET).exists() or os.environ.get(env):
        keys[0] = _seal_from(store.get(SEAL_SECRET), 0, alg)
    if rotated:
        for version, secret in store.versioned(SEAL_SECRET).versions.items():
            keys[version] = _seal_from(secret, version, alg)
    return SealRing(keys)


def seal_key(settings: Settings) -> SealKey:
    """The version that seals now."""
    return seal_ring(settings).current


def rotate_seal_key(settings: Settings) -> SealKey:
    """Write the next seal key version (dev and operator tooling) and return it.

    In production, provision `statement-seal-key.vN` on every machine instead (the secret
    store never invents secrets there).
    """
    store = _secrets(settings)
    seal_ring(settings)  # version 0 exists first (dev creates it), so the rotation is really new
    if _has_rotations(store):
        store.rotate(SEAL_SECRET)
    else:
        store.versioned(SEAL_SECRET)  # creates .v1
    return seal_ring(settings).current


def require_keys(settings: Settings) -> None:
    """Read both secrets now, so that production without them does not start (MissingSecret)."""
    device_hmac_key(settings)
    seal_key(settings)
