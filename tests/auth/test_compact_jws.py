"""`identity.signing.verify_compact_jws`, the hot path's JWS check (a scanned code, an access
token), for each of our key types: what PyJWT signs verifies, anything else is `JwsInvalid`."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from foundation.sm2 import SM2PrivateKey
from identity.signing import JwsInvalid, claims_refused, verify_compact_jws
from tests.auth import forge

CLAIMS = {"iss": "cjmf", "aud": "cjmf:code", "sub": "s", "iat": 1, "exp": 2, "jti": "j" * 22}
KEYS = {
    "EdDSA": Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "SM2": SM2PrivateKey.generate,
}


@pytest.fixture(params=sorted(KEYS))
def signer(request):
    return request.param, KEYS[request.param]()


def test_what_pyjwt_signs_verifies(signer):
    alg, key = signer
    token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": "k1", "typ": "t"})
    header, claims = verify_compact_jws(token, key.public_key(), alg)
    assert header == {"alg": alg, "kid": "k1", "typ": "t"} and claims == CLAIMS


def test_every_changed_part_fails(signer):
    alg, key = signer
    token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": "k1"})
    head, body, signature = token.split(".")
    raw = forge.unb64(signature)
    variants = {
        "payload": forge.tamper_payload(token, iat=2),
        "header": forge.b64(b'{"alg":"%s","kid":"k2"}' % alg.encode()) + "." + body + "." + signature,
        "signature bit": f"{head}.{body}." + forge.b64(bytes([raw[0] ^ 1]) + raw[1:]),
        "signature short": f"{head}.{body}." + forge.b64(raw[:-1]),
        "signature empty": f"{head}.{body}.",
        "other key": jwt.encode(CLAIMS, KEYS[alg](), algorithm=alg, headers={"kid": "k1"}),
        "four parts": token + ".x",
        "not base64": f"{head}.{body}.!!!",
        "claims not an object": ".".join((head, forge.b64(b"[1]"), signature)),
    }
    passed = []
    for name, forged in variants.items():
        try:
            verify_compact_jws(forged, key.public_key(), alg)
        except JwsInvalid:
            continue
        passed.append(name)
    assert passed == []


def test_the_header_never_chooses_the_algorithm(signer):
    alg, key = signer
    token = jwt.encode(CLAIMS, key, algorithm=alg)
    for other in sorted(set(KEYS) - {alg}):
        with pytest.raises(JwsInvalid, match="another algorithm"):
            verify_compact_jws(token, key.public_key(), other)
    unsigned = forge.unsigned({"alg": "none"}, CLAIMS)
    with pytest.raises(JwsInvalid):
        verify_compact_jws(unsigned, key.public_key(), alg)
    # A key of another type under the pinned alg: never a pass.
    with pytest.raises(JwsInvalid):
        verify_compact_jws(token, KEYS[sorted(set(KEYS) - {alg})[0]]().public_key(), alg)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "dev-city-idp"}, "another issuer"),
        ({"aud": "cjmf:session"}, "another audience"),
        ({"aud": ["x", "cjmf:code"]}, None),
        ({"aud": ["x"]}, "another audience"),
        ({"jti": None}, None),
    ],
)
def test_registered_claims(change, reason):
    claims = {**CLAIMS, **change}
    assert claims_refused(claims, issuer="cjmf", audience="cjmf:code", required=list(CLAIMS)) == reason


def test_a_missing_required_claim_is_named():
    claims = {k: v for k, v in CLAIMS.items() if k != "exp"}
    assert claims_refused(claims, issuer="cjmf", audience="cjmf:code", required=list(CLAIMS)) == "missing exp"
