"""Compact JWS tokens: one signing path and one verifying path for every kind we issue.

Each kind has its own `typ` header and `aud` claim (RFC 8725 §3.11–3.12), so a session token
can never pass as a 崇军码, a staff token as a device token, and so on. Verification follows
RFC 8725: the algorithm comes from our key record for the `kid`, never from the token; the
signature is checked before any claim is used; `iss`, `aud`, `exp`, `iat` (30 s leeway, a future
`iat` beyond it is refused) and the presence of every required claim are enforced.

Every failure raises the one `InvalidToken` (the reason is kept for server logs only); an
expired but genuine token raises `ExpiredToken` instead, so that 崇军码 scans can report `expired`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any, NamedTuple
from uuid import UUID

import jwt

from foundation.cache import MISSING, LocalCache
from identity.errors import InvalidToken
from identity.keys import KeyRecord, KeyRing
from identity.types import Principal
from identity.signing import JwsInvalid, claims_refused, verify_compact_jws

__all__ = (
    "ACCESS_KINDS",
    "CODE",
    "ExpiredToken",
    "ISSUER",
    "LEEWAY_SECONDS",
    "TokenKind",
    "issue_access_token",
    "new_jti",
    "sign",
    "sign_document",
    "unverified_header",
    "verify",
    "verify_access_token",
    "verify_with_key",
)

ISSUER = "cjmf"
LEEWAY_SECONDS = 30
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti"]


class TokenKind(NamedTuple):
    name: str
    typ: str
    audience: str
    max_ttl: int
    """A token whose exp - iat exceeds this is refused even if we signed it (bounds a bug's damage)."""


VETERAN = TokenKind("veteran", "cj-session+jwt", "cjmf-api", 3600)
STAFF = TokenKind("staff", "cj-staff+jwt", "cjmf-staff-api", 3600)
ADMIN = TokenKind("admin", "cj-admin+jwt", "cjmf-admin-api", 3600)
DEVICE = TokenKind("device", "cj-device+jwt", "cjmf-device-api", 24 * 3600)
CODE = TokenKind("code", "cj-code+jwt", "cjmf-merchant", 300)

ACCESS_KINDS: dict[str, TokenKind] = {kind.name: kind for kind in (VETERAN, STAFF, ADMIN, DEVICE)}
_ACCESS_BY_TYP: dict[str, TokenKind] = {kind.typ: kind for kind in ACCESS_KINDS.values()}

_COMPACT = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


class ExpiredToken(Exception):
    """Signature and claims held but `exp` + leeway has passed (not an InvalidToken: a caller that
    may tell "expired" apart, the 崇军码 scan, catches it; `verify_access_token` turns it into one)."""

    def __init__(self, claims: dict[str, Any], record: KeyRecord) -> None:
        super().__init__("expired")
        self.claims = claims
        self.record = record


def new_jti() -> str:
    """128 random bits, base64url without padding (22 characters)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def sign(ring: KeyRing, kind: TokenKind, claims: dict[str, Any], *, ttl_seconds: int, now: float | None = None) -> str:
    """Sign `claims` (plus iss, aud, iat, exp, and jti unless given) with the active key."""
    if not 0 < ttl_seconds <= kind.max_ttl:
        raise ValueError(f"ttl {ttl_seconds} s out of range for {kind.name} tokens (max {kind.max_ttl})")
    issued = int(time.time() if now is None else now)
    record = ring.active
    payload = {"iss": ISSUER, "aud": kind.audience, "iat": issued, "exp": issued + ttl_seconds, **claims}
    payload.setdefault("jti", new_jti())
    return jwt.encode(payload, record.private_key, algorithm=record.alg, headers={"kid": record.kid, "typ": kind.typ})


def sign_document(ring: KeyRing, payload: dict[str, Any], *, typ: str) -> str:
    """A signed document that is not an access token (the trust list, a gate's offline bundle): a
    compact JWS of `payload` by the active key, `kid` and the document's own `typ` in its header."""
    record = ring.active
    return jwt.encode(payload, record.private_key, algorithm=record.alg, headers={"kid": record.kid, "typ": typ})


def verify(
    ring: KeyRing, token: object, kind: TokenKind, *, now: float | None = None, max_length: int = MAX_TOKEN_LENGTH
) -> dict[str, Any]:
    """The verified claims of `token` as a `kind` token; InvalidToken or ExpiredToken otherwise."""
    return verify_with_key(ring, token, kind, now=now, max_length=max_length)[0]


def verify_with_key(
    ring: KeyRing, token: object, kind: TokenKind, *, now: float | None = None, max_length: int = MAX_TOKEN_LENGTH
) -> tuple[dict[str, Any], KeyRecord]:
    """Like `verify`, and also the key record that verified it."""
    header = _header(token, max_length)
    kid = header.get("kid")
    record = ring.get(kid) if isinstance(kid, str) else None
    if record is None:
        # No fetch on a miss: the ring reloads on its own schedule (at most every 30 s).
        raise InvalidToken("unknown kid")
    if header.get("typ") != kind.typ:
        raise InvalidToken("wrong typ")
    try:
        _, claims = verify_compact_jws(token, record.public_key, record.alg)
    except JwsInvalid as exc:
        raise InvalidToken(f"rejected: {exc}") from None
    refused = claims_refused(claims, issuer=ISSUER, audience=kind.audience, required=REQUIRED_CLAIMS)
    if refused is not None:
        raise InvalidToken(f"rejected: {refused}")
    _check_times(claims, kind, time.time() if now is None else now, record)
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
        raise InvalidToken("sub or jti is not a string")
    return claims, record


def _header(token: object, max_length: int) -> dict[str, Any]:
    """The unverified header, after the cheap shape checks (length cap, base64url charset)."""
    if not isinstance(token, str) or len(token) > max_length or not _COMPACT.fullmatch(token):
        raise InvalidToken("malformed token")
    return unverified_header(token)


def unverified_header(token: str, invalid: type[InvalidToken] = InvalidToken) -> dict[str, Any]:
    """The JOSE header of a compact JWS whose charset the caller has checked; `invalid` (the
    caller's own error, e.g. InvalidCode for a 随申码) if it is not base64url JSON of an object.

    Parsed here rather than with `jwt.get_unverified_header`, whose per-character charset scan
    costs as much as the Ed25519 verify on the scan hot path; PyJWT parses it again when it
    verifies, so nothing is trusted from this copy but the `kid`, `alg` and `typ` used to pick a key.
    """
    segment = token[: token.index(".")]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        raise invalid("unreadable header") from None
    if not isinstance(header, dict):
        raise invalid("header is not an object")
    return header


def _check_times(claims: dict[str, Any], kind: TokenKind, now: float, record: KeyRecord) -> None:
    issued, expires = claims.get("iat"), claims.get("exp")
    if not (_is_int(issued) and _is_int(expires)):
        raise InvalidToken("iat/exp not integers")
    if issued > now + LEEWAY_SECONDS:
        raise InvalidToken("iat in the future")
    if not 0 < expires - issued <= kind.max_ttl:
        raise InvalidToken("lifetime out of range")
    if "nbf" in claims and (not _is_int(claims["nbf"]) or claims["nbf"] > now + LEEWAY_SECONDS):
        raise InvalidToken("not yet valid")
    if expires <= now - LEEWAY_SECONDS:
        raise ExpiredToken(claims, record)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- access tokens (the four principal kinds) --------------------------------------------------


def issue_access_token(
    principal: Principal, *, keyring: KeyRing, ttl_seconds: int = 900, now: float | None = None
) -> str:
    """A bearer access token for `principal` (its kind picks `typ` and `aud`).

    The merchants package issues device tokens with it: `issue_access_token(Principal("device",
    device_id, merchant_id=..., venue_id=..., secret_generation=...), keyring=..., ttl_seconds=...)`.
    """
    kind = ACCESS_KINDS[principal.kind]
    claims: dict[str, Any] = {"sub": str(principal.subject)}
    if principal.role is not None:
        claims["role"] = principal.role
    if principal.district is not None:
        claims["dst"] = principal.district
    if principal.merchant_id is not None:
        claims["mid"] = str(principal.merchant_id)
    if principal.venue_id is not None:
        claims["vid"] = str(principal.venue_id)
    if principal.secret_generation is not None:
        claims["gen"] = principal.secret_generation
    if principal.session_id is not None:
        claims["sid"] = str(principal.session_id)
    return sign(keyring, kind, claims, ttl_seconds=ttl_seconds, now=now)


_VERIFIED_REUSE_SECONDS = 60.0
"""How long one process reuses the outcome of verifying an access token it has seen before."""
_verified: LocalCache[str, tuple[object, Principal]] = LocalCache(
    maxsize=20_000, ttl=_VERIFIED_REUSE_SECONDS, clock=time.time
)
"""token -> (the ring's key set it was verified against, its principal); wall-clock expiries,
because an entry must not outlive the token's `exp`."""


def verify_access_token(
    token: object,
    *,
    keyring: KeyRing,
    now: float | None = None,
) -> Principal:
    """The Principal of a bearer token of any access kind; InvalidToken for everything else.

    Expired access tokens are invalid like any other: the client refreshes on any 401.

    A gate's scanner sends the same device token with every scan, so each process remembers a
    verified token for up to a minute (never past its expiry, and only while the key ring holds
    the same keys): the signature is checked once, not on every request. The lifecycle check of
    the principal (its session, or its device) runs on every request regardless (api.auth).
    """
    clock = time.time() if now is None else now
    if now is None and isinstance(token, str):
        hit = _verified.lookup(token)
        if hit is not MISSING and hit[0] is keyring.keys:
            return hit[1]
    typ = _header(token, MAX_TOKEN_LENGTH).get("typ")
    kind = _ACCESS_BY_TYP.get(typ) if isinstance(typ, str) else None
    if kind is None:
        raise InvalidToken("not an access token")
    try:
        claims = verify(keyring, token, kind, now=now)
    except ExpiredToken:
        raise InvalidToken("expired") from None
    try:
        principal = Principal(
            kind=kind.name,  # type: ignore[arg-type]
            subject=UUID(claims["sub"]),
            role=_optional_str(claims.get("role")),
            district=_optional_str(claims.get("dst")),
            merchant_id=_optional_uuid(claims.get("mid")),
            venue_id=_optional_uuid(claims.get("vid")),
            secret_generation=_optional_int(claims.get("gen")),
            session_id=_optional_uuid(claims.get("sid")),
        )
    except (ValueError, TypeError):
        raise InvalidToken("bad principal claims") from None
    if now is None:
        # Valid while `exp` + leeway has not passed: exactly the window `verify` accepts.
        ttl = min(claims["exp"] + LEEWAY_SECONDS - clock, _VERIFIED_REUSE_SECONDS)
        _verified.put(token, (keyring.keys, principal), ttl=ttl)
    return principal


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int:  # bool is an int subclass, and a float is not a generation
        raise TypeError("not an integer")
    return value


def _optional_uuid(value: object) -> UUID | None:
    return None if value is None else UUID(_optional_str(value))
