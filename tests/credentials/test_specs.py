"""SD-JWT and Token Status List against the specs' own examples, then the verifier's refusals."""

from __future__ import annotations

import base64
import time
import zlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.credentials import (
    SdJwtRefused,
    StatusListRefused,
    decode_status_list,
    disclosure_digest,
    encode_status_list,
    issue_sd_jwt,
    parse_compact,
    present,
    sd_hash,
    sign_status_list,
    verify_presentation,
    verify_status_list_token,
)
from identity.credentials.sdjwt import _decode_disclosure
from identity.keys import _public_jwk

# RFC 9901 §4.2.1 / §4.2.3 (recomputed in the shared reference).
RFC_DISCLOSURE = "WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0"
RFC_DIGEST = "X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0"
RFC_ARRAY_DISCLOSURE = "WyJsa2x4RjVqTVlsR1RQVW92TU5JdkNBIiwgIkZSIl0"
RFC_ARRAY_DIGEST = "w0I8EKcdCtUPkGCNUrfwVp2xEgNjtoIDlOxc9-PlOhs"


def test_disclosure_digests_are_the_rfcs():
    assert disclosure_digest(RFC_DISCLOSURE) == RFC_DIGEST
    assert disclosure_digest(RFC_ARRAY_DISCLOSURE) == RFC_ARRAY_DIGEST
    assert _decode_disclosure(RFC_DISCLOSURE) == ("_26bc4LT-ac6q2KI6cBW5es", "family_name", "Möbius")
    assert _decode_disclosure(RFC_ARRAY_DISCLOSURE) == ("lklxF5jMYlGTPUovMNIvCA", None, "FR")


def test_status_list_vectors_of_the_draft():
    one_bit = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
    encoded = encode_status_list(one_bit, bits=1)
    assert encoded == {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}
    assert zlib.decompress(base64.urlsafe_b64decode("eNrbuRgAAhcBXQ==")) == bytes([0xB9, 0xA3])
    two_bits = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
    assert encode_status_list(two_bits, bits=2) == {"bits": 2, "lst": "eNo76fITAAPfAgc"}
    decoded = decode_status_list({"bits": 2, "lst": "eNo76fITAAPfAgc"})
    assert [decoded.get(i) for i in range(12)] == two_bits
    with pytest.raises(StatusListRefused) as refused:
        decoded.get(12)
    assert refused.value.reason == "status-out-of-range"


def _issuer():
    key = Ed25519PrivateKey.generate()
    return key, {"k1": (key.public_key(), "EdDSA")}.get


def _credential(holder_public, issuer_key, *, exp_in=3600):
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "iat": now, "exp": now + exp_in, "vct": "urn:test",
              "cnf": {"jwk": _public_jwk(holder_public)}}
    return issue_sd_jwt(claims=claims, disclosable={"name": "张*", "district": "浦东新区", "category": ["退役军人"]},
                        private_key=issuer_key, alg="EdDSA", kid="k1")[0]


@pytest.mark.parametrize("holder_alg", ["EdDSA", "ES256"])
def test_presentation_verifies_and_discloses_only_what_was_chosen(holder_alg):
    issuer_key, lookup = _issuer()
    holder = Ed25519PrivateKey.generate() if holder_alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    sd = _credential(holder.public_key(), issuer_key)
    now = int(time.time())
    shown = present(sd, names={"district"}, holder_key=holder, holder_alg=holder_alg, aud="gate-1", nonce="n1", iat=now)
    verified = verify_presentation(shown, issuer_key=lookup, now=now, audience="gate-1", nonce="n1")
    assert verified.claims["district"] == "浦东新区"
    assert "name" not in verified.claims and "category" not in verified.claims
    assert verified.disclosed == ["district"]
    compact = parse_compact(shown)
    assert len(compact.disclosures) == 1 and compact.kb_jwt
    # sd_hash covers the issuer JWT and exactly the presented disclosures, final '~' included
    assert sd_hash(compact.issuer_jwt, compact.disclosures) != sd_hash(compact.issuer_jwt, [])


def _reason(presentation, lookup, **kw):
    with pytest.raises(SdJwtRefused) as refused:
        verify_presentation(presentation, issuer_key=lookup, now=kw.pop("now", time.time()), audience=kw.pop("aud", "gate-1"),
                            nonce=kw.pop("nonce", "n1"))
    return refused.value.reason


def test_every_tampering_is_refused_with_its_reason():
    issuer_key, lookup = _issuer()
    holder = Ed25519PrivateKey.generate()
    sd = _credential(holder.public_key(), issuer_key)
    now = int(time.time())
    shown = present(sd, names=None, holder_key=holder, holder_alg="EdDSA", aud="gate-1", nonce="n1", iat=now)
    assert verify_presentation(shown, issuer_key=lookup, now=now, audience="gate-1", nonce="n1").claims["name"] == "张*"

    # one byte of the issuer's signature changed
    jwt_part, rest = shown.split("~", 1)
    flipped = jwt_part[:-2] + ("A" if jwt_part[-2] != "A" else "B") + jwt_part[-1]
    assert _reason(flipped + "~" + rest, lookup) == "bad-signature"
    # a disclosure edited by the holder (its digest is then not in _sd)
    parts = shown.split("~")
    forged = parts[:]
    forged[1] = base64.urlsafe_b64encode('["salt", "name", "李*"]'.encode()).rstrip(b"=").decode()
    assert _reason("~".join(forged), lookup) == "bad-disclosure"
    # a disclosure dropped after the KB-JWT was made: sd_hash no longer matches
    assert _reason("~".join(parts[:1] + parts[2:]), lookup) == "bad-key-binding"
    # no KB-JWT at all
    assert _reason("~".join(parts[:-1]) + "~", lookup) == "no-key-binding"
    # KB-JWT by another key
    other = Ed25519PrivateKey.generate()
    stolen = present(sd, names=None, holder_key=other, holder_alg="EdDSA", aud="gate-1", nonce="n1", iat=now)
    assert _reason(stolen, lookup) == "bad-signature"
    # wrong audience, wrong nonce, old KB-JWT
    assert _reason(shown, lookup, aud="gate-2") == "bad-key-binding"
    assert _reason(shown, lookup, nonce="n2") == "bad-key-binding"
    assert _reason(shown, lookup, now=now + 3600) == "stale-key-binding"
    # an unknown issuer key, an expired credential
    assert _reason(shown, {}.get) == "unknown-key"
    expired = _credential(holder.public_key(), issuer_key, exp_in=-120)
    assert _reason(present(expired, names=None, holder_key=holder, holder_alg="EdDSA", aud="gate-1", nonce="n1", iat=now), lookup) == "expired"
    assert _reason("not-an-sd-jwt", lookup) == "malformed"


def test_a_claim_that_must_stay_visible_cannot_be_made_disclosable():
    issuer_key, _ = _issuer()
    with pytest.raises(ValueError):
        issue_sd_jwt(claims={"iss": "x"}, disclosable={"exp": 1}, private_key=issuer_key, alg="EdDSA", kid="k1")


def test_status_list_token_checks_type_uri_and_expiry():
    key = Ed25519PrivateKey.generate()
    lookup = {"k1": (key.public_key(), "EdDSA")}.get
    now = int(time.time())
    token = sign_status_list(encode_status_list({5: 2}, bits=2, size=64), uri="https://i/l/1", private_key=key,
                             alg="EdDSA", kid="k1", iat=now, exp=now + 60, ttl=30)
    status_list, claims = verify_status_list_token(token, key_for=lookup, uri="https://i/l/1", now=now)
    assert status_list.get(5) == 2 and status_list.get(4) == 0 and claims["ttl"] == 30
    for kwargs, reason in (
        ({"uri": "https://i/l/2", "now": now}, "wrong-status-list"),
        ({"uri": "https://i/l/1", "now": now + 61}, "stale-status-list"),
    ):
        with pytest.raises(StatusListRefused) as refused:
            verify_status_list_token(token, key_for=lookup, **kwargs)
        assert refused.value.reason == reason
    with pytest.raises(StatusListRefused):
        verify_status_list_token(token, key_for={}.get, uri="https://i/l/1", now=now)
