"""The crypto profile of the key ring: gm signs with SM2, intl with Ed25519, and switching either
way keeps everything signed before verifying (the algorithm is pinned per kid, never per token)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import msgspec
import pytest

import identity
from foundation.settings import load_settings
from foundation.sm2 import SM2PublicKey, raw_to_der
from identity import InvalidToken, KeyRing, SecretStore
from identity.tokens import VETERAN, sign, verify
from tests.support import both_profiles
from tests.tokens import veteran


def _header(token: str) -> dict:
    return jwt.get_unverified_header(token)


async def _ring(settings, conn) -> KeyRing:
    ring = KeyRing(SecretStore.from_settings(settings))
    await ring.load(conn)
    return ring


def test_the_profile_is_read_from_the_environment_and_checked() -> None:
    assert load_settings({}).crypto_profile == "intl"
    assert load_settings({"CHONGJUN_CRYPTO_PROFILE": "gm"}).crypto_profile == "gm"
    with pytest.raises(Exception):
        load_settings({"CHONGJUN_CRYPTO_PROFILE": "sm"})
    assert identity.profile_algorithm("gm") == "SM2" and identity.profile_algorithm("intl") == "EdDSA"


@both_profiles
async def test_first_start_makes_keys_of_the_profiles_algorithm(settings, conn, keyring):
    alg = identity.profile_algorithm(settings.crypto_profile)
    rows = await conn.fetch("SELECT state, alg FROM signing_keys ORDER BY state")
    assert [(r["state"], r["alg"]) for r in rows] == [("active", alg), ("next", alg)]
    token = identity.issue_access_token(veteran(), keyring=keyring)
    assert _header(token)["alg"] == alg
    jwks = keyring.jwks()["keys"]
    assert {k["alg"] for k in jwks} == {alg}
    if alg == "SM2":
        assert all(k["kty"] == "EC" and k["crv"] == "SM2" and {"x", "y"} <= set(k) for k in jwks)


async def test_gm_tokens_verify_with_nothing_but_the_published_jwk(settings, conn):
    gm = msgspec.structs.replace(settings, crypto_profile="gm")
    await identity.ensure_signing_keys(conn, SecretStore.from_settings(gm), create=True, alg="SM2")
    ring = await _ring(gm, conn)
    token = sign(ring, VETERAN, {"sub": str(uuid.uuid4())}, ttl_seconds=60)
    protected, payload, signature = token.split(".")
    [jwk] = [k for k in ring.jwks()["keys"] if k["kid"] == _header(token)["kid"]]
    public = SM2PublicKey.from_xy(*(base64.urlsafe_b64decode(jwk[c] + "==") for c in ("x", "y")))
    raw = base64.urlsafe_b64decode(signature + "==")
    assert len(raw) == 64  # r ‖ s, as ES256
    assert public.verify(raw_to_der(raw), f"{protected}.{payload}".encode())
    assert verify(ring, token, VETERAN)["iss"] == "cjmf"
    # Tampering with the payload, or re-labelling the SM2 kid's token as EdDSA, is refused.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "x"}).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        verify(ring, f"{protected}.{forged}.{signature}", VETERAN)
    header = json.loads(base64.urlsafe_b64decode(protected + "=="))
    relabelled = base64.urlsafe_b64encode(json.dumps({**header, "alg": "EdDSA"}).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        verify(ring, f"{relabelled}.{payload}.{signature}", VETERAN)


@pytest.mark.parametrize(("first", "then"), [("intl", "gm"), ("gm", "intl")])
async def test_switching_profiles_keeps_everything_signed_before_verifying(settings, conn, redis, first, then):
    secrets = SecretStore.from_settings(settings)
    await identity.ensure_signing_keys(conn, secrets, create=True, alg=identity.profile_algorithm(first))
    before = await _ring(settings, conn)
    person = uuid.uuid4()
    now = time.time()
    old_token = identity.issue_access_token(veteran(person), keyring=before, now=now)
    old_code = await identity.issue_code(redis, person, keyring=before, now=now)
    old_key = before.active
    old_bytes = old_key.sign_bytes(b"checkpoint 1")

    # A dev start under the other profile switches at once (the old active key is retired).
    await identity.ensure_signing_keys(conn, secrets, create=True, alg=identity.profile_algorithm(then))
    after = await _ring(settings, conn)
    assert after.active.alg == identity.profile_algorithm(then) != before.active.alg
    assert after.get(before.active.kid).state == "retired"
    assert {r.alg for r in after.keys.values() if r.state == "next"} == {after.active.alg}

    assert identity.verify_access_token(old_token, keyring=after, now=now + 5).subject == person
    assert identity.verify_code(old_code.code, keyring=after, now=now + 5).person_id == person
    assert identity.verify_signature(old_key.alg, after.get(old_key.kid).public_jwk, b"checkpoint 1", old_bytes)
    new_token = identity.issue_access_token(veteran(person), keyring=after, now=now)
    assert _header(new_token)["alg"] == after.active.alg
    new_code = await identity.issue_code(redis, person, keyring=after, now=now)
    assert identity.verify_code(new_code.code, keyring=after, now=now + 5).person_id == person
    # The 崇军码 pseudonym's cipher follows the signing key (SM4 beside SM2, AES otherwise).
    assert jwt.decode(old_code.code[4:], options={"verify_signature": False})["sub"] != jwt.decode(
        new_code.code[4:], options={"verify_signature": False}
    )["sub"]


async def test_production_switches_by_two_rotations_publishing_first(settings, conn):
    secrets = SecretStore.from_settings(settings)
    await identity.ensure_signing_keys(conn, secrets, create=True, alg="EdDSA")
    ring = await _ring(settings, conn)
    old = identity.issue_access_token(veteran(), keyring=ring)
    # Production never switches by itself.
    assert await identity.ensure_signing_keys(conn, secrets, create=False, alg="SM2") == ring.active.kid
    first = await identity.rotate_keys(conn, secrets, alg="SM2")
    ring = await _ring(settings, conn)
    assert ring.active.alg == "EdDSA" and ring.get(first["next"]).alg == "SM2"  # published, not signing
    await identity.rotate_keys(conn, secrets, alg="SM2")
    ring = await _ring(settings, conn)
    assert ring.active.alg == "SM2"
    assert identity.verify_access_token(old, keyring=ring).kind == "veteran"


@both_profiles
async def test_sign_bytes_is_the_profiles_algorithm_and_pinned_per_kid(settings, keyring):
    record = keyring.active
    signature = record.sign_bytes(b"tree size 7")
    assert record.alg == identity.profile_algorithm(settings.crypto_profile) and len(signature) == 64

    def verifies(kid: str, data: bytes, value) -> bool:
        # As an offline verifier does it: the published key of that kid, with its own alg.
        key = keyring.get(kid)
        return key is not None and identity.verify_signature(key.alg, key.public_jwk, data, value)

    assert verifies(record.kid, b"tree size 7", signature)
    assert not verifies(record.kid, b"tree size 8", signature)
    assert not verifies("nosuchkidnosuchk", b"tree size 7", signature)
    assert not verifies(record.kid, b"tree size 7", signature[:-1])
    assert not verifies(record.kid, b"tree size 7", "text")
    other = next(alg for alg in identity.ALGORITHMS if alg != record.alg)
    assert not identity.verify_signature(other, record.public_jwk, b"tree size 7", signature)


@both_profiles
async def test_the_rings_sign_is_the_profiles_algorithm_and_checks_with_identity_signing(settings, keyring):
    from identity import verify_signature

    key = keyring.active
    value = key.sign_bytes(b"checkpoint note")
    assert key.alg == identity.profile_algorithm(settings.crypto_profile)
    jwk = keyring.get(key.kid).public_jwk
    assert verify_signature(key.alg, jwk, b"checkpoint note", value)
    assert not verify_signature(key.alg, jwk, b"checkpoint notE", value)
