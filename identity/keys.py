"""Our signing keys: a KeyRing shared by every worker through PostgreSQL, cached in memory.

- Algorithms: Ed25519 (`EdDSA`) is primary, ES256 is the second algorithm (the DCC hedge: both
  implemented, either can be rotated in), and SM2 with SM3 (`SM2`, identity.sm2jws) is the 国密
  one. The crypto profile (`CHONGJUN_CRYPTO_PROFILE`: `intl` → EdDSA, `gm` → SM2) picks the
  algorithm of keys made from now on; the algorithm is pinned per `kid`, and the verifier takes
  `algorithms=[record.alg]` from our record, never from the token, so a ring mixing algorithms
  keeps verifying everything its published keys signed, whichever profile signed it.
- `kid` is the first 16 characters of the RFC 7638 JWK thumbprint (96 bits).
- States: `next` (published, not signing) → `active` (signing, exactly one) → `retired`
  (published, still verifies) → `removed` (gone from the ring: everything it signed dies).
- Private keys are sealed with AES-256-GCM under the versioned KEK `signing-kek` from the secret
  store (AAD = kid), so the database alone cannot sign.
- Each process loads the ring at start and reloads it in the background (api/auth.py), so the
  hot path (verifying a token or a 崇军码) never touches the database or Redis. The app keeps
  its ring on `app.state.keyring` and passes it (`keyring=`) to every function that signs or
  verifies; nothing is installed process-wide.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from foundation.audit import write_audit
from foundation.errors import Unavailable
from foundation.gmcrypto import hkdf_sm3
from foundation.sm2 import SM2PrivateKey, SM2PublicKey
from identity import db, signing
from identity.sm2jws import sm2_from_jwk, sm2_jwk
from identity.secrets import SecretStore

__all__ = (
    "ALGORITHMS",
    "KeyRecord",
    "KeyRing",
    "KeysUnavailable",
    "PROFILE_ALGORITHMS",
    "ensure_signing_keys",
    "generate_key",
    "jwk_thumbprint",
    "list_keys",
    "profile_algorithm",
    "remove_key",
    "rotate_keys",
)

Algorithm = Literal["EdDSA", "ES256", "SM2"]
ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "ES256", "SM2")
PROFILE_ALGORITHMS: dict[str, Algorithm] = {"intl": "EdDSA", "gm": "SM2"}
"""The signing algorithm of each crypto profile (foundation.settings.Settings.crypto_profile)."""


def profile_algorithm(profile: str) -> Algorithm:
    try:
        return PROFILE_ALGORITHMS[profile]
    except KeyError:
        raise ValueError(f"unknown crypto profile {profile!r}") from None

KEK_SECRET = "signing-kek"
SUBJECT_SECRET = "code-subject-key"
KID_LENGTH = 16


class KeysUnavailable(Unavailable):
    """No active signing key is loaded (database unreachable at start, or keys never created)."""

    type = "keys-unavailable"
    title = "Signing keys are not available"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: Algorithm
    state: str
    public_key: Ed25519PublicKey | ec.EllipticCurvePublicKey | SM2PublicKey
    private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey | SM2PrivateKey | None
    public_jwk: Mapping[str, str]

    def sign_bytes(self, data: bytes) -> bytes:
        """An `identity.signing.Signer`: the JWS signature value over `data` by this key (its
        pinned `alg`; Ed25519, ES256 or SM2). The ring's active key signs what is not a token
        (archive checkpoints, exchange batches); take the record once, so the `kid` and `alg`
        named beside the value are the key that made it."""
        if self.private_key is None:
            raise KeysUnavailable(f"signing key {self.kid} has no private key here")
        return signing.sign_bytes(self.private_key, data)


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _public_jwk(public_key) -> dict[str, str]:
    if isinstance(public_key, SM2PublicKey):
        return sm2_jwk(public_key)
    if isinstance(public_key, Ed25519PublicKey):
        full = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        full = ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {name: full[name] for name in ("kty", "crv", "x", "y") if name in full}


def _generate(alg: Algorithm):
    if alg == "EdDSA":
        return Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "SM2":
        return SM2PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg!r}")


def _check_key_type(alg: str, public_key) -> None:
    # PyJWT's EdDSA also accepts Ed448 keys; pin the curve ourselves (RFC 9864 reasoning).
    if alg == "EdDSA" and isinstance(public_key, Ed25519PublicKey):
        return
    if alg == "SM2" and isinstance(public_key, SM2PublicKey):
        return
    if alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return
    raise ValueError(f"key type {type(public_key).__name__} does not match alg {alg}")


def _load_public(alg: str, jwk: Mapping[str, str]):
    text = json.dumps({**jwk})
    if alg == "SM2":
        key = sm2_from_jwk(text)
    else:
        key = OKPAlgorithm.from_jwk(text) if alg == "EdDSA" else ECAlgorithm.from_jwk(text)
    _check_key_type(alg, key)
    return key


class KeyRing:
    """An in-memory snapshot of the signing keys plus the secrets derived for 崇军码.

    `load()` swaps the whole snapshot at once, so a concurrent reader sees either the old or the
    new ring, never a mix.
    """

    def __init__(self, secrets: SecretStore) -> None:
        self.secrets = secrets
        self._keys: dict[str, KeyRecord] = {}
        self._active: KeyRecord | None = None
        self.loaded_at: float | None = None
        self._subject_key: bytes | None = None
        self._subject_key_sm4: bytes | None = None

    @property
    def keys(self) -> Mapping[str, KeyRecord]:
        return self._keys

    def get(self, kid: str) -> KeyRecord | None:
        return self._keys.get(kid)

    @property
    def active(self) -> KeyRecord:
        if self._active is None or self._active.private_key is None:
            raise KeysUnavailable("no active signing key is loaded")
        return self._active

    @property
    def is_loaded(self) -> bool:
        return self._active is not None

    async def load(self, conn: asyncpg.Connection) -> None:
        rows = await db.list_signing_keys(conn)
        kek = self.secrets.versioned(KEK_SECRET)
        keys: dict[str, KeyRecord] = {}
        for row in rows:
            public_jwk = dict(row["public_jwk"])
            public_key = _load_public(row["alg"], public_jwk)
            private_key = None
            if row["state"] in ("active", "next"):
                private_key = _open_private(kek.get(row["kek_version"]), row["kid"], row["private_enc"], row["alg"])
                if _public_jwk(private_key.public_key()) != _public_jwk(public_key):
                    raise ValueError(f"signing key {row['kid']}: private key does not match its public key")
            keys[row["kid"]] = KeyRecord(row["kid"], row["alg"], row["state"], public_key, private_key, public_jwk)
        self.use(keys.values())

    def use(self, records) -> None:
        """Swap in a new set of KeyRecords at once (what `load` does; tests build rings with it)."""
        keys = {record.kid: record for record in records}
        active = [record for record in keys.values() if record.state == "active"]
        if len(active) > 1:
            raise ValueError("a key ring has at most one active key")
        self._keys, self._active = keys, (active[0] if active else None)
        self.loaded_at = time.monotonic()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every published key (next, active, retired) as an RFC 7517 JWK Set."""
        order = {"active": 0, "next": 1, "retired": 2}
        records = sorted(self._keys.values(), key=lambda r: (order.get(r.state, 3), r.kid))
        return {"keys": [{**r.public_jwk, "kid": r.kid, "alg": r.alg, "use": "sig"} for r in records]}

    @property
    def subject_key(self) -> bytes:
        """AES-256 key for 崇军码 subject pseudonyms, derived per audience (see identity/codes.py)."""
        if self._subject_key is None:
            self._subject_key = HKDF(SHA256(), 32, salt=None, info=b"cjmf-merchant subject v1").derive(
                self.secrets.get(SUBJECT_SECRET)
            )
        return self._subject_key

    @property
    def subject_key_sm4(self) -> bytes:
        """SM4 key for the pseudonyms of codes signed by SM2 keys (HKDF-SM3, same secret)."""
        if self._subject_key_sm4 is None:
            self._subject_key_sm4 = hkdf_sm3(self.secrets.get(SUBJECT_SECRET), b"cjmf-merchant subject sm4 v1", 16)
        return self._subject_key_sm4

    def subject_cipher(self, alg: str = "EdDSA") -> Cipher:
        """The one-block permutation for 崇军码 subjects of a code signed with `alg`: SM4 beside
        SM2 keys, AES-256 beside the others. Tied to the signing key, not to the profile, so a
        code issued just before a profile switch still maps back to its holder."""
        # One block (AES and SM4 both have 128-bit blocks) is a keyed permutation: a stable,
        # reversible pseudonym without storage.
        if alg == "SM2":
            return Cipher(algorithms.SM4(self.subject_key_sm4), modes.ECB())
        return Cipher(algorithms.AES(self.subject_key), modes.ECB())


def _seal_private(kek: bytes, kid: str, private_key) -> bytes:
    if isinstance(private_key, SM2PrivateKey):
        der = private_key.der()
    else:
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, der, kid.encode())


def _open_private(kek: bytes, kid: str, sealed: bytes, alg: str):
    der = AESGCM(kek).decrypt(sealed[:12], sealed[12:], kid.encode())
    if alg == "SM2":
        return SM2PrivateKey.from_der(der)
    return serialization.load_der_private_key(der, password=None)


def generate_key(alg: Algorithm, state: str = "active") -> KeyRecord:
    """A new key pair as a KeyRecord (not stored anywhere yet)."""
    private_key = _generate(alg)
    public_jwk = _public_jwk(private_key.public_key())
    kid = jwk_thumbprint(public_jwk)[:KID_LENGTH]
    return KeyRecord(kid, alg, state, private_key.public_key(), private_key, public_jwk)


async def _create_key(conn: asyncpg.Connection, secrets: SecretStore, *, alg: Algorithm, state: str) -> str:
    record = generate_key(alg, state)
    private_key, public_jwk, kid = record.private_key, dict(record.public_jwk), record.kid
    kek = secrets.versioned(KEK_SECRET)
    await db.create_signing_key(
        conn,
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=public_jwk,
        private_enc=_seal_private(kek.current, kid, private_key),
        kek_version=kek.current_version,
    )
    return kid


async def ensure_signing_keys(
    conn: asyncpg.Connection, secrets: SecretStore, *, create: bool, alg: Algorithm = "EdDSA"
) -> str | None:
    """Make sure an active key exists; with `create` (dev) make one (and a next one) of `alg`.

    With `create`, an active key of another algorithm (a dev database first used under the other
    crypto profile) is switched at once: it is retired (so what it signed still verifies), a
    next key of another algorithm is removed (it never signed), and new active and next keys of
    `alg` are made. Without `create` (production) the keys are left as they are: switching is
    the operator's `chongjun keys rotate --alg …`, twice, so the new key is published before it signs.

    Runs under a transaction-scoped advisory lock, so two workers starting together create one
    key between them. Returns the active kid, or None when there is none and `create` is off.
    """
    async with conn.transaction():
        await db.lock_signing_keys(conn)
        active = await db.get_signing_key_kid(conn, state="active")
        if not create:
            return active
        if active is not None and await db.get_signing_key_alg(conn, active) != alg:
            await db.retire_active_key(conn)
            upcoming = await db.get_signing_key_kid(conn, state="next")
            if upcoming is not None and await db.get_signing_key_alg(conn, upcoming) != alg:
                await db.discard_next_key(conn)
            active = None
        if active is None:
            active = await db.activate_next_key(conn) if await _next_is(conn, alg) else None
            if active is None:
                active = await _create_key(conn, secrets, alg=alg, state="active")
        if await db.get_signing_key_kid(conn, state="next") is None:
            await _create_key(conn, secrets, alg=alg, state="next")
        return active


async def _next_is(conn: asyncpg.Connection, alg: Algorithm) -> bool:
    upcoming = await db.get_signing_key_kid(conn, state="next")
    return upcoming is not None and await db.get_signing_key_alg(conn, upcoming) == alg


async def rotate_keys(conn: asyncpg.Connection, secrets: SecretStore, *, alg: Algorithm = "EdDSA") -> dict[str, str]:
    """next → active, active → retired, and a new next key with `alg`.

    With no next key (a fresh database), a new key is activated directly. Returns the kids by state.
    """
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {alg!r}")
    async with conn.transaction():
        await db.lock_signing_keys(conn)
        retired = await db.retire_active_key(conn)
        active = await db.activate_next_key(conn)
        if active is None:
            active = await _create_key(conn, secrets, alg=alg, state="active")
        upcoming = await _create_key(conn, secrets, alg=alg, state="next")
        result = {"active": active, "next": upcoming}
        if retired:
            result["retired"] = retired
        await write_audit(
            conn, actor_kind="system", actor_id="cli", action="keys.rotate", object_kind="signing_key",
            object_id=active, detail={**result, "alg": alg},
        )
    return result


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, object]]:
    """Every key ever made, with its state and dates (operator view; no key material)."""
    return [dict(row) for row in await db.list_all_signing_keys(conn)]


async def remove_key(conn: asyncpg.Connection, kid: str) -> bool:
    """Withdraw a retired key: every token and code it signed stops verifying at the next reload."""
    async with conn.transaction():
        await db.lock_signing_keys(conn)
        removed = await db.remove_retired_key(conn, kid) is not None
        if removed:
            await write_audit(
                conn, actor_kind="system", actor_id="cli", action="keys.remove", object_kind="signing_key", object_id=kid,
            )
        return removed
