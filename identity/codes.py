"""The 崇军码: our short-lived, signed benefit-identity code, and its QR images.

Wire format: `CJ1:` + compact JWS, header `{"alg":"EdDSA","kid":…,"typ":"cj-code+jwt"}`, claims
`iss=cjmf`, `aud=cjmf-merchant`, `sub`, `iat`, `exp=iat+60`, `jti` (128-bit random), and `bid`
when the holder showed it for one benefit. No name, ID number or eligibility is inside.

`sub` is a pairwise pseudonym of the person for the merchant audience: the person's UUID (16
bytes, one AES block) encrypted with AES-256 under a key derived (HKDF, per audience) from the
secret `code-subject-key`. One AES block is a keyed permutation, so the pseudonym is stable and
unlinkable to the person id without the key, and the verifier maps it back with no lookup table
and no round trip: verifying stays a pure CPU operation on the in-memory key ring.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import redis.asyncio as aioredis

from identity.errors import CodeNotFound, CodeStoreUnavailable, ExpiredCode, InvalidCode, InvalidToken
from foundation.qr import render_qr
from identity.keys import KeyRing
from identity.tokens import CODE, LEEWAY_SECONDS, ExpiredToken, new_jti, sign, verify_with_key
from identity.types import IssuedCode, VerifiedCode

__all__ = (
    "CODE_PREFIX",
    "CODE_TTL_SECONDS",
    "MAX_CODE_LENGTH",
    "REFRESH_AFTER_SECONDS",
    "code_image",
    "code_image_file",
    "issue_code",
    "verify_code",
)

CODE_PREFIX = "CJ1:"
CODE_TTL_SECONDS = 60
REFRESH_AFTER_SECONDS = 30
MAX_CODE_LENGTH = 1024
_BODY = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SUBJECT = re.compile(r"[A-Za-z0-9_-]{22}")
_JTI = re.compile(r"[A-Za-z0-9_-]{22}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subject_for(ring: KeyRing, person_id: UUID, alg: str = "EdDSA") -> str:
    encryptor = ring.subject_cipher(alg).encryptor()
    return _b64(encryptor.update(person_id.bytes) + encryptor.finalize())


def person_for(ring: KeyRing, subject: str, alg: str = "EdDSA") -> UUID:
    if not _SUBJECT.fullmatch(subject):
        raise InvalidCode("bad subject")
    try:
        block = base64.urlsafe_b64decode(subject + "==")
    except (binascii.Error, ValueError):
        raise InvalidCode("bad subject") from None
    decryptor = ring.subject_cipher(alg).decryptor()
    return UUID(bytes=decryptor.update(block) + decryptor.finalize())


def _redis_key(person_id: UUID, jti: str) -> str:
    # Hash-tagged by person so the code and its owner live in one Redis Cluster slot.
    return f"cj:code:{{{person_id}}}:{jti}"


async def issue_code(
    redis: aioredis.Redis,
    person_id: UUID,
    *,
    keyring: KeyRing,
    benefit_id: UUID | None = None,
    now: float | None = None,
) -> IssuedCode:
    """A fresh 崇军码 for `person_id`; kept in Redis for its lifetime so the owner can fetch the QR."""
    issued = int(time.time() if now is None else now)
    jti = new_jti()
    # The pseudonym's cipher goes with the key that signs (SM4 beside SM2): read it once, here.
    claims: dict[str, object] = {"sub": subject_for(keyring, person_id, keyring.active.alg), "jti": jti}
    if benefit_id is not None:
        claims["bid"] = str(benefit_id)
    code = CODE_PREFIX + sign(keyring, CODE, claims, ttl_seconds=CODE_TTL_SECONDS, now=issued)
    try:
        await redis.set(_redis_key(person_id, jti), code, ex=CODE_TTL_SECONDS + LEEWAY_SECONDS)
    except aioredis.RedisError:
        raise CodeStoreUnavailable() from None
    return IssuedCode(
        code=code,
        jti=jti,
        expires_at=datetime.fromtimestamp(issued + CODE_TTL_SECONDS, UTC),
        refresh_after=datetime.fromtimestamp(issued + REFRESH_AFTER_SECONDS, UTC),
        png_url=f"/v1/me/codes/{jti}.png",
        svg_url=f"/v1/me/codes/{jti}.svg",
    )


def verify_code(raw: object, *, keyring: KeyRing, now: float | None = None) -> VerifiedCode:
    """Verify a scanned 崇军码: shape first, then signature, then claims. Pure CPU, no I/O.

    Raises InvalidCode for anything forged, tampered, unknown or malformed, and ExpiredCode
    (a subclass) only for a genuine code past `exp` + 30 s.
    """
    if not isinstance(raw, str) or len(raw) > MAX_CODE_LENGTH or not raw.startswith(CODE_PREFIX):
        raise InvalidCode("not a 崇军码")
    body = raw[len(CODE_PREFIX) :]
    if not _BODY.fullmatch(body):
        raise InvalidCode("bad charset")
    try:
        claims, record = verify_with_key(keyring, body, CODE, now=now, max_length=MAX_CODE_LENGTH)
        expired = False
    except ExpiredToken as exc:
        claims, record, expired = exc.claims, exc.record, True
    except InvalidToken as exc:
        raise InvalidCode(exc.reason) from None
    if not _JTI.fullmatch(claims["jti"]):
        raise InvalidCode("bad jti")
    person_id = person_for(keyring, claims["sub"], record.alg)
    benefit = claims.get("bid")
    try:
        benefit_id = None if benefit is None else UUID(benefit)
    except (TypeError, ValueError, AttributeError):
        raise InvalidCode("bad bid") from None
    if expired:
        raise ExpiredCode("expired")
    return VerifiedCode(
        person_id=person_id,
        jti=claims["jti"],
        kid=record.kid,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        benefit_id=benefit_id,
    )


async def code_image(redis: aioredis.Redis, person_id: UUID, jti: str, fmt: Literal["png", "svg"]) -> bytes:
    """The QR image of a live code of `person_id`; CodeNotFound for any other jti (no enumeration)."""
    if not _JTI.fullmatch(jti):
        raise CodeNotFound()
    try:
        code = await redis.get(_redis_key(person_id, jti))
    except aioredis.RedisError:
        raise CodeStoreUnavailable() from None
    if code is None:
        raise CodeNotFound()
    return render_qr(code.decode() if isinstance(code, bytes) else code, fmt)


_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


async def code_image_file(redis: aioredis.Redis, person_id: UUID, filename: str) -> tuple[bytes, str]:
    """`{jti}.png` or `{jti}.svg` of a live code of `person_id`: the bytes and their media type."""
    jti, _, fmt = filename.rpartition(".")
    if fmt not in _MEDIA_TYPES:
        raise CodeNotFound()
    return await code_image(redis, person_id, jti, fmt), _MEDIA_TYPES[fmt]  # type: ignore[arg-type]
