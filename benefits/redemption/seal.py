"""The bureau's e-seal on settlement statements (电子印章, seed 第十七条): detached JWS, versioned keys.

What is signed is the statement's canonical form: JSON with keys sorted, no whitespace, UTF-8,
and only strings, integers, booleans and null (amounts are integer fen), which for this content
is exactly RFC 8785 (JCS). The seal is a detached compact JWS (RFC 7515 Appendix F):
`<protected>..<signature>`, the payload being those canonical bytes. Anyone holding the published
JWK verifies offline: re-encode `statement` canonically, base64url it between the two dots, and
check the signature. `explain_sealed` does exactly that, needs nothing but the JWKS, and says
which step failed; `verify_sealed` is its yes/no.

The key is any `identity.Signer` (a `merchants.SealKey` version, Ed25519 or SM2; the header's
`kid` names the version, `alg` its algorithm), and the signature is checked by the verifier that
`identity.signing.VERIFIERS` registers for that alg, so a new crypto profile needs no change here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from foundation.encoding import b64url, unb64url
from foundation.structs import Record
from identity.signing import Signer, verify_signature

__all__ = ("CANONICALIZATION", "JWS_TYPE", "SealCheck", "canonical_bytes", "explain_sealed", "seal", "verify_sealed")

JWS_TYPE = "cj-statement+json"
CANONICALIZATION = "JSON, keys sorted, no whitespace, UTF-8 (RFC 8785 for this content)"


class SealCheck(Record):
    """What an offline check of a sealed document concluded: `ok`, or a stable `reason` and `detail`."""

    ok: bool
    reason: str | None = None
    detail: str | None = None
    kid: str | None = None
    alg: str | None = None


def canonical_bytes(document: Any) -> bytes:
    """The bytes that are signed: a Struct or the same document parsed back from JSON."""
    return msgspec.json.encode(msgspec.to_builtins(document), order="sorted")


def seal(key: Signer, document: Any) -> str:
    """A detached compact JWS over the canonical bytes of `document`."""
    header = {"alg": key.alg, "kid": key.kid, "typ": JWS_TYPE}
    protected = b64url(msgspec.json.encode(header, order="sorted"))
    signing_input = f"{protected}.{b64url(canonical_bytes(document))}".encode()
    return f"{protected}..{b64url(key.sign_bytes(signing_input))}"


def explain_sealed(sealed: Any, jwks: Any) -> SealCheck:
    """Check `sealed["seal"]["jws"]` over `sealed["statement"]` with a key of `jwks`, saying why not."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("statement"), dict) or not isinstance(sealed.get("seal"), dict):
        return SealCheck(ok=False, reason="not-a-sealed-document", detail="expected a JSON object with `statement` and `seal`")
    jws = sealed["seal"].get("jws")
    parts = jws.split(".") if isinstance(jws, str) else []
    if len(parts) != 3 or parts[1]:
        return SealCheck(ok=False, reason="malformed-seal", detail="seal.jws is not a detached compact JWS (`<header>..<signature>`)")
    protected, _, signature = parts
    try:
        header = msgspec.json.decode(unb64url(protected, strict=True))
        signature_bytes = unb64url(signature, strict=True)
    except (ValueError, msgspec.DecodeError):
        return SealCheck(ok=False, reason="malformed-seal", detail="the JWS header or signature is not canonical base64url JSON")
    if not isinstance(header, dict) or header.get("typ") != JWS_TYPE:
        return SealCheck(ok=False, reason="wrong-type", detail=f"the JWS typ is not {JWS_TYPE}")
    kid, alg = header.get("kid"), header.get("alg")
    keys = jwks.get("keys", []) if isinstance(jwks, dict) else []
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
    if jwk is None:
        return SealCheck(ok=False, reason="unknown-key", kid=kid, alg=alg,
                         detail=f"no key {kid!r} in the JWKS: fetch the issuer's current /.well-known/jwks.json")
    if jwk.get("alg") != alg:
        return SealCheck(ok=False, reason="wrong-alg", kid=kid, alg=alg, detail=f"the seal says {alg!r}, key {kid} is {jwk.get('alg')!r}")
    signing_input = f"{protected}.{b64url(canonical_bytes(sealed['statement']))}".encode()
    if not verify_signature(alg, jwk, signing_input, signature_bytes):
        return SealCheck(ok=False, reason="signature-mismatch", kid=kid, alg=alg,
                         detail="the signature does not hold: the statement was changed after sealing, or the seal is not this key's")
    return SealCheck(ok=True, kid=kid, alg=alg)


def verify_sealed(sealed: dict[str, Any], jwks: dict[str, Any]) -> bool:
    """True when `sealed["seal"]["jws"]` is a valid seal of `sealed["statement"]` by a key in `jwks`."""
    try:
        return explain_sealed(sealed, jwks).ok
    except (TypeError, ValueError, AttributeError):
        return False
