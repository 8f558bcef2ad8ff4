"""A Redis Cluster that does not answer behaves as a single Redis that does not: the same 503s where
Redis is needed, the same PostgreSQL fallbacks everywhere else, never a 500.

redis-py's cluster client raises some of its failures outside `RedisError` (no reachable node at
start, slots not covered); `foundation.connections.ClusterClient` makes them `RedisError`s.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.exceptions import RedisError

import identity
from api import create_app
from foundation.connections import ClusterClient, connect_redis
from tests.factories.people import VETERAN_ID
from tests.factories.world import build_world, suishen
from tests.support import cluster_only, free_port
from tests.tokens import auth_headers, keyring_for, veteran


def _nowhere(settings):
    return msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_cluster=True)


@cluster_only
async def test_ready_names_the_cluster(client):
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["redis"] == "ok", ready.text


async def test_a_cluster_nobody_answers_is_a_redis_error(settings):
    dead = connect_redis(_nowhere(settings))
    assert isinstance(dead, ClusterClient)
    try:
        with pytest.raises(RedisError):
            await dead.get("cj:x:{y}")
        with pytest.raises(RedisError):
            async with dead.pipeline(transaction=False) as pipe:
                pipe.get("cj:x:{y}")
                await pipe.execute()
    finally:
        await dead.aclose()


async def test_with_the_cluster_away_ready_says_so_and_codes_are_503(settings):
    down = create_app(_nowhere(settings))
    async with AsyncTestClient(app=down) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["redis"] == "down", ready.text
        code = await client.post("/v1/me/codes", headers=auth_headers(down, veteran()))
        assert code.status_code == 503, code.text
        assert code.headers["content-type"].startswith("application/problem+json")
    dead = connect_redis(_nowhere(settings))
    try:
        with pytest.raises(identity.CodeStoreUnavailable):
            await identity.issue_code(dead, uuid.uuid4(), keyring=await keyring_for(settings))
    finally:
        await dead.aclose()


@cluster_only
async def test_scans_and_login_with_the_cluster_away(app, client, conn, settings):
    """Scans fall back to PostgreSQL (accepted once, then replayed); a 随申码 login fails closed (503)."""
    world = await build_world(client, app)
    down = create_app(_nowhere(settings))
    async with AsyncTestClient(app=down) as gate:
        code = suishen(app, VETERAN_ID)
        body = {"code": code, "venue_id": world.venue_id}
        first = await gate.post("/v1/scans", json=body, headers={**world.device_headers, "Idempotency-Key": "k-1"})
        assert first.status_code == 200 and first.json()["decision"] == "accepted", first.text
        again = await gate.post("/v1/scans", json=body, headers=world.device_headers)
        assert again.json()["reason"] == "replayed"
        login = await gate.post("/v1/auth/suishen", json={"code": suishen(app, VETERAN_ID)})
        assert login.status_code == 503, login.text
        assert login.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1
