"""Sessions: access + rotating refresh tokens; reuse of a rotated token revokes the family."""

from __future__ import annotations

import uuid

import msgspec
import pytest

import identity
from identity import InvalidRefreshToken, Principal
from tests.tokens import admin, auth_headers, veteran
from tests.support import both_profiles, both_redis


def _session_of(token: str, principal: Principal, **kwargs) -> uuid.UUID:
    """The session a token names, after checking the token is `principal`'s and names one."""
    verified = identity.verify_access_token(token, **kwargs)
    assert verified.session_id is not None
    assert msgspec.structs.replace(verified, session_id=None) == principal
    return verified.session_id


async def test_issue_session_gives_a_15_minute_access_token(conn, keyring):
    principal = veteran()
    session = await identity.issue_session(conn, principal, keyring=keyring)
    assert session.expires_in == 900 and session.token_type == "Bearer"
    sid = _session_of(session.access_token, principal, keyring=keyring)
    stored = await conn.fetch("SELECT token_hash, subject, family_id FROM refresh_tokens")
    assert len(stored) == 1 and stored[0]["subject"] == principal.subject
    assert stored[0]["family_id"] == sid
    assert session.refresh_token.encode() not in bytes(stored[0]["token_hash"])


@both_profiles
async def test_refresh_rotates_and_reuse_revokes_the_family(conn, keyring):
    principal = veteran()
    first = await identity.issue_session(conn, principal, keyring=keyring)
    second = await identity.refresh_session(conn, first.refresh_token, keyring=keyring)
    assert second.refresh_token != first.refresh_token
    # The same session: a refresh keeps the family, so a logout ends every token it issued.
    same = _session_of(first.access_token, principal, keyring=keyring)
    assert _session_of(second.access_token, principal, keyring=keyring) == same
    third = await identity.refresh_session(conn, second.refresh_token, keyring=keyring)
    # The stolen copy of the first token comes back: everything in the family dies.
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, first.refresh_token, keyring=keyring)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, third.refresh_token, keyring=keyring)
    assert await conn.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_refresh_of_an_account_that_does_not_exist_fails(conn, keyring):
    session = await identity.issue_session(conn, admin(), keyring=keyring)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, session.refresh_token, keyring=keyring)


async def test_other_sessions_survive_a_family_revocation(conn, keyring):
    principal = veteran()
    phone = await identity.issue_session(conn, principal, keyring=keyring)
    tablet = await identity.issue_session(conn, principal, keyring=keyring)
    rotated = await identity.refresh_session(conn, phone.refresh_token, keyring=keyring)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, phone.refresh_token, keyring=keyring)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, rotated.refresh_token, keyring=keyring)
    assert await identity.refresh_session(conn, tablet.refresh_token, keyring=keyring)


async def test_expired_unknown_and_malformed_refresh_tokens(conn, keyring):
    session = await identity.issue_session(conn, veteran(), now=1_000_000_000, keyring=keyring)
    for raw in (session.refresh_token, "A" * 43, "short", "", "é" * 43):
        with pytest.raises(InvalidRefreshToken):
            await identity.refresh_session(conn, raw, keyring=keyring)


@both_redis
async def test_logout_revokes_and_ignores_unknown_tokens(conn, redis, keyring):
    session = await identity.issue_session(conn, veteran(), keyring=keyring)
    await identity.revoke_session(conn, "B" * 43, redis=redis)
    await identity.revoke_session(conn, session.refresh_token, redis=redis)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, session.refresh_token, keyring=keyring)


@both_profiles
@both_redis
async def test_refresh_and_logout_over_http(client, app, conn):
    principal = veteran()
    session = await identity.issue_session(conn, principal, keyring=app.state.keyring)
    response = await client.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    _session_of(body["access_token"], principal, keyring=app.state.keyring)

    # Reuse over HTTP: 401, and the revocation was committed although the request failed.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["type"] == "urn:chongjun:problem:invalid-token"
    again = await client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401

    fresh = await identity.issue_session(conn, principal, keyring=app.state.keyring)
    assert (await client.post("/v1/auth/logout", json={"refresh_token": fresh.refresh_token})).status_code == 204
    after = await client.post("/v1/auth/refresh", json={"refresh_token": fresh.refresh_token})
    assert after.status_code == 401


async def test_refresh_ignores_a_stale_bearer_and_rejects_bad_bodies(client, app):
    headers = {"Authorization": "Bearer garbage"}
    response = await client.post("/v1/auth/refresh", json={"refresh_token": "C" * 43}, headers=headers)
    assert response.status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": "x", "extra": 1})).status_code == 400
    assert (await client.post("/v1/auth/refresh", content=b"{")).status_code == 400


@both_redis
async def test_access_token_from_a_session_works_on_a_route(client, app, conn):
    session = await identity.issue_session(conn, veteran(uuid.uuid4()), keyring=app.state.keyring)
    response = await client.post("/v1/me/codes", json={}, headers={"Authorization": f"Bearer {session.access_token}"})
    assert response.status_code == 201
    assert auth_headers(app, veteran())


async def test_an_admin_session_left_idle_ends_on_the_server_too(conn, keyring):
    """等保 timeout: a refresh token of an admin unused for IDLE_TIMEOUT is refused and its family
    revoked, although REFRESH_TTL (8 h) has not passed; a veteran's is not bound by it."""
    account, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username="idle.admin", password="correct horse battery", role="city")
    )
    principal = Principal(kind="admin", subject=account.id, role="city")
    start = 1_800_000_000.0
    idle = identity.IDLE_TIMEOUT["admin"].total_seconds()
    busy = await identity.issue_session(conn, principal, keyring=keyring, now=start)
    kept = await identity.refresh_session(conn, busy.refresh_token, keyring=keyring, now=start + idle - 60)
    left = await identity.issue_session(conn, principal, keyring=keyring, now=start)
    with pytest.raises(InvalidRefreshToken):
        await identity.refresh_session(conn, left.refresh_token, keyring=keyring, now=start + idle + 60)
    assert await conn.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL AND rotated_at IS NULL AND expires_at > to_timestamp($1)", start
    ) == 1  # only the busy session's current token is open
    assert await identity.refresh_session(conn, kept.refresh_token, keyring=keyring, now=start + 2 * idle - 120)
    person = await identity.issue_session(conn, veteran(), keyring=keyring, now=start)
    assert await identity.refresh_session(conn, person.refresh_token, keyring=keyring, now=start + 10 * idle)
