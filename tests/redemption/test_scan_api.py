"""POST /v1/scans and reversals over the app: every reason code, idempotency, reversal, minimisation."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories.people import DISABLED_ID, STRANGER_ID, VETERAN_ID
from tests.factories.world import DAILY, build_world, suishen
from tests.support import both_profiles, both_redis


@pytest.fixture
async def world(app, client):
    return await build_world(client, app)


async def scan(client, world, code, *, headers=None, key=None, **body):
    request = {"code": code, "venue_id": world.venue_id, **body}
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post("/v1/scans", json=request, headers={**(headers or world.device_headers), **extra})


@both_profiles
@both_redis
async def test_accepted_then_replayed_then_quota_exhausted(app, client, conn, world):
    code = suishen(app, VETERAN_ID)
    first = await scan(client, world, code)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["decision"] == "accepted" and answer["reason"] == "accepted"
    assert answer["holder"] == {"name_masked": "张**", "category_label": "退役军人"}
    assert answer["benefit"]["code"] == "C8"
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE id = $1::uuid", answer["redemption_id"]) == 1

    again = (await scan(client, world, code)).json()
    assert again["decision"] == "rejected" and again["reason"] == "replayed"

    second_visit = (await scan(client, world, suishen(app, VETERAN_ID))).json()
    assert second_visit["reason"] == "quota_exhausted"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans") == 2


@both_redis
async def test_merchant_answer_carries_no_personal_data(app, client, world):
    answer = (await scan(client, world, suishen(app, DISABLED_ID), companions=1)).json()
    assert answer["decision"] == "accepted" and answer["priority"] is True  # grade 2, and over 60
    text = str(answer)
    for secret in (DISABLED_ID, "欧阳娜娜", "1949", "grade", "birth", "disability"):
        assert secret not in text
    assert set(answer) <= {
        "decision", "reason", "message", "message_en", "redemption_id", "holder", "benefit",
        "companions_allowed", "companions", "priority", "choices",
    }


@both_redis
async def test_reason_codes(app, client, conn, redis, world):
    assert (await scan(client, world, "CJ1:garbage")).json()["reason"] == "invalid_code"
    assert (await scan(client, world, suishen(app, STRANGER_ID))).json()["reason"] == "not_enrolled"
    import time

    expired = app.state.city.dev.issue(VETERAN_ID, ttl_seconds=60, now=time.time() - 200)
    assert (await scan(client, world, expired)).json()["reason"] == "expired"
    too_many = (await scan(client, world, suishen(app, VETERAN_ID), companions=3)).json()
    assert too_many["reason"] == "too_many_companions" and too_many["companions_allowed"] == 1

    from tests.tokens import admin, auth_headers

    city = auth_headers(app, admin("city"))
    other = await client.post("/v1/admin/benefits", json={**DAILY, "code": "C9", "venue_ids": [world.other_venue_id]}, headers=city)
    wrong = (await scan(client, world, suishen(app, VETERAN_ID), benefit_id=other.json()["benefit_id"])).json()
    assert wrong["reason"] == "wrong_venue"

    paused = await client.post(f"/v1/admin/benefits/{other.json()['benefit_id']}/status", json={"status": "paused"}, headers=city)
    assert paused.status_code in (200, 201), paused.text
    assert (await scan(client, world, suishen(app, VETERAN_ID), benefit_id=other.json()["benefit_id"])).json()["reason"] == "benefit_inactive"

    closed = {**DAILY, "code": "C10", "windows": {"date_ranges": [{"start": "2000-01-01", "end": "2000-01-02"}]}}
    late = await client.post("/v1/admin/benefits", json={**closed, "venue_ids": [world.venue_id]}, headers=city)
    if late.status_code == 201:
        outside = (await scan(client, world, suishen(app, VETERAN_ID), benefit_id=late.json()["benefit_id"])).json()
        assert outside["reason"] == "outside_window"

    only_disabled = {**DAILY, "code": "T1", "rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"}}
    t1 = await client.post("/v1/admin/benefits", json={**only_disabled, "venue_ids": [world.venue_id]}, headers=city)
    assert (await scan(client, world, suishen(app, VETERAN_ID), benefit_id=t1.json()["benefit_id"])).json()["reason"] == "not_eligible"
    choose = (await scan(client, world, suishen(app, DISABLED_ID))).json()
    assert choose["reason"] == "choose_benefit" and {c["code"] for c in choose["choices"]} >= {"C8", "T1"}

    await conn.execute("UPDATE people SET card_status = 'SUSPENDED'")
    assert (await scan(client, world, suishen(app, VETERAN_ID))).json()["reason"] == "card_suspended"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 0


async def test_a_benefit_edit_takes_effect_at_the_next_scan(app, client, conn, world):
    """The scan service keeps a venue's benefit list in memory for a few seconds; an edit must
    still count at once: the ledger statement refuses a stale version, the scan is decided again."""
    from tests.tokens import admin, auth_headers

    city = auth_headers(app, admin("city"))
    assert (await scan(client, world, suishen(app, DISABLED_ID))).json()["decision"] == "accepted"  # list now cached
    edited = await client.patch(
        f"/v1/admin/benefits/{world.benefit_id}",
        json={"rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"}},
        headers=city,
    )
    assert edited.status_code == 200, edited.text
    assert (await scan(client, world, suishen(app, VETERAN_ID))).json()["reason"] == "not_eligible"

    loosened = await client.patch(
        f"/v1/admin/benefits/{world.benefit_id}", json={"rule": DAILY["rule"]}, headers=city
    )
    assert loosened.status_code == 200, loosened.text
    accepted = (await scan(client, world, suishen(app, VETERAN_ID))).json()
    assert accepted["decision"] == "accepted", accepted
    versions = await conn.fetch("SELECT benefit_version FROM redemptions ORDER BY seq")
    assert [row["benefit_version"] for row in versions] == [1, 3]

    paused = await client.post(f"/v1/admin/benefits/{world.benefit_id}/status", json={"status": "paused"}, headers=city)
    assert paused.status_code == 200, paused.text
    refused = (await scan(client, world, suishen(app, DISABLED_ID), benefit_id=world.benefit_id)).json()
    assert refused["reason"] == "benefit_inactive"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 2


@both_redis
async def test_venue_capacity(app, client, conn):
    small = await build_world(client, app, capacity=2)
    first = await scan(client, small, suishen(app, DISABLED_ID), companions=1)
    assert first.json()["decision"] == "accepted"
    full = (await scan(client, small, suishen(app, VETERAN_ID))).json()
    assert full["reason"] == "venue_capacity_reached"


async def test_device_of_another_venue_is_refused(app, client, world):
    response = await scan(client, world, suishen(app, VETERAN_ID), headers=world.other_device_headers)
    assert response.status_code == 403


async def test_revoked_device_cannot_redeem(app, client, world):
    from tests.tokens import admin, auth_headers

    revoked = await client.post(f"/v1/admin/devices/{world.device_id}/revoke", headers=auth_headers(app, admin("city")))
    assert revoked.status_code in (200, 204), revoked.text
    assert (await scan(client, world, suishen(app, VETERAN_ID))).status_code == 401


@both_redis
async def test_idempotency_key(app, client, conn, world):
    code = suishen(app, VETERAN_ID)
    replies = await asyncio.gather(*[scan(client, world, code, key="k-1") for _ in range(50)])
    finished = [r for r in replies if r.status_code == 200]
    assert {r.status_code for r in replies} <= {200, 409}
    assert finished and all(r.content == finished[0].content for r in finished)
    assert finished[0].json()["decision"] == "accepted"
    later = await scan(client, world, code, key="k-1")
    assert later.content == finished[0].content
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1
    other_body = await scan(client, world, code, key="k-1", companions=1)
    assert other_body.status_code == 422


@both_profiles
@both_redis
async def test_reversal_restores_quota(app, client, conn, world):
    accepted = (await scan(client, world, suishen(app, VETERAN_ID))).json()
    rid = accepted["redemption_id"]
    assert (await scan(client, world, suishen(app, VETERAN_ID))).json()["reason"] == "quota_exhausted"
    nul = await client.post(f"/v1/scans/{rid}/reversal", json={"reason": "误\u0000扫"}, headers=world.device_headers)
    assert nul.status_code == 400 and nul.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE kind = 'reversal'") == 0
    reversed_ = await client.post(f"/v1/scans/{rid}/reversal", json={"reason": "误扫"}, headers=world.device_headers)
    assert reversed_.status_code == 200, reversed_.text
    again = await client.post(f"/v1/scans/{rid}/reversal", json={"reason": "误扫"}, headers=world.device_headers)
    assert again.status_code == 409
    foreign = await client.post(f"/v1/scans/{rid}/reversal", json={"reason": "x"}, headers=world.other_device_headers)
    assert foreign.status_code == 404
    assert (await scan(client, world, suishen(app, VETERAN_ID))).json()["decision"] == "accepted"
    kinds = await conn.fetch("SELECT kind FROM redemptions ORDER BY seq")
    assert [k["kind"] for k in kinds] == ["redemption", "reversal", "redemption"]


@both_redis
async def test_one_code_many_concurrent_scans(app, client, conn, world):
    code = suishen(app, VETERAN_ID)
    replies = await asyncio.gather(*[scan(client, world, code) for _ in range(100)])
    decisions = [r.json()["reason"] for r in replies]
    assert decisions.count("accepted") == 1
    assert set(decisions) <= {"accepted", "replayed"}
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1


@both_redis
async def test_device_scan_rate_limit(settings, conn):
    """CHONGJUN_DEVICE_SCAN_RATE: over the limit → 429 problem with Retry-After, nothing recorded."""
    import msgspec
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    app = create_app(msgspec.structs.replace(settings, device_scan_rate=3))
    async with AsyncTestClient(app=app) as client:
        world = await build_world(client, app)
        replies = [await scan(client, world, "CJ1:garbage", key=f"k{n}") for n in range(7)]
        first_limited = [r.status_code for r in replies].index(429)
        # The refused request left no "in flight" marker: its retry is not a 409.
        retry = await scan(client, world, "CJ1:garbage", key=f"k{first_limited}")
        assert retry.status_code in (200, 429), retry.text
        replies.append(retry)
    limited = [r for r in replies if r.status_code == 429]
    # 3 a minute: even if the run crosses a minute boundary, at most 6 of 8 get through.
    assert limited and len(replies) - len(limited) <= 6
    for reply in limited:
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(reply.headers["retry-after"]) <= 60
        assert reply.json()["type"] == "urn:chongjun:problem:scan-rate-limited"
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans") == len(replies) - len(limited)
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == len(replies) - len(limited)


@both_redis
async def test_device_scan_rate_limit_holds_while_redis_is_down(settings, conn):
    """Without Redis each worker counts a device's scans itself: the limit still bites."""
    import msgspec
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    app = create_app(msgspec.structs.replace(settings, device_scan_rate=3))
    down = create_app(msgspec.structs.replace(settings, device_scan_rate=3, redis_url="redis://127.0.0.1:1/0"))
    async with AsyncTestClient(app=app) as client:
        world = await build_world(client, app)
    async with AsyncTestClient(app=down) as gate:
        replies = [await scan(gate, world, "CJ1:garbage", key=f"k{n}") for n in range(8)]
    codes = [r.status_code for r in replies]
    assert set(codes) <= {200, 429} and 429 in codes
    # 3 a minute in this process: even across a minute boundary at most 6 of 8 get through.
    assert codes.count(200) <= 6
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans") == codes.count(200)


@both_redis
async def test_scans_go_on_while_redis_is_down(app, client, settings, conn, world):
    """README "what happens while Redis is down": PostgreSQL alone keeps every invariant."""
    import msgspec
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    nowhere = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    down = create_app(nowhere)
    async with AsyncTestClient(app=down) as gate:
        code = suishen(app, VETERAN_ID)
        first = await scan(gate, world, code, key="k-1")
        assert first.status_code == 200, first.text
        assert first.json()["decision"] == "accepted"
        assert (await scan(gate, world, code, key="k-1")).content == first.content  # the stored answer
        assert (await scan(gate, world, code)).json()["reason"] == "replayed"
        assert (await scan(gate, world, suishen(app, VETERAN_ID))).json()["reason"] == "quota_exhausted"
        different = await scan(gate, world, suishen(app, DISABLED_ID), key="k-1")
        assert different.status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1
