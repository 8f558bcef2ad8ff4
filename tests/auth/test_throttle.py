"""identity.throttle on its own: reservations under real concurrency, in Redis and in PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis

from identity import LoginThrottled
from identity.throttle import CLIENT_FAILURE_LIMIT, USER_FAILURE_LIMIT, _counter, reserve_login
from tests.support import both_redis, init_connection

DEAD_REDIS = "redis://127.0.0.1:1/0"


async def _race(pool: asyncpg.Pool, redis: aioredis.Redis, attempts: int, *, username=None, client="c") -> int:
    """How many of `attempts` simultaneous reservations were granted (each on its own connection)."""

    async def one(n: int) -> bool:
        async with pool.acquire() as conn:
            try:
                await reserve_login(conn, redis, username=username or f"user-{n}", client=client)
            except LoginThrottled as refused:
                assert refused.extensions["retry_after"] > 0
                return False
        return True

    return sum(await asyncio.gather(*(one(n) for n in range(attempts))))


@pytest.fixture
async def pool(settings):
    async with asyncpg.create_pool(settings.database_url, min_size=10, max_size=10, init=init_connection) as pool:
        yield pool


@both_redis
async def test_redis_grants_exactly_the_limit_to_a_burst(pool, conn, redis):
    assert await _race(pool, redis, 60, username="target") == USER_FAILURE_LIMIT
    assert await _race(pool, redis, 60, client="10.0.0.1") == CLIENT_FAILURE_LIMIT
    assert await conn.fetchval("SELECT count(*) FROM login_attempts") == 0  # Redis answered


async def test_postgresql_grants_exactly_the_limit_to_a_burst_from_many_connections(pool):
    dead = aioredis.Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    try:
        assert await _race(pool, dead, 60, username="target") == USER_FAILURE_LIMIT
        assert await _race(pool, dead, 60, client="10.0.0.1") == CLIENT_FAILURE_LIMIT
    finally:
        await dead.aclose()


@both_redis
async def test_a_refusal_by_the_client_counter_gives_the_username_its_attempt_back(conn, redis):
    client = _counter("client", "10.0.0.2", CLIENT_FAILURE_LIMIT)
    await redis.set(client.key, CLIENT_FAILURE_LIMIT, ex=900)
    with pytest.raises(LoginThrottled):
        await reserve_login(conn, redis, username="innocent", client="10.0.0.2")
    assert await redis.get(_counter("user", "innocent", USER_FAILURE_LIMIT).key) in (None, b"0")


async def test_a_lapsed_postgresql_window_starts_again(conn):
    dead = aioredis.Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    try:
        for _ in range(USER_FAILURE_LIMIT):
            await reserve_login(conn, dead, username="target", client="c")
        with pytest.raises(LoginThrottled):
            await reserve_login(conn, dead, username="target", client="c")
        await conn.execute("UPDATE login_attempts SET window_ends = now() - interval '1 second'")
        await reserve_login(conn, dead, username="target", client="c")
    finally:
        await dead.aclose()
    user = _counter("user", "target", USER_FAILURE_LIMIT).key
    assert await conn.fetchval("SELECT attempts FROM login_attempts WHERE counter = $1", user) == 1
