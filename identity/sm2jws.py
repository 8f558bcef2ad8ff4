"""SM2-with-SM3 as a JWS algorithm: `"alg": "SM2"`, registered in PyJWT at import.

No SM2 algorithm is registered with IANA for JOSE. The name in use is `SM2` (the Chinese JOSE
libraries and DID documents, with the key as `{"kty": "EC", "crv": "SM2", "x", "y"}`), so that is
the name we emit; docs/compliance.md says why. What the name means here, exactly:

- the signature is SM2 (GB/T 32918.2) over the JWS signing input with the SM3 digest and the
  distinguishing identifier `1234567812345678` (GM/T 0009's default);
- the JWS signature value is `r ‖ s`, 32 bytes each, big-endian, like ES256 (RFC 7518 §3.4), not
  DER: DER-vs-raw is where the Chinese libraries fail to interoperate, so we fix raw and say so;
- the key is the uncompressed point as a JWK with `kty` `EC`, `crv` `SM2`, base64url `x` and `y`.

A verifier never takes `alg` from the token (identity.tokens pins it per `kid`), so adding this
algorithm to PyJWT's registry opens no algorithm-confusion door.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from jwt.algorithms import Algorithm
from jwt.exceptions import InvalidKeyError

from foundation.encoding import b64url, unb64url
from foundation.sm2 import SM2Error, SM2PrivateKey, SM2PublicKey, der_to_raw, raw_to_der

__all__ = ("SM2_ALG", "SM2Algorithm", "sm2_jwk", "sm2_from_jwk")

SM2_ALG = "SM2"


def sm2_jwk(public_key: SM2PublicKey) -> dict[str, str]:
    point = public_key.point()
    return {"kty": "EC", "crv": "SM2", "x": b64url(point[1:33]), "y": b64url(point[33:])}


def sm2_from_jwk(jwk: dict[str, Any] | str) -> SM2PublicKey:
    data = json.loads(jwk) if isinstance(jwk, str) else jwk
    if data.get("kty") != "EC" or data.get("crv") != "SM2":
        raise InvalidKeyError("not an SM2 JWK")
    try:
        return SM2PublicKey.from_xy(unb64url(data["x"]), unb64url(data["y"]))
    except (SM2Error, KeyError, ValueError, TypeError):
        raise InvalidKeyError("bad SM2 JWK") from None


class SM2Algorithm(Algorithm):
    """PyJWT's interface over foundation.sm2 (the signature is `r ‖ s`)."""

    def prepare_key(self, key: Any) -> SM2PrivateKey | SM2PublicKey:
        if isinstance(key, SM2PrivateKey | SM2PublicKey):
            return key
        raise InvalidKeyError("an SM2 key object is required")

    def sign(self, msg: bytes, key: SM2PrivateKey) -> bytes:
        if not isinstance(key, SM2PrivateKey):
            raise InvalidKeyError("signing needs an SM2 private key")
        return der_to_raw(key.sign(msg))

    def verify(self, msg: bytes, key: SM2PublicKey | SM2PrivateKey, sig: bytes) -> bool:
        public = key.public_key() if isinstance(key, SM2PrivateKey) else key
        try:
            return public.verify(raw_to_der(sig), msg)
        except SM2Error:
            return False

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        public = key_obj.public_key() if isinstance(key_obj, SM2PrivateKey) else key_obj
        jwk = sm2_jwk(public)
        return jwk if as_dict else json.dumps(jwk)

    @staticmethod
    def from_jwk(jwk: str | dict[str, Any]) -> SM2PublicKey:
        return sm2_from_jwk(jwk)


if SM2_ALG not in jwt.api_jws._jws_global_obj.get_algorithms():
    jwt.register_algorithm(SM2_ALG, SM2Algorithm())
