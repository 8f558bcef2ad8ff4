"""The signing interface: a seal by any registered alg verifies; each refusal names its reason."""

from __future__ import annotations

import copy

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from benefits.redemption.seal import explain_sealed, seal
from identity.keys import _public_jwk


class ES256Signer:
    """A Signer of another profile, as an SM2 one would be: kid, alg, public_jwk, sign_bytes."""

    alg = "ES256"

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "seal-es256-test"
        self.public_jwk = {**_public_jwk(self.private_key.public_key()), "kid": self.kid, "alg": "ES256"}

    def sign_bytes(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_a_seal_by_another_registered_alg_verifies_and_every_failure_is_named():
    signer = ES256Signer()
    document = {"statement": {"statement_id": "S1", "net_value_fen": 100, "merchant_name": "上海博物馆"}}
    document["seal"] = {"jws": seal(signer, document["statement"])}
    jwks = {"keys": [signer.public_jwk]}
    check = explain_sealed(document, jwks)
    assert (check.ok, check.kid, check.alg) == (True, signer.kid, "ES256")

    changed = copy.deepcopy(document)
    changed["statement"]["net_value_fen"] = 101
    assert explain_sealed(changed, jwks).reason == "signature-mismatch"
    assert explain_sealed(document, {"keys": []}).reason == "unknown-key"
    assert explain_sealed(document, {"keys": [{**signer.public_jwk, "alg": "EdDSA"}]}).reason == "wrong-alg"
    assert explain_sealed({"statement": {}}, jwks).reason == "not-a-sealed-document"
    broken = copy.deepcopy(document)
    broken["seal"]["jws"] = "abc.def.ghi"
    assert explain_sealed(broken, jwks).reason == "malformed-seal"
    other = ES256Signer()
    assert explain_sealed(document, {"keys": [{**other.public_jwk, "kid": signer.kid}]}).reason == "signature-mismatch"


def test_sm2_is_registered_and_refuses_what_it_should():
    from foundation.sm2 import SM2PrivateKey, der_to_raw
    from identity import sm2_jwk
    from identity.signing import verify_signature

    key = SM2PrivateKey.generate()
    jwk = {**sm2_jwk(key.public_key()), "alg": "SM2"}
    signature = der_to_raw(key.sign(b"data"))
    assert verify_signature("SM2", jwk, b"data", signature)
    assert not verify_signature("SM2", jwk, b"datA", signature)
    assert not verify_signature("SM2", jwk, b"data", signature[:-1])
    assert not verify_signature("SM2", {**jwk, "crv": "P-256"}, b"data", signature)
    assert not verify_signature("SM2", {**jwk, "x": "AAAA"}, b"data", signature)
    assert not verify_signature("EdDSA", jwk, b"data", signature)
