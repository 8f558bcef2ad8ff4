"""The key ring at run time: shared by real worker processes, reloaded, strict in production."""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

import identity
from api import create_app
from identity import InvalidRefreshToken, MissingSecret
from tests.support import live_server, intl_only
from tests.tokens import auth_headers, keyring_for, veteran


def test_two_workers_share_one_key_ring(settings):
    """Two fresh workers race to create the first key; both verify what either signed."""
    import asyncio as aio

    with live_server(settings, workers=2) as base_url:
        ring = aio.run(keyring_for(settings))
        person = uuid.uuid4()
        headers = auth_headers(ring, veteran(person))
        with httpx.Client(base_url=base_url, timeout=10) as http:
            codes = [http.post("/v1/me/codes", json={}, headers=headers) for _ in range(30)]
            assert all(r.status_code == 201 for r in codes), [r.text for r in codes if r.status_code != 201][:1]
            # Every code from whichever worker verifies with the one ring and maps back to the person.
            for response in codes:
                assert identity.verify_code(response.json()["code"], keyring=ring).person_id == person
            # Token keys only: the statement seal (kid "seal-...") is published beside them.
            jwks = [k for k in http.get("/.well-known/jwks.json").json()["keys"] if not k["kid"].startswith("seal-")]
    assert len(jwks) == 2
    assert {k["kid"] for k in jwks} == set(ring.keys)


@intl_only
async def test_workers_reload_the_ring_in_the_background(settings, conn, monkeypatch):
    import api.auth

    monkeypatch.setattr(api.auth, "KEYRING_REFRESH_SECONDS", 0.05)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        ring = app.state.keyring
        first = ring.active.kid
        await identity.rotate_keys(conn, ring.secrets)
        await identity.rotate_keys(conn, ring.secrets)
        for _ in range(100):
            if ring.active.kid != first and len(ring.keys) == 4:
                break
            await asyncio.sleep(0.05)
        assert ring.active.kid != first
        kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]} - {ring_seal_kid(settings)}
        assert first in kids and len(kids) == 4


async def test_app_starts_while_postgres_is_down_and_cannot_sign(settings):
    broken = msgspec.structs.replace(settings, database_url="postgresql://postgres@127.0.0.1:1/none")
    app = create_app(broken)
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health")).status_code == 200
        keys = (await client.get("/.well-known/jwks.json")).json()
        assert [k for k in keys["keys"] if k["kid"] != ring_seal_kid(settings)] == []  # no token keys


def ring_seal_kid(settings) -> str:
    """The statement seal's kid (merchants), published in the JWKS beside the token keys."""
    import merchants

    return merchants.seal_key(settings).kid


async def _startup_failure(app) -> BaseException:
    """The error that stopped the app's start (unwrapped from anyio's exception group)."""
    with pytest.raises(BaseException) as caught:
        async with AsyncTestClient(app=app):
            pass
    error = caught.value
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def test_production_refuses_to_start_without_secrets(settings, tmp_path):
    production = msgspec.structs.replace(settings, env="production", secrets_dir=tmp_path / "empty")
    assert isinstance(await _startup_failure(create_app(production)), MissingSecret)


async def test_production_refuses_to_start_without_keys(settings, tmp_path):
    import base64
    import os

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("signing-kek.v1", "code-subject-key"):
        (secrets / name).write_text(base64.b64encode(os.urandom(32)).decode())
    production = msgspec.structs.replace(settings, env="production", secrets_dir=secrets)
    error = await _startup_failure(create_app(production))
    assert isinstance(error, RuntimeError) and "keys rotate" in str(error)


async def test_concurrent_refreshes_of_one_token_let_at_most_one_through(settings, conn, keyring):
    import asyncpg

    from tests.support import init_connection

    session = await identity.issue_session(conn, veteran(), keyring=keyring)
    connections = [await asyncpg.connect(settings.database_url) for _ in range(6)]
    try:
        for other in connections:
            await init_connection(other)
        results = await asyncio.gather(
            *(identity.refresh_session(c, session.refresh_token, keyring=keyring) for c in connections), return_exceptions=True
        )
    finally:
        for other in connections:
            await other.close()
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) <= 1
    assert all(isinstance(r, InvalidRefreshToken) for r in results if isinstance(r, BaseException))


async def test_refused_tokens_are_not_logged(client, app, caplog):
    token = auth_headers(app, veteran())["Authorization"].split()[1]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with caplog.at_level(logging.DEBUG):
        response = await client.post("/v1/me/codes", json={}, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert tampered not in caplog.text and token[:40] not in caplog.text
    assert any("bearer token refused" in r.getMessage() for r in caplog.records)


def test_staff_login_refresh_and_reuse_across_real_workers(settings):
    """create-admin → login → refresh → replay of the old refresh token, over real HTTP on 2 workers."""

    from tests.auth.test_accounts import PASSWORD, _cli

    with live_server(settings, workers=2) as base_url:
        done = _cli(settings, "create-admin", "--username", "ops", "--role", "auditor", stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        with httpx.Client(base_url=base_url, timeout=15) as http:
            login = http.post("/v1/auth/staff", json={"username": "ops", "password": PASSWORD})
            assert login.status_code == 200, login.text
            first = login.json()["refresh_token"]
            # Each call may land on either worker: the family state is in PostgreSQL, not in a process.
            second = http.post("/v1/auth/refresh", json={"refresh_token": first})
            assert second.status_code == 200, second.text
            replay = http.post("/v1/auth/refresh", json={"refresh_token": first})
            assert replay.status_code == 401
            assert replay.json()["type"] == "urn:chongjun:problem:invalid-token"
            revoked = http.post("/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
            assert revoked.status_code == 401
            wrong = [http.post("/v1/auth/staff", json={"username": "ops", "password": "nope nope"}) for _ in range(5)]
            assert {r.status_code for r in wrong} == {401}
            throttled = http.post("/v1/auth/staff", json={"username": "ops", "password": PASSWORD})
            assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
