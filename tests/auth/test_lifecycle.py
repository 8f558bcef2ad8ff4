"""The session gate (identity.gate + identity.sessions): what ends a session ends its access tokens.

The cross-process cases are in test_lifecycle_live.py; these pin the mechanism in one process.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis

import identity
from foundation.errors import Unavailable
from identity import gate as lifecycle
from tests.support import init_connection
from tests.tokens import access_token, veteran


@pytest.fixture
async def pool(settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4, init=init_connection)
    yield pool
    await pool.close()


@pytest.fixture
def sessions():
    identity.SESSIONS.forget()
    yield identity.SESSIONS
    identity.SESSIONS.forget()


def _dead() -> aioredis.Redis:
    return aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)


async def _open(conn, keyring, principal=None) -> tuple[identity.SessionTokens, identity.Principal]:
    tokens = await identity.issue_session(conn, principal or veteran(), keyring=keyring)
    return tokens, identity.verify_access_token(tokens.access_token, keyring=keyring)


async def _is_open(principal, sessions, pool, redis) -> bool:
    return await identity.check_session(principal, pool=pool, redis=redis)


async def test_logout_closes_the_session_in_redis_and_postgres(conn, redis, pool, sessions, keyring):
    tokens, principal = await _open(conn, keyring)
    _, other_principal = await _open(conn, keyring, veteran(principal.subject))  # the same person's tablet
    assert await _is_open(principal, sessions, pool, redis)
    await identity.revoke_session(conn, tokens.refresh_token, redis=redis)
    assert await redis.get(lifecycle.state_key("session", principal.session_id)) == b"r"
    assert not await _is_open(principal, sessions, pool, redis)  # at once, in this process too
    assert await _is_open(other_principal, sessions, pool, redis)  # one logout ends one session
    await redis.flushdb()  # Redis lost: PostgreSQL still says so
    sessions.forget()
    assert not await _is_open(principal, sessions, pool, redis)


async def test_a_redis_back_with_old_data_does_not_reopen_a_session(conn, redis, pool, sessions, keyring):
    """Logged out while Redis was unreachable: the active marker cached before is not trusted after."""
    tokens, principal = await _open(conn, keyring)
    assert await _is_open(principal, sessions, pool, redis)  # the marker "g:0:<ms>" is now in Redis
    assert (await redis.get(lifecycle.state_key("session", principal.session_id))).startswith(b"g:0:")
    dead = _dead()
    try:
        await identity.revoke_session(conn, tokens.refresh_token, redis=dead)  # the publish fails
        assert not await _is_open(principal, sessions, pool, dead)  # PostgreSQL answers
    finally:
        await dead.aclose()
    # Redis is reachable again, still holding the marker from before the outage; past the backoff
    # the gate reads Redis again.
    assert (await redis.get(lifecycle.state_key("session", principal.session_id))).startswith(b"g:0:")
    await asyncio.sleep(lifecycle.REDIS_BACKOFF + 0.1)
    sessions.forget([principal.session_id])  # its answer, not its memory of the outage
    assert not await _is_open(principal, sessions, pool, redis)
    # ...and it corrected the marker for the workers that saw no outage.
    assert await redis.get(lifecycle.state_key("session", principal.session_id)) == b"r"
    sessions.forget()  # a worker that saw no outage trusts the corrected marker
    assert await redis.get(lifecycle.state_key("session", principal.session_id)) == b"r"
    assert await _is_open(principal, sessions, pool, redis) is False


async def test_reusing_a_refresh_token_ends_the_access_tokens_too(conn, redis, pool, sessions, keyring):
    tokens, principal = await _open(conn, keyring)
    await identity.refresh_session(conn, tokens.refresh_token, keyring=keyring, redis=redis)
    with pytest.raises(identity.InvalidRefreshToken):
        await identity.refresh_session(conn, tokens.refresh_token, keyring=keyring, redis=redis)
    assert not await _is_open(principal, sessions, pool, redis)


async def test_a_token_without_a_session_is_refused(client, app):
    """Veteran, staff and admin tokens of an older release carry no `sid`: the client logs in again."""
    sessionless = identity.issue_access_token(veteran(), keyring=app.state.keyring)
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {sessionless}"})
    assert response.status_code == 401
    assert response.json()["type"] == "urn:chongjun:problem:invalid-token"
    named = access_token(app, veteran())  # the same kind of principal, naming a session
    assert (await client.post("/v1/me/codes", json={}, headers={"Authorization": f"Bearer {named}"})).status_code == 201


async def test_the_hot_path_costs_at_most_one_redis_get(conn, redis, pool, sessions, keyring):
    _, principal = await _open(conn, keyring)
    assert await _is_open(principal, sessions, pool, redis)  # warms Redis
    await redis.config_resetstat()
    for _ in range(20):
        sessions.forget()
        assert await _is_open(principal, sessions, pool, redis)
    for _ in range(100):  # within the second: answered in process, no I/O at all
        assert await _is_open(principal, sessions, pool, redis)
    stats = await redis.info("commandstats")
    calls = {name: value["calls"] for name, value in stats.items()}
    calls.pop("cmdstat_info", None)
    calls.pop("cmdstat_config", None)
    assert calls == {"cmdstat_get": 20}


async def test_neither_redis_nor_postgres_means_503_not_a_pass(conn, settings, sessions, keyring):
    _, principal = await _open(conn, keyring)
    closed = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1, init=init_connection)
    await closed.close()
    dead = _dead()
    try:
        with pytest.raises(Unavailable):
            await _is_open(principal, sessions, closed, dead)
    finally:
        await dead.aclose()
