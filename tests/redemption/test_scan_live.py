"""Invariants over real HTTP against `chongjun serve --workers 2`, Redis flushed mid-burst: single use,
per-person caps, venue capacity and the Idempotency-Key."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import DAILY, build_world, device_headers, suishen
from tests.support import both_redis, live_server
from tests.tokens import admin, auth_headers


async def _burst(base_url: str, requests: list[tuple[dict, dict]], *, connections: int = 100, redis=None):
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        async def one(body, headers):
            return await http.post("/v1/scans", json=body, headers=headers)

        tasks = [asyncio.create_task(one(body, headers)) for body, headers in requests]
        if redis is not None:
            await asyncio.sleep(0.05)
            await redis.flushdb()  # Redis loses what it held (this test process's database)
        return await asyncio.gather(*tasks)


@both_redis
async def test_one_code_and_one_daily_cap_across_two_workers(app, client, conn, redis, settings):
    world = await build_world(client, app)
    second_device, _ = await device_headers(client, auth_headers(app, admin("city")), world.venue_id)
    code = suishen(app, VETERAN_ID)
    with live_server(settings, workers=2) as base_url:
        same_code = [({"code": code, "venue_id": world.venue_id}, world.device_headers) for _ in range(1000)]
        replies = await _burst(base_url, same_code, redis=redis)
        assert all(r.status_code == 200 for r in replies), {r.status_code for r in replies}
        reasons = [r.json()["reason"] for r in replies]
        assert reasons.count("accepted") == 1 and set(reasons) == {"accepted", "replayed"}

        # 200 distinct fresh codes of one person, from two devices, against a 1/day cap.
        codes = [suishen(app, DISABLED_ID) for _ in range(200)]
        devices = [world.device_headers, second_device]
        many = [({"code": c, "venue_id": world.venue_id}, devices[i % 2]) for i, c in enumerate(codes)]
        replies = await _burst(base_url, many, redis=redis)
        reasons = [r.json()["reason"] for r in replies]
        assert reasons.count("accepted") == 1, reasons
        assert set(reasons) == {"accepted", "quota_exhausted"}
    rows = await conn.fetch("SELECT person_id, count(*) AS n FROM redemptions GROUP BY person_id")
    assert sorted(r["n"] for r in rows) == [1, 1]
    assert await conn.fetchval("SELECT sum(used) FROM quota_usage") == 2


@both_redis
async def test_venue_capacity_and_one_idempotency_key_across_two_workers(app, client, conn, redis, settings):
    # No per-person cap: only the venue's capacity (50 people a day, companions counted) stops them.
    world = await build_world(client, app, capacity=50, benefit={**DAILY, "caps": []})
    second_device, _ = await device_headers(client, auth_headers(app, admin("city")), world.venue_id)
    with live_server(settings, workers=2) as base_url:
        devices = [world.device_headers, second_device]
        visits = [
            ({"code": suishen(app, DISABLED_ID), "venue_id": world.venue_id, "companions": 1}, devices[i % 2])
            for i in range(200)
        ]
        replies = await _burst(base_url, visits, redis=redis)
        reasons = [r.json()["reason"] for r in replies]
        assert reasons.count("accepted") == 25, reasons  # 25 holders + 25 companions = 50
        assert set(reasons) == {"accepted", "venue_capacity_reached"}
        assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1::uuid", world.venue_id) == 50
        assert await conn.fetchval("SELECT sum(1 + companions) FROM redemptions") == 50

        # 1,000 sends of one scan under one Idempotency-Key: one decision, one answer.
        raised = await client.patch(  # capacity again, for the scan below
            f"/v1/admin/venues/{world.venue_id}", json={"daily_capacity": 1000}, headers=auth_headers(app, admin("city"))
        )
        assert raised.status_code == 200, raised.text
        body = {"code": suishen(app, VETERAN_ID), "venue_id": world.venue_id}
        keyed = {**world.device_headers, "Idempotency-Key": "gate-1-scan-42"}
        replies = await _burst(base_url, [(body, keyed)] * 1000, redis=redis)
        statuses = {r.status_code for r in replies}
        assert statuses <= {200, 409}, statuses  # 409: the first send was still being decided
        answers = {r.content for r in replies if r.status_code == 200}
        assert len(answers) == 1, answers  # every answered send got the first answer, byte for byte
        first = replies[[r.status_code for r in replies].index(200)].json()
        assert first["decision"] == "accepted"
        late = await _burst(base_url, [(body, keyed)])
        assert late[0].status_code == 200 and late[0].json() == first
    veteran = await conn.fetchval("SELECT person_id FROM redemptions WHERE id = $1::uuid", first["redemption_id"])
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE person_id = $1", veteran) == 1
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'gate-1-scan-42'") == 1
