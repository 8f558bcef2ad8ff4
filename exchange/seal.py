"""The batch e-seal: a detached compact JWS (RFC 7515 Appendix F) over the exact body bytes:
`<protected>..<signature>`, the signing input being `<protected>.<base64url(body)>`.

Signed through the app's key ring (`identity.KeyRing`, its active key; the kid is published in
`/.well-known/jwks.json`), behind the one `BatchSigner` protocol, so another profile (the 国密
SM2 one) slots in by providing `sign_detached`. The receiver verifies with nothing but the
JWKS: `verify_batch(body, seal, jwks)`.
"""

from __future__ import annotations

from typing import Any, Protocol

import base64

import jwt
import msgspec

import identity

__all__ = ("JWS_TYPE", "BatchSigner", "KeyRingSigner", "verify_batch")

JWS_TYPE = "cj-exchange-batch+json"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BatchSigner(Protocol):
    def sign_detached(self, body: bytes) -> str:
        """`<protected>..<signature>` over `body`."""
        ...


class KeyRingSigner:
    """Seals with the key ring's active key (EdDSA or ES256, alg pinned per kid)."""

    def __init__(self, keyring: identity.KeyRing) -> None:
        self.keyring = keyring

    def sign_detached(self, body: bytes) -> str:
        record = self.keyring.active
        protected = _b64url(msgspec.json.encode({"alg": record.alg, "kid": record.kid, "typ": JWS_TYPE}, order="sorted"))
        signature = jwt.get_algorithm_by_name(record.alg).sign(f"{protected}.{_b64url(body)}".encode(), record.private_key)
        return f"{protected}..{_b64url(signature)}"


def verify_batch(body: bytes, seal: str, jwks: dict[str, Any]) -> bool:
    """True when `seal` is a valid detached JWS over `body` by a key of `jwks` (alg from the JWK)."""
    try:
        protected, empty, signature = seal.split(".")
        header = msgspec.json.decode(_unb64url(protected))
        if empty or header.get("typ") != JWS_TYPE or "crit" in header or "b64" in header:
            return False
        jwk = next(k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid"))
        if jwk.get("alg") != header.get("alg") or jwk["alg"] not in identity.ALGORITHMS:
            return False
        algorithm = jwt.get_algorithm_by_name(jwk["alg"])
        key = jwt.PyJWK(jwk).key
        return bool(algorithm.verify(f"{protected}.{_b64url(body)}".encode(), key, _unb64url(signature)))
    except (jwt.PyJWTError, StopIteration, KeyError, ValueError, TypeError, AttributeError, msgspec.DecodeError):
        return False
