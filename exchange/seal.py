"""The batch e-seal: a detached compact JWS (RFC 7515 Appendix F) over the exact body bytes:
`<protected>..<signature>`, the signing input being `<protected>.<base64url(body)>`.

Signed by the app's key ring's active key (an `identity.Signer`: Ed25519, or SM2 under the gm crypto profile; the
kid is published in `/.well-known/jwks.json`), behind the one `BatchSigner` protocol. The receiver verifies with nothing but the
JWKS: `verify_batch(body, seal, jwks)`.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

import identity
from foundation.encoding import b64url, unb64url

__all__ = ("JWS_TYPE", "BatchSigner", "KeyRingSigner", "verify_batch")

JWS_TYPE = "cj-exchange-batch+json"


class BatchSigner(Protocol):
    def sign_detached(self, body: bytes) -> str:
        """`<protected>..<signature>` over `body`."""
        ...


class KeyRingSigner:
    """Seals with the key ring's active key (EdDSA, ES256 or SM2, alg pinned per kid)."""

    def __init__(self, keyring: identity.KeyRing) -> None:
        self.keyring = keyring

    def sign_detached(self, body: bytes) -> str:
        # One record of the ring: the key named in the header is the key that signs, even if the
        # ring is reloaded meanwhile (the record holds its own private key).
        key = self.keyring.active
        protected = b64url(msgspec.json.encode({"alg": key.alg, "kid": key.kid, "typ": JWS_TYPE}, order="sorted"))
        return f"{protected}..{b64url(key.sign_bytes(f'{protected}.{b64url(body)}'.encode()))}"


def verify_batch(body: bytes, seal: str, jwks: dict[str, Any]) -> bool:
    """True when `seal` is a valid detached JWS over `body` by a key of `jwks` (alg from the JWK)."""
    try:
        protected, empty, signature = seal.split(".")
        header = msgspec.json.decode(unb64url(protected))
        if empty or header.get("typ") != JWS_TYPE or "crit" in header or "b64" in header:
            return False
        jwk = next(k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid"))
        if jwk.get("alg") != header.get("alg"):
            return False
        # identity.VERIFIERS: one verifier per alg (EdDSA, ES256, SM2), the key type checked too.
        return identity.verify_signature(jwk["alg"], jwk, f"{protected}.{b64url(body)}".encode(), unb64url(signature))
    except (StopIteration, KeyError, ValueError, TypeError, AttributeError, msgspec.DecodeError):
        return False
