"""The key ring: creation, sealing, loading, JWKS, rotation and removal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid

import asyncpg
import pytest

import identity
from identity import InvalidCode, InvalidToken, KeyRing, SecretStore
from identity.codes import CODE_PREFIX, subject_for
from identity.keys import jwk_thumbprint
from identity.tokens import CODE, sign
from tests.support import both_profiles, init_connection, intl_only
from tests.tokens import veteran


async def _ring(settings, conn) -> KeyRing:
    ring = KeyRing(SecretStore.from_settings(settings))
    await ring.load(conn)
    return ring


async def test_first_start_creates_one_active_and_one_next_key(settings, conn):
    secrets = SecretStore.from_settings(settings)
    connections = [await asyncpg.connect(settings.database_url) for _ in range(4)]
    try:
        for other in connections:
            await init_connection(other)
        kids = await asyncio.gather(*(identity.ensure_signing_keys(c, secrets, create=True) for c in connections))
    finally:
        for other in connections:
            await other.close()
    assert len(set(kids)) == 1
    states = await conn.fetch("SELECT state, alg FROM signing_keys ORDER BY state")
    assert [(r["state"], r["alg"]) for r in states] == [("active", "EdDSA"), ("next", "EdDSA")]


async def test_production_does_not_create_keys(settings, conn):
    assert await identity.ensure_signing_keys(conn, SecretStore.from_settings(settings), create=False) is None
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


@intl_only
async def test_kid_is_the_rfc7638_thumbprint_prefix(keyring):
    for record in keyring.keys.values():
        jwk = record.public_jwk
        canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"))
        digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
        assert record.kid == digest[:16] == jwk_thumbprint(jwk)[:16]


@intl_only
async def test_private_keys_are_sealed_in_the_database(settings, conn, keyring):
    rows = await conn.fetch("SELECT kid, private_enc FROM signing_keys")
    for row in rows:
        sealed = bytes(row["private_enc"])
        assert b"PRIVATE KEY" not in sealed
        record = keyring.get(row["kid"])
        from cryptography.hazmat.primitives import serialization

        raw = record.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        assert raw not in sealed
    # Sealed under the kid as associated data: moving a blob to another kid does not open.
    first, second = rows
    await conn.execute("UPDATE signing_keys SET private_enc = $1 WHERE kid = $2", first["private_enc"], second["kid"])
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        await _ring(settings, conn)


@both_profiles
async def test_jwks_publishes_public_members_only(client, settings):
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    token_keys = [k for k in keys if not k["kid"].startswith("seal-")]
    assert {k["alg"] for k in token_keys} == {identity.profile_algorithm(settings.crypto_profile)}
    # The statement seal this process holds is the profile's too (what sealed before a switch is
    # published from PostgreSQL: tests/merchants/test_seal_profiles.py).
    seals = [k for k in keys if k["kid"].startswith("seal-")]
    assert [k["alg"] for k in seals] == (["SM2"] if settings.crypto_profile == "gm" else ["EdDSA"])
    for key in keys:
        members = {"kty", "crv", "x", "kid", "alg", "use"} | ({"y"} if key["alg"] == "SM2" else set())
        assert set(key) == members
        assert key["use"] == "sig"


@intl_only
async def test_rotation_keeps_retired_keys_verifying_until_removed(settings, conn, keyring):
    person = uuid.uuid4()
    old_code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, person)}, ttl_seconds=60)
    old_token = identity.issue_access_token(veteran(person), keyring=keyring)
    old_kid, upcoming = keyring.active.kid, next(r.kid for r in keyring.keys.values() if r.state == "next")

    result = await identity.rotate_keys(conn, keyring.secrets)
    assert result["retired"] == old_kid and result["active"] == upcoming
    await keyring.load(conn)
    assert keyring.get(old_kid).state == "retired"
    assert keyring.get(old_kid).private_key is None  # a retired key never signs again
    assert keyring.active.kid == upcoming
    # Signed before the rotation: still good.
    assert identity.verify_code(old_code, keyring=keyring).person_id == person
    assert identity.verify_access_token(old_token, keyring=keyring).subject == person
    # New signatures use the new key.
    assert identity.issue_access_token(veteran(), keyring=keyring) and keyring.active.kid == upcoming
    jwks_kids = {k["kid"] for k in keyring.jwks()["keys"]}
    assert jwks_kids == {old_kid, upcoming, result["next"]}

    assert await identity.remove_key(conn, old_kid)
    await keyring.load(conn)
    with pytest.raises(InvalidCode):
        identity.verify_code(old_code, keyring=keyring)
    with pytest.raises(InvalidToken):
        identity.verify_access_token(old_token, keyring=keyring)
    assert old_kid not in {k["kid"] for k in keyring.jwks()["keys"]}
    assert await conn.fetchval("SELECT private_enc FROM signing_keys WHERE kid = $1", old_kid) == b""


async def test_only_retired_keys_can_be_removed(conn, keyring):
    assert not await identity.remove_key(conn, keyring.active.kid)
    assert not await identity.remove_key(conn, "nosuchkidnosuchkid")


@intl_only
async def test_rotation_to_es256_and_back(conn, keyring):
    await identity.rotate_keys(conn, keyring.secrets, alg="ES256")  # next (EdDSA) active, new next ES256
    await identity.rotate_keys(conn, keyring.secrets, alg="ES256")  # ES256 active
    await keyring.load(conn)
    assert keyring.active.alg == "ES256"
    person = uuid.uuid4()
    token = identity.issue_access_token(veteran(person), keyring=keyring)
    assert identity.verify_access_token(token, keyring=keyring).subject == person
    code = identity.verify_code(
        CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, person)}, ttl_seconds=60), keyring=keyring
    )
    assert code.kid == keyring.active.kid
    assert {k["alg"] for k in keyring.jwks()["keys"]} == {"EdDSA", "ES256"}
    assert {k["crv"] for k in keyring.jwks()["keys"] if k["alg"] == "ES256"} == {"P-256"}


async def test_workers_know_the_next_key_before_it_signs(settings, conn, keyring):
    """`next` is loaded by every worker ahead of time, so a rotation never outruns a reload."""
    other_worker = await _ring(settings, conn)
    await identity.rotate_keys(conn, keyring.secrets)
    await keyring.load(conn)
    token = identity.issue_access_token(veteran(), keyring=keyring)
    identity.verify_access_token(token, keyring=other_worker)  # not reloaded, still verifies
    # Two rotations inside one reload period: the second new key is unknown until the reload.
    await identity.rotate_keys(conn, keyring.secrets)
    await keyring.load(conn)
    token = identity.issue_access_token(veteran(), keyring=keyring)
    with pytest.raises(InvalidToken):
        identity.verify_access_token(token, keyring=other_worker)
    await other_worker.load(conn)
    identity.verify_access_token(token, keyring=other_worker)
