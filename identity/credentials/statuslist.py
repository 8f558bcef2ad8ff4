"""IETF Token Status List (draft-ietf-oauth-status-list-20): encode, sign, read.

- `bits` per entry (1, 2, 4 or 8); entry i sits in byte i*bits//8, packed from the **least
  significant bit**; the bytes are compressed with ZLIB (RFC 1950) at level 9 and base64url'd
  into `{"bits": b, "lst": "..."}` (§4.1-4.2). Tested against the draft's own vectors.
- The Status List Token is a JWT with `typ: statuslist+jwt`, `sub` = the list's URI (equal to the
  `uri` in every credential that points at it), `iat`, `exp`, `ttl` (§5.1).
- Values: 0 VALID, 1 INVALID, 2 SUSPENDED (§7).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from foundation.encoding import b64url, unb64url
from identity.credentials.errors import VerificationRefused
from identity.signing import JwsRefused, verify_typed_jws

__all__ = (
    "INVALID",
    "STATUS_LIST_TYPE",
    "STATUS_NAMES",
    "SUSPENDED",
    "StatusList",
    "StatusListRefused",
    "VALID",
    "decode_status_list",
    "encode_status_list",
    "sign_status_list",
    "verify_status_list_token",
)

VALID, INVALID, SUSPENDED = 0, 1, 2
STATUS_NAMES = {VALID: "valid", INVALID: "invalid", SUSPENDED: "suspended"}
STATUS_LIST_TYPE = "statuslist+jwt"


class StatusListRefused(VerificationRefused):
    """A status list or status list token that does not verify."""


def encode_status_list(statuses: Mapping[int, int] | list[int], *, bits: int, size: int | None = None) -> dict[str, Any]:
    """`{"bits", "lst"}` for `statuses` (a list, or idx → value with every other entry 0)."""
    if bits not in (1, 2, 4, 8):
        raise ValueError("bits is 1, 2, 4 or 8")
    items = dict(enumerate(statuses)) if isinstance(statuses, list) else dict(statuses)
    count = size if size is not None else (max(items) + 1 if items else 0)
    raw = bytearray((count * bits + 7) // 8)
    per_byte = 8 // bits
    for idx, value in items.items():
        if not 0 <= value < (1 << bits) or not 0 <= idx < count:
            raise ValueError(f"status {value} at {idx} does not fit")
        raw[idx // per_byte] |= value << ((idx % per_byte) * bits)
    return {"bits": bits, "lst": b64url(zlib.compress(bytes(raw), 9))}


@dataclass(frozen=True, slots=True)
class StatusList:
    bits: int
    raw: bytes

    @property
    def size(self) -> int:
        return len(self.raw) * 8 // self.bits

    def get(self, idx: int) -> int:
        if not isinstance(idx, int) or not 0 <= idx < self.size:
            raise StatusListRefused("status-out-of-range", f"index {idx} is outside the status list ({self.size} entries)")
        per_byte = 8 // self.bits
        return (self.raw[idx // per_byte] >> ((idx % per_byte) * self.bits)) & ((1 << self.bits) - 1)


def decode_status_list(status_list: Mapping[str, Any]) -> StatusList:
    bits, lst = status_list.get("bits"), status_list.get("lst")
    if bits not in (1, 2, 4, 8) or not isinstance(lst, str):
        raise StatusListRefused("bad-status-list", "status_list needs bits in {1,2,4,8} and a base64url lst")
    try:
        raw = zlib.decompress(unb64url(lst))
    except (ValueError, zlib.error):
        raise StatusListRefused("bad-status-list", "lst is not base64url ZLIB data") from None
    return StatusList(bits, raw)


def sign_status_list(
    status_list: Mapping[str, Any], *, uri: str, private_key: Any, alg: str, kid: str, iat: int, exp: int, ttl: int
) -> str:
    payload = {"sub": uri, "iat": iat, "exp": exp, "ttl": ttl, "status_list": dict(status_list)}
    return jwt.encode(payload, private_key, algorithm=alg, headers={"kid": kid, "typ": STATUS_LIST_TYPE})


def verify_status_list_token(token: str, *, key_for: Any, uri: str, now: float) -> tuple[StatusList, dict[str, Any]]:
    """Check typ, key, signature, `sub` = `uri` and `exp` (TSL20 §8.3); `(list, claims)`."""
    try:
        claims = verify_typed_jws(token, typ=STATUS_LIST_TYPE, key_for=key_for)
    except JwsRefused as refused:
        header = refused.header
        raise StatusListRefused("bad-status-list", {
            "malformed": "the status list token is not a JWS",
            "wrong-type": f"typ is {header.get('typ')!r}, not statuslist+jwt",
            "unknown-key": f"the status list's key {header.get('kid')!r} is not trusted",
            "bad-signature": "the status list's signature does not verify",
        }[refused.step]) from None
    if claims.get("sub") != uri:
        raise StatusListRefused("wrong-status-list", f"the status list is {claims.get('sub')!r}, the credential points at {uri!r}")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise StatusListRefused("stale-status-list", "the cached status list has expired: download it again")
    return decode_status_list(claims.get("status_list") or {}), claims
