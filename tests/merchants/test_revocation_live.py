"""Revocation across processes: `chongjun serve --workers 2`, a device token in use on both."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests import tokens
from tests.factories.world import credit_code
from tests.support import live_server


async def test_revoked_device_is_refused_by_every_worker_within_a_second(settings):
    ring = await tokens.keyring_for(settings)
    admin = {"Authorization": "Bearer " + tokens.access_token(ring, tokens.admin("city"))}
    with live_server(settings, workers=2) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            merchant = (await http.post("/v1/admin/merchants", headers=admin, json={
                "name": "上海科技馆", "credit_code": credit_code(), "district": "310115",
                "contact_name": "赵", "contact_phone": "021-68622000",
            })).json()
            venue = (await http.post("/v1/admin/venues", headers=admin, json={
                "merchant_id": merchant["id"], "name_zh": "主馆", "district": "310115", "address": "世纪大道 2000 号",
                "domain": "culture",
            })).json()
            device = (await http.post("/v1/admin/devices", headers=admin, json={"venue_id": venue["id"], "label": "g"})).json()
            token = (await http.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})).json()
            as_device = {"Authorization": "Bearer " + token["access_token"]}
            # A keep-alive connection stays on one worker: several connections reach both, and
            # each worker caches the device as active just before the revocation.
            pollers = [httpx.AsyncClient(base_url=base_url, timeout=10, limits=httpx.Limits(max_connections=1)) for _ in range(6)]
            try:
                for _ in range(5):
                    warm = await asyncio.gather(*(p.get("/v1/devices/me", headers=as_device) for p in pollers))
                    assert [r.status_code for r in warm] == [200] * len(pollers)
                async with httpx.AsyncClient(base_url=base_url, timeout=10) as revoker:
                    revoked = await revoker.post(f"/v1/admin/devices/{device['device_id']}/revoke", headers=admin)
                assert revoked.status_code == 200
                since = time.monotonic()
                seen: list[tuple[float, int]] = []
                while (elapsed := time.monotonic() - since) < 1.5:
                    answers = await asyncio.gather(*(p.get("/v1/devices/me", headers=as_device) for p in pollers))
                    seen += [(elapsed, r.status_code) for r in answers]
            finally:
                for poller in pollers:
                    await poller.aclose()
    late_successes = [(t, s) for t, s in seen if s == 200 and t >= 1.0]
    assert not late_successes, late_successes
    assert {s for _, s in seen} <= {200, 401}
    assert seen[-1][1] == 401 and len(seen) > 20
