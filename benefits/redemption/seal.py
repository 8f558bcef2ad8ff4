"""The bureau's e-seal on settlement statements (电子印章, seed 第十七条): Ed25519, detached JWS.

What is signed is the statement's canonical form: JSON with keys sorted, no whitespace, UTF-8,
and only strings, integers, booleans and null (amounts are integer fen), which for this content
is exactly RFC 8785 (JCS). The seal is a detached compact JWS (RFC 7515 Appendix F):
`<protected>..<signature>`, the payload being those canonical bytes. Anyone holding the published
JWK verifies offline: re-encode `statement` canonically, base64url it between the two dots, and
check the Ed25519 signature. `verify_sealed` does exactly that and needs nothing but the JWKS.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from merchants import SealKey

__all__ = ("CANONICALIZATION", "JWS_TYPE", "canonical_bytes", "seal", "verify_sealed")

JWS_TYPE = "cj-statement+json"
CANONICALIZATION = "JSON, keys sorted, no whitespace, UTF-8 (RFC 8785 for this content)"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    """Strict: only the one canonical spelling decodes (unused low bits must be zero)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def canonical_bytes(document: Any) -> bytes:
    """The bytes that are signed: a Struct or the same document parsed back from JSON."""
    return msgspec.json.encode(msgspec.to_builtins(document), order="sorted")


def seal(key: SealKey, document: Any) -> str:
    """A detached compact JWS over the canonical bytes of `document`."""
    header = {"alg": "EdDSA", "kid": key.kid, "typ": JWS_TYPE}
    protected = _b64url(msgspec.json.encode(header, order="sorted"))
    signing_input = f"{protected}.{_b64url(canonical_bytes(document))}".encode()
    return f"{protected}..{_b64url(key.sign(signing_input))}"


def verify_sealed(sealed: dict[str, Any], jwks: dict[str, Any]) -> bool:
    """True when `sealed["seal"]["jws"]` is a valid seal of `sealed["statement"]` by a key in `jwks`."""
    try:
        protected, empty, signature = sealed["seal"]["jws"].split(".")
        header = msgspec.json.decode(_unb64url(protected))
        if empty or header.get("alg") != "EdDSA" or header.get("typ") != JWS_TYPE:
            return False
        jwk = next(
            k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid") and k.get("kty") == "OKP" and k.get("crv") == "Ed25519"
        )
        public_key = Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))
        signing_input = f"{protected}.{_b64url(canonical_bytes(sealed['statement']))}".encode()
        public_key.verify(_unb64url(signature), signing_input)
        return True
    except (InvalidSignature, StopIteration, KeyError, ValueError, TypeError, AttributeError, msgspec.DecodeError):
        return False
