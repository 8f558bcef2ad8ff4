"""The electronic 优待证 end to end: issue over the API, present, verify offline (library and CLI),
suspend the card with a roster import, refresh the status list, and see it refused as suspended."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.errors import PROBLEM_TYPE_PREFIX
from identity.credentials import check_presentation, present
from identity.keys import _public_jwk
from tests.people.test_api import ENROLLED, HEADER, import_csv
from tests.support import both_profiles
from tests.tokens import auth_headers, veteran

ROSTER = HEADER + "\n" + f"{ENROLLED},张三丰,VETERAN|COMBAT_VETERAN,,,VETERAN_CARD,ACTIVE,310000,浦东新区,1990-01-01\n"
SUSPENDED_ROSTER = ROSTER.replace(",ACTIVE,", ",SUSPENDED,")


async def _enrolled(client, app, conn):
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    return await conn.fetchval("SELECT id FROM people")


async def _fetch_public(client):
    jwks = (await client.get("/.well-known/jwks.json")).json()
    status = await client.get("/v1/status-lists/1")
    assert status.status_code == 200 and status.headers["content-type"].startswith("application/statuslist+jwt")
    return jwks, status.text


@both_profiles
async def test_credential_verifies_offline_fails_on_one_byte_and_when_suspended(client, app, conn, tmp_path, settings):
    person_id = await _enrolled(client, app, conn)
    holder = Ed25519PrivateKey.generate()
    answer = await client.post("/v1/me/credential", json={"holder_jwk": _public_jwk(holder.public_key())},
                               headers=auth_headers(app, veteran(person_id)))
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    assert issued["format"] == "dc+sd-jwt" and issued["status_list_uri"].endswith("/v1/status-lists/1")
    assert issued["disclosable"] == ["card_kind", "category", "district", "name", "valid_until"]
    assert ENROLLED not in answer.text and "张三丰" not in answer.text and str(person_id) not in answer.text
    jwks, status_token = await _fetch_public(client)
    # Signed by the key ring's active key: the crypto profile's algorithm (gm: SM2), credential
    # and status list alike.
    expected = "SM2" if settings.crypto_profile == "gm" else "EdDSA"
    assert jwt.get_unverified_header(issued["credential"].split("~")[0])["alg"] == expected
    assert jwt.get_unverified_header(status_token)["alg"] == expected

    now = int(time.time())
    shown = present(issued["credential"], names={"category", "district"}, holder_key=holder, holder_alg="EdDSA",
                    aud="gate-7", nonce="abc", iat=now)
    ok = check_presentation(shown, jwks=jwks, status_list_token=status_token, now=now, audience="gate-7", nonce="abc")
    assert ok.ok and ok.status == "valid", ok
    assert ok.claims["district"] == "浦东新区" and "退役军人" in ok.claims["category"] and "name" not in ok.claims

    # One byte changed anywhere in the issuer-signed part: refused, and the reason says so.
    head, rest = shown.split(".", 1)
    index = len(head) + 1 + 10  # a byte inside the payload
    tampered = shown[:index] + ("A" if shown[index] != "A" else "B") + shown[index + 1:]
    bad = check_presentation(tampered, jwks=jwks, status_list_token=status_token, now=now)
    assert not bad.ok and bad.reason in ("bad-signature", "malformed"), bad

    # The roster suspends the card; the verifier refreshes its cached status list.
    assert (await import_csv(client, app, SUSPENDED_ROSTER)).status_code == 200
    stale = check_presentation(shown, jwks=jwks, status_list_token=status_token, now=now)
    assert stale.ok  # the old cached list still says valid: the point of refreshing within ttl
    _, fresh = await _fetch_public(client)
    suspended = check_presentation(shown, jwks=jwks, status_list_token=fresh, now=now)
    assert (suspended.ok, suspended.reason, suspended.status) == (False, "suspended", "suspended")
    assert str(issued["status_idx"]) in suspended.detail

    # ... and the card becoming active again lifts the suspension (it was not a revocation).
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    _, again = await _fetch_public(client)
    assert check_presentation(shown, jwks=jwks, status_list_token=again, now=now).ok

    # A suspended card gets no new credential; audit recorded the issuance without personal data.
    assert (await import_csv(client, app, SUSPENDED_ROSTER)).status_code == 200
    refused = await client.post("/v1/me/credential", json={"holder_jwk": _public_jwk(holder.public_key())},
                                headers=auth_headers(app, veteran(person_id)))
    assert refused.status_code == 403 and refused.json()["type"] == PROBLEM_TYPE_PREFIX + "credential-refused"
    audit = await conn.fetch("SELECT detail::text AS detail FROM audit_log WHERE action = 'credential.issue'")
    assert len(audit) == 1 and ENROLLED not in audit[0]["detail"] and "张" not in audit[0]["detail"]

    # The CLI, offline, on files: VALID with the fresh-at-issue list, REFUSED suspended with the new one.
    (tmp_path / "p.txt").write_text(shown)
    (tmp_path / "jwks.json").write_text(__import__("json").dumps(jwks))
    (tmp_path / "old.jwt").write_text(status_token)
    _, latest = await _fetch_public(client)
    (tmp_path / "new.jwt").write_text(latest)
    base = [sys.executable, "-m", "chongjun.cli", "credential", "verify", str(tmp_path / "p.txt"), "--jwks", str(tmp_path / "jwks.json")]
    good = subprocess.run([*base, "--status-list", str(tmp_path / "old.jwt"), "--audience", "gate-7", "--nonce", "abc"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("VALID"), good.stdout + good.stderr
    gone = subprocess.run([*base, "--status-list", str(tmp_path / "new.jwt")], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and gone.stdout.startswith("REFUSED suspended"), gone.stdout + gone.stderr
    wrong_nonce = subprocess.run([*base, "--status-list", str(tmp_path / "old.jwt"), "--nonce", "other"],
                                 capture_output=True, text=True, timeout=60)
    assert wrong_nonce.returncode == 1 and "REFUSED bad-key-binding" in wrong_nonce.stdout


async def test_bad_holder_keys_are_422_and_status_list_ids_404(client, app, conn):
    person_id = await _enrolled(client, app, conn)
    headers = auth_headers(app, veteran(person_id))
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    for jwk in ({"kty": "RSA", "n": "x", "e": "AQAB"}, {"kty": "OKP", "crv": "Ed25519", "x": "short"},
                {**_public_jwk(Ed25519PrivateKey.generate().public_key()), "d": private.hex()}):
        answer = await client.post("/v1/me/credential", json={"holder_jwk": jwk}, headers=headers)
        assert answer.status_code == 422 and answer.json()["type"] == PROBLEM_TYPE_PREFIX + "invalid-holder-key", answer.text
    assert (await client.get("/v1/status-lists/2")).status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM credentials") == 0


async def test_concurrent_issuance_never_shares_a_status_index(client, app, conn):
    person_id = await _enrolled(client, app, conn)
    headers = auth_headers(app, veteran(person_id))
    jwk = _public_jwk(Ed25519PrivateKey.generate().public_key())
    answers = await asyncio.gather(*(client.post("/v1/me/credential", json={"holder_jwk": jwk}, headers=headers) for _ in range(8)))
    assert all(a.status_code == 201 for a in answers)
    indices = [a.json()["status_idx"] for a in answers]
    assert len(set(indices)) == 8
    assert await conn.fetchval("SELECT count(DISTINCT status_idx) FROM credentials") == 8
