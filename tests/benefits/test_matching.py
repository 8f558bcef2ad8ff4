"""免申即享 matching: reasons, quota from the ledger's counters, and a cache that is never stale."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from benefits import catalog
from benefits.catalog import Actor, StatusChange
from tests.factories.people import person
from tests.benefits.test_catalog_service import draft
from tests.factories.world import make_merchant, make_venue
from tests.support import both_redis

ADMIN = Actor("admin", "test-admin")
AT = datetime(2026, 11, 27, 2, tzinfo=UTC)


async def _world(conn):
    merchant = await make_merchant(conn)
    venue = await make_venue(conn, merchant.id)
    t1 = await catalog.create_benefit(conn, draft("T1"), ADMIN, venue_ids=[venue.id])
    c12 = await catalog.create_benefit(
        conn,
        draft(
            "C12",
            domain="culture",
            rule={"op": "has_any_category", "categories": ["VETERAN", "ACTIVE_SERVICE"]},
            value={"kind": "fixed_off", "amount_fen": 1000},
            caps=[{"period": "day", "max": 1}, {"period": "month", "max": 4}],
        ),
        ADMIN,
        venue_ids=[venue.id],
    )
    return venue, t1, c12


async def test_reasons_quota_and_venues(conn, redis):
    venue, t1, c12 = await _world(conn)
    veteran = person("DEMOBILIZED_SOLDIER")
    answer = await catalog.my_benefits(conn, redis, veteran, veteran.id, at=AT)
    by_code = {item.code: item for item in answer.items}
    assert not by_code["T1"].eligible
    assert by_code["T1"].clause == "$.rule" and "残疾军人" in by_code["T1"].reason_zh
    assert by_code["T1"].remaining is None and by_code["T1"].quota == []
    assert by_code["C12"].eligible and by_code["C12"].remaining == 1
    assert [v.id for v in by_code["C12"].venues] == [venue.id]
    assert by_code["C12"].value.amount_fen == 1000


@both_redis
async def test_the_cache_follows_quota_person_and_catalog(conn, redis):
    _, t1, c12 = await _world(conn)
    veteran = person("VETERAN")
    first = await catalog.my_benefits(conn, redis, veteran, veteran.id, at=AT)
    await catalog.settle_cache_writes()
    assert await redis.exists(catalog.person_cache_key(veteran.id))

    # A redemption counted in the ledger, then the engine drops the cached list.
    await conn.execute(
        "INSERT INTO quota_usage (person_id, benefit_id, period_key, used) VALUES ($1, $2, 'd:2026-11-27', 1),"
        " ($1, $2, 'm:2026-11', 1)",
        veteran.id,
        c12.benefit_id,
    )
    cached = await catalog.my_benefits(conn, redis, veteran, veteran.id, at=AT)
    assert cached == first  # served from the cache until told
    await catalog.forget_person_benefits(redis, veteran.id)
    fresh = await catalog.my_benefits(conn, redis, veteran, veteran.id, at=AT)
    quota = {q.period: q.remaining for q in next(i for i in fresh.items if i.code == "C12").quota}
    assert quota == {"day": 0, "month": 3}

    # The person changed: a new digest, so the cached answer is not used.
    disabled = msgspec.structs.replace(veteran, categories=frozenset({"VETERAN", "DISABLED_SERVICEMAN"}), disability_grade=2)
    changed = await catalog.my_benefits(conn, redis, disabled, veteran.id, at=AT)
    assert next(i for i in changed.items if i.code == "T1").eligible

    # The catalog changed: T1 paused disappears once the change is published.
    await catalog.change_status(conn, t1.benefit_id, StatusChange(status="paused"), ADMIN)
    await catalog.catalog_changed(redis)
    after = await catalog.my_benefits(conn, redis, disabled, veteran.id, at=AT)
    assert [i.code for i in after.items] == ["C12"]


async def test_matching_works_without_redis(conn, settings):
    import redis.asyncio as aioredis

    await _world(conn)
    broken = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    veteran = person("VETERAN")
    answer = await catalog.my_benefits(conn, broken, veteran, veteran.id, at=AT)
    assert {i.code for i in answer.items} == {"T1", "C12"}
    await broken.aclose()


@both_redis
async def test_public_catalog_summarises_rules(conn, redis):
    _, t1, _ = await _world(conn)
    public = await catalog.public_catalog(conn, redis)
    assert [b.code for b in public] == ["C12", "T1"]
    t1_summary = next(b for b in public if b.code == "T1")
    assert t1_summary.rule_summary_zh == "身份为残疾军人" and t1_summary.venues
    assert (await catalog.public_benefit(conn, redis, t1.benefit_id)).code == "T1"
