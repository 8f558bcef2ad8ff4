"""The one interface for signing bytes, and one verifier per JOSE `alg`.

A `Signer` is anything with a `kid`, an `alg`, its public JWK and `sign_bytes(data) -> signature`
(the JWS signature value: Ed25519 raw, ES256 and SM2 `r ‖ s`). Every byte signature of ours goes
through it: the key ring's active key (`identity.KeyRing.active`, a `KeyRecord`: archive
checkpoints, exchange batch seals) and the statement seal keys (`merchants.SealKey`). Both make
the value with `sign_bytes(private_key, data)`; `verify_bytes(public_key, data, signature)` checks
one, and `verify_signature(alg, jwk, data, signature)` does so for a JWK with the verifier
registered for that alg in `VERIFIERS`. A signer names its `kid`
and `alg` before it signs, so a header can carry them. Another crypto profile is one branch in
`sign_bytes` and one entry in `VERIFIERS`; every document signed through this interface
(checkpoints, batches, statements and their archive, the offline verifiers) takes it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
import jwt
import msgspec
import nacl.bindings
import nacl.exceptions
from jwt.exceptions import InvalidKeyError

from foundation.encoding import unb64url
from foundation.sm2 import SM2Error, SM2PrivateKey, SM2PublicKey, der_to_raw, raw_to_der
from identity.sm2jws import sm2_from_jwk

__all__ = (
    "VERIFIERS", "JwsInvalid", "JwsRefused", "Signer", "claims_refused", "sign_bytes", "verify_compact_jws",
    "verify_bytes", "verify_signature", "verify_typed_jws",
)


class Signer(Protocol):
    kid: str
    alg: str
    public_jwk: Mapping[str, Any]

    def sign_bytes(self, data: bytes) -> bytes:
        """The JWS signature value over `data` by this key (`alg`), as `verify_signature` checks it."""
        ...


def sign_bytes(private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey | SM2PrivateKey, data: bytes) -> bytes:
    """The JWS signature value over `data`: Ed25519 signs the bytes (RFC 8032, 64 bytes); ES256
    signs their SHA-256 and SM2 (with SM3 over Z_A ‖ data, the default ID: the gm profile) signs
    them, both answering `r ‖ s` (64 bytes), as JWS does."""
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign(data)
    if isinstance(private_key, SM2PrivateKey):
        return der_to_raw(private_key.sign(data))
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise TypeError(f"no signature of ours is made with a {type(private_key).__name__}")


def verify_bytes(public_key: object, data: bytes, signature: bytes) -> bool:
    """True when `signature` (the JWS signature value, as `sign_bytes` makes it) over `data` holds
    under `public_key` (Ed25519, P-256 or SM2); False for any other key type; never raises.

    Ed25519 is checked by libsodium (PyNaCl: the same curve and encoding, RFC 8032), in about half
    of OpenSSL's time (measured on the scan path, issue 16: ~60 us against 127 us)."""
    try:
        if isinstance(public_key, Ed25519PublicKey):
            if len(signature) != 64:
                return False
            nacl.bindings.crypto_sign_open(signature + data, public_key.public_bytes_raw())
            return True
        if isinstance(public_key, SM2PublicKey):
            # SM2 with SM3 and the default ID, signature r ‖ s (identity.sm2jws; the gm crypto profile).
            return len(signature) == 64 and public_key.verify(raw_to_der(signature), data)
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
            if len(signature) != 64:
                return False
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(SHA256()))
            return True
    except (nacl.exceptions.BadSignatureError, InvalidSignature, SM2Error, ValueError):
        return False
    return False


def _ed25519(jwk: Mapping[str, Any], data: bytes, signature: bytes) -> bool:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return False
    return verify_bytes(Ed25519PublicKey.from_public_bytes(unb64url(jwk["x"])), data, signature)


def _es256(jwk: Mapping[str, Any], data: bytes, signature: bytes) -> bool:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        return False
    x, y = (int.from_bytes(unb64url(jwk[n]), "big") for n in ("x", "y"))
    return verify_bytes(ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key(), data, signature)


def _sm2(jwk: Mapping[str, Any], data: bytes, signature: bytes) -> bool:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "SM2":
        return False
    return verify_bytes(sm2_from_jwk(dict(jwk)), data, signature)


VERIFIERS: dict[str, Callable[[Mapping[str, Any], bytes, bytes], bool]] = {
    "EdDSA": _ed25519,
    "ES256": _es256,
    "SM2": _sm2,
}
"""alg → verifier(jwk, data, signature): False for a key of the wrong type or a signature that
does not hold (a malformed JWK may raise; `verify_signature` turns that into False)."""


def verify_signature(alg: str, jwk: Mapping[str, Any], data: bytes, signature: bytes) -> bool:
    """True when `signature` over `data` holds under `jwk` with `alg`; never raises."""
    verifier = VERIFIERS.get(alg)
    if verifier is None:
        return False
    try:
        return bool(verifier(jwk, data, signature))
    except (InvalidSignature, InvalidKeyError, SM2Error, KeyError, ValueError, TypeError):
        return False


class JwsRefused(Exception):
    """Why a compact JWS of a given `typ` did not verify: `step` is malformed, wrong-type,
    unknown-key or bad-signature; `header` the unverified header ({} when malformed). Callers
    turn it into their own refusal, in their own words."""

    def __init__(self, step: str, header: dict[str, Any]) -> None:
        super().__init__(step)
        self.step, self.header = step, header


def verify_typed_jws(token: str, *, typ: str, key_for: Callable[[str], tuple[Any, str] | None]) -> dict[str, Any]:
    """The claims of a signed document (a status list, the trust list): its `typ` is `typ`, its
    `kid` names a key `key_for(kid) -> (key, alg)` trusts with that `alg`, its signature holds."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise JwsRefused("malformed", {}) from None
    if header.get("typ") != typ:
        raise JwsRefused("wrong-type", header)
    found = key_for(str(header.get("kid")))
    if found is None or found[1] != header.get("alg"):
        raise JwsRefused("unknown-key", header)
    try:
        return json.loads(jwt.api_jws.decode_complete(token, found[0], algorithms=[found[1]])["payload"])
    except (jwt.PyJWTError, ValueError):
        raise JwsRefused("bad-signature", header) from None


# --- the hot path's compact JWS: a scanned code, an access token ---------------------------------


class JwsInvalid(Exception):
    """A compact JWS that is malformed, names another `alg`, or whose signature does not hold."""


_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def verify_compact_jws(token: str, key: object, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS signed with `alg` by `key`'s private half; JwsInvalid
    otherwise. `key` is one of our public key objects (Ed25519, P-256, SM2), `alg` the one the
    verifier pins for it: the header's `alg` must say the same, never chooses.

    What PyJWT's `decode` does for these tokens, without its generic machinery (measured on the
    scan path, issue 16: 165 us a 随申码, of which 127 us the Ed25519 check; `verify_bytes` checks
    the signature). Claims are the caller's to check (`claims_refused`, then its own times).
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsInvalid("not a compact JWS")
    encoded_header, encoded_claims, encoded_signature = parts
    try:
        header = _decode_object(unb64url(encoded_header))
        signature = unb64url(encoded_signature, strict=True)
    except (ValueError, msgspec.DecodeError):
        raise JwsInvalid("unreadable header or signature") from None
    if header.get("alg") != alg:
        raise JwsInvalid("another algorithm")
    if not verify_bytes(key, (encoded_header + "." + encoded_claims).encode("ascii"), signature):
        raise JwsInvalid("bad signature")
    try:
        return header, _decode_object(unb64url(encoded_claims))
    except (ValueError, msgspec.DecodeError):
        raise JwsInvalid("unreadable claims") from None


def claims_refused(claims: dict[str, Any], *, issuer: str, audience: str, required: list[str]) -> str | None:
    """Why the registered claims do not fit (a reason), or None: every `required` claim present,
    `iss` is `issuer`, `aud` is `audience` or a list holding it (RFC 7519 §4.1)."""
    missing = [name for name in required if name not in claims]
    if missing:
        return f"missing {missing[0]}"
    if claims.get("iss") != issuer:
        return "another issuer"
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        return "another audience"
    return None
