"""Invariants 1 and 2 over real HTTP against `chongjun serve --workers 2`, Redis flushed mid-burst."""

from __future__ import annotations

import asyncio

import httpx

from tests.redemption.world import DISABLED_ID, VETERAN_ID, build_world, device_headers, suishen
from tests.support import live_server
from tests.tokens import admin, auth_headers


async def _burst(base_url: str, requests: list[tuple[dict, dict]], *, connections: int = 100, redis=None):
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        async def one(body, headers):
            return await http.post("/v1/scans", json=body, headers=headers)

        tasks = [asyncio.create_task(one(body, headers)) for body, headers in requests]
        if redis is not None:
            await asyncio.sleep(0.05)
            await redis.flushall()
        return await asyncio.gather(*tasks)


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
