"""The rollups behind GET /v1/admin/stats (migration 0048) against the ledger itself: distinct
holders of any window and scope, events by day and place, ratings, on a generated ledger."""

from __future__ import annotations

import random
from datetime import timedelta

from benefits import stats
from benefits.ratings import LOW_STARS
from benefits.stats import db
from chongjun.bench.stats import _generate
from chongjun.demo import seed_demo

HOLDERS = """
    SELECT r.benefit_id, count(DISTINCT r.person_id) AS used
      FROM redemptions r JOIN venues v ON v.id = r.venue_id
     WHERE r.kind = 'redemption' AND r.service_day BETWEEN $1 AND $2
       AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
       AND ($5::uuid IS NULL OR r.benefit_id = $5)
     GROUP BY GROUPING SETS ((r.benefit_id), ())
"""

EVENTS = """
    SELECT r.kind, count(*) AS n, coalesce(sum(r.companions), 0) AS companions
      FROM redemptions r JOIN venues v ON v.id = r.venue_id
     WHERE r.service_day BETWEEN $1 AND $2
       AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
       AND ($5::uuid IS NULL OR r.benefit_id = $5)
     GROUP BY 1
"""

CATEGORIES = """
    SELECT c.category, count(*) AS n
      FROM redemptions r JOIN venues v ON v.id = r.venue_id JOIN people p ON p.id = r.person_id
     CROSS JOIN LATERAL unnest(p.categories) AS c (category)
     WHERE r.kind = 'redemption' AND r.service_day BETWEEN $1 AND $2
       AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
       AND ($5::uuid IS NULL OR r.benefit_id = $5)
     GROUP BY 1
"""

REFUSALS = """
    SELECT s.reason, count(*) AS n FROM rejected_scans s JOIN venues v ON v.id = s.venue_id
     WHERE s.service_day BETWEEN $1 AND $2
       AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
       AND ($5::uuid IS NULL OR s.benefit_id = $5)
     GROUP BY 1
"""

RATINGS = """
    SELECT count(*) AS n, avg(g.stars)::float AS average, count(*) FILTER (WHERE g.stars <= $6) AS low
      FROM ratings g JOIN venues v ON v.id = g.venue_id JOIN redemptions r ON r.id = g.redemption_id
     WHERE (g.created_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $1 AND $2
       AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
       AND ($5::uuid IS NULL OR r.benefit_id = $5)
"""


async def test_rollups_agree_with_the_ledger_for_every_window_and_scope(conn, redis, settings):
    await seed_demo(conn, redis, settings)
    # 300 people and 6,000 ledger rows over a year: each person comes back every ~18 days, at
    # venues of several districts and domains, so windows cut through their visits.
    await _generate(conn, people=300, rows=6000)
    async with conn.transaction():
        await stats.refresh_stats(conn, reach=False)
    assert await conn.fetchval("SELECT count(*) FROM stats_holders") > 0
    districts = [r["district"] for r in await conn.fetch("SELECT DISTINCT district FROM venues ORDER BY 1")]
    domains = [r["domain"] for r in await conn.fetch("SELECT DISTINCT domain FROM venues ORDER BY 1")]
    benefits = [r["benefit_id"] for r in await conn.fetch("SELECT DISTINCT benefit_id FROM redemptions ORDER BY 1")]
    assert len(districts) > 1 and len(domains) > 1 and len(benefits) > 1
    places = [tuple(r) for r in await conn.fetch(
        "SELECT DISTINCT v.district, v.domain, r.benefit_id FROM redemptions r JOIN venues v ON v.id = r.venue_id ORDER BY 1, 2, 3")]
    today = await conn.fetchval("SELECT max(service_day) FROM redemptions")
    rng = random.Random(12)
    checked = refusals_seen = 0
    for _ in range(80):
        start = today - timedelta(days=rng.randrange(0, 370))
        end = min(today, start + timedelta(days=rng.choice((0, 1, 6, 17, 18, 19, 30, 90, 365))))
        # Each dimension narrowed or not, to the place and benefit of a random ledger row.
        district, domain, benefit_id = rng.choice(places)
        scope = {
            "district": rng.choice((None, district)),
            "domain": rng.choice((None, domain)),
            "benefit_id": rng.choice((None, benefit_id)),
        }
        args = (start, end, scope["district"], scope["domain"], scope["benefit_id"])
        truth = {row["benefit_id"]: row["used"] for row in await conn.fetch(HOLDERS, *args)}
        truth.setdefault(None, 0)
        assert await db.people_used(conn, day_from=start, day_to=end, **scope) == truth, (start, end, scope)
        checked += truth[None] > 0

        rows = await db.daily(conn, day_from=start, day_to=end, **scope)
        events = {row["kind"]: row for row in await conn.fetch(EVENTS, *args)}
        for kind in ("redemption", "reversal"):
            expected = events[kind]["n"] if kind in events else 0
            for column in ("service_day", "district", "domain", "benefit_id"):
                assert sum(r["events"] for r in rows if r["kind"] == kind and r[column] is not None) == expected
        assert sum(r["companions"] for r in rows if r["kind"] == "redemption" and r["service_day"] is not None) == (
            events["redemption"]["companions"] if "redemption" in events else 0)

        by_category = {r["category"]: r["events"] for r in await db.daily_by_category(conn, day_from=start, day_to=end, **scope)}
        assert by_category == {r["category"]: r["n"] for r in await conn.fetch(CATEGORIES, *args)}
        refused = {r["reason"]: r["events"] for r in await db.refusals(conn, day_from=start, day_to=end, **scope)}
        assert refused == {r["reason"]: r["n"] for r in await conn.fetch(REFUSALS, *args)}
        refusals_seen += bool(refused)

        rated = await db.rating_totals(conn, day_from=start, day_to=end, low_stars=LOW_STARS, **scope)
        expected = await conn.fetchrow(RATINGS, *args, LOW_STARS)
        assert (rated["n"], rated["low"]) == (expected["n"], expected["low"])
        assert (rated["average"] is None and expected["average"] is None) or abs(rated["average"] - expected["average"]) < 1e-9
    assert checked > 40 and refusals_seen > 10  # most windows had holders (and some refusals) in them


async def test_a_new_redemption_counts_after_the_next_refresh(conn, redis, settings):
    await seed_demo(conn, redis, settings)
    await _generate(conn, people=100, rows=1000)
    async with conn.transaction():
        await stats.refresh_stats(conn, reach=False)
    day = await conn.fetchval("SELECT max(service_day) FROM redemptions")
    window = {"day_from": day - timedelta(days=29), "day_to": day, "district": None, "domain": None, "benefit_id": None}
    before = await db.people_used(conn, **window)
    # A person who has not come in the window comes today.
    newcomer = await conn.fetchrow(
        "SELECT p.id FROM people p WHERE NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.person_id = p.id"
        " AND r.service_day >= $1) LIMIT 1", window["day_from"])
    offer = await conn.fetchrow(
        "SELECT vb.venue_id, vb.benefit_id, b.code, v.merchant_id FROM venue_benefits vb JOIN venues v ON v.id = vb.venue_id"
        " JOIN benefits b ON b.id = vb.benefit_id LIMIT 1")
    await conn.execute(
        "INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code, venue_id,"
        " merchant_id, jti, code_source, companions, value_kind, priority)"
        " VALUES (gen_random_uuid(), 'redemption', now(), $1, $2, $3, 1, $4, $5, $6, 'test-newcomer', 'cj', 0, 'free', false)",
        day, newcomer["id"], offer["benefit_id"], offer["code"], offer["venue_id"], offer["merchant_id"],
    )
    assert await db.people_used(conn, **window) == before  # not before the refresh: as_of says so
    async with conn.transaction():
        await stats.refresh_stats(conn, reach=False)
    after = await db.people_used(conn, **window)
    assert after[None] == before[None] + 1
    assert after[offer["benefit_id"]] == before.get(offer["benefit_id"], 0) + 1
