"""`chongjun bench stats`: 第二十三条 statistics on a year of a city's data.

A scratch database gets the demo catalog, `people` synthetic holders and `rows` ledger rows spread
over the last 365 days (3 % of them reversals), refused scans and ratings with 差评 cases, all
generated in SQL. Then the rollups and the reach are refreshed (timed), and
`benefits.stats.operating_stats` is timed for a city admin and a district admin over a 30-day and
a 365-day window. Nothing here is asserted: it prints what it measured.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import datetime, timedelta

import asyncpg

from benefits import catalog, stats
from chongjun.bench.scratch import scratch_database
from foundation.connections import connect_redis
from foundation.settings import Settings
from identity import Principal

__all__ = ("run_stats_bench",)

_CATEGORIES = ["{VETERAN}", "{DEMOBILIZED_SOLDIER}", "{VETERAN,DISABLED_SERVICEMAN}", "{MARTYR_FAMILY}", "{ACTIVE_SERVICE}",
               "{RETIRED_CADRE}"]
_DISTRICTS = ["310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310113", "310114",
              "310115", "310116", "310117", "310118", "310120", "310151"]


async def _generate(conn: asyncpg.Connection, *, people: int, rows: int) -> None:
    await conn.execute(
        """
        INSERT INTO people (id, id_hmac, id_sealed, name_sealed, seal_version, id_masked, name_masked, categories,
                            disability_grade, disability_cause, card_kind, card_status, card_province, district, birth_date)
        SELECT gen_random_uuid(), sha256(('bench-person-' || i)::bytea), '\\x00'::bytea, '\\x00'::bytea, 1,
               '310***********1234', '张*', ($2::text[])[1 + i % 6]::text[],
               CASE WHEN i % 6 = 2 THEN 1 + i % 10 END, CASE WHEN i % 6 = 2 THEN 'WAR' END,
               'VETERAN_CARD', CASE WHEN i % 50 = 0 THEN 'SUSPENDED' ELSE 'ACTIVE' END, '310000',
               ($3::text[])[1 + i % 16], date '1950-01-01' + (i % 20000)
          FROM generate_series(1, $1) AS i
        """,
        people, _CATEGORIES, _DISTRICTS,
    )
    await conn.execute("CREATE TEMP TABLE bench_people AS SELECT row_number() OVER () AS n, id FROM people")
    await conn.execute(
        "CREATE TEMP TABLE bench_offers AS SELECT row_number() OVER () AS n, vb.venue_id, vb.benefit_id, b.code,"
        " v.merchant_id FROM venue_benefits vb JOIN venues v ON v.id = vb.venue_id JOIN benefits b ON b.id = vb.benefit_id"
    )
    offers = await conn.fetchval("SELECT count(*) FROM bench_offers")
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, jti, code_source, companions, value_kind, priority)
        SELECT gen_random_uuid(), 'redemption', now() - make_interval(secs => (i * 31536000.0 / $1)),
               (now() - make_interval(secs => (i * 31536000.0 / $1)))::date,
               p.id, o.benefit_id, 1, o.code, o.venue_id, o.merchant_id, 'bench-' || i, 'cj', i % 3, 'free', i % 17 = 0
          FROM generate_series(1, $1) AS i
          JOIN bench_people p ON p.n = 1 + (i::bigint * 7919) % $2
          JOIN bench_offers o ON o.n = 1 + i % $3
        """,
        rows - rows // 33, people, offers,
    )
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, reverses, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, value_kind, reason)
        SELECT gen_random_uuid(), 'reversal', r.id, r.at + interval '5 minutes', r.service_day, r.person_id, r.benefit_id,
               1, r.benefit_code, r.venue_id, r.merchant_id, r.value_kind, 'bench'
          FROM (SELECT * FROM redemptions WHERE kind = 'redemption' ORDER BY seq LIMIT $1) r
        """,
        rows // 33,
    )
    await conn.execute(
        """
        INSERT INTO rejected_scans (id, at, service_day, reason, venue_id, merchant_id)
        SELECT gen_random_uuid(), now() - make_interval(secs => i * 315.0), (now() - make_interval(secs => i * 315.0))::date,
               (ARRAY['not_eligible', 'quota_exhausted', 'expired', 'replayed', 'outside_window'])[1 + i % 5],
               o.venue_id, o.merchant_id
          FROM generate_series(1, $1) AS i JOIN bench_offers o ON o.n = 1 + i % $2
        """,
        rows // 10, offers,
    )
    await conn.execute(
        """
        WITH picked AS (SELECT id, person_id, venue_id, merchant_id, at, row_number() OVER () AS n
                          FROM redemptions WHERE kind = 'redemption' AND seq % 20 = 0),
             rated AS (INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars, created_at)
                       SELECT gen_random_uuid(), id, person_id, venue_id, merchant_id, 1 + n % 5, at + interval '1 hour'
                         FROM picked RETURNING id, venue_id, stars, created_at)
        INSERT INTO rating_cases (id, rating_id, district, status, opened_at, due_at, reply, closed_at)
        SELECT gen_random_uuid(), r.id, v.district,
               CASE WHEN r.created_at < now() - interval '10 days' THEN 'closed' ELSE 'open' END,
               r.created_at, r.created_at + interval '5 days',
               CASE WHEN r.created_at < now() - interval '10 days' THEN '已处理' END,
               CASE WHEN r.created_at < now() - interval '10 days' THEN r.created_at + interval '2 days' END
          FROM rated r JOIN venues v ON v.id = r.venue_id WHERE r.stars <= 2
        """
    )
    await conn.execute("ANALYZE")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_stats_bench(settings: Settings, *, seed_catalog, rows: int, people: int, iterations: int, echo) -> dict:
    redis = connect_redis(settings)
    results: dict[str, list[float]] = {}
    try:
        async with scratch_database(settings) as (bench_settings, conn):
            await seed_catalog(conn, redis, bench_settings)
            started = time.perf_counter()
            await _generate(conn, people=people, rows=rows)
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM redemptions) AS ledger, (SELECT count(*) FROM people) AS people,"
                " (SELECT count(*) FROM rejected_scans) AS refused, (SELECT count(*) FROM ratings) AS ratings,"
                " (SELECT count(*) FROM rating_cases) AS cases, (SELECT count(*) FROM venues) AS venues,"
                " (SELECT count(*) FROM benefits WHERE status = 'active') AS benefits"
            )
            echo(f"generated in {time.perf_counter() - started:.1f} s: {dict(counts)}")
            async with conn.transaction():
                refreshed = await stats.refresh_stats(conn)
            echo(f"refresh: rollups {refreshed.rollup_seconds:.2f} s, reach over {refreshed.people} people "
                 f"{refreshed.reach_seconds:.2f} s")
            async with conn.transaction():
                again = await stats.refresh_stats(conn, reach=False)
            echo(f"refresh of the rollups again (concurrently, as the workers do every 5 min): {again.rollup_seconds:.2f} s")
            today = datetime.now(catalog.SHANGHAI).date()
            city = Principal(kind="admin", subject=uuid.uuid4(), role="city")
            pudong = Principal(kind="admin", subject=city.subject, role="district", district="310115")
            cases = {
                "city, 30 days": (city, 30), "city, 365 days": (city, 365),
                "district, 30 days": (pudong, 30), "district, 365 days": (pudong, 365),
            }
            rng = random.Random(1)
            for name, (caller, days) in cases.items():
                timings = []
                for i in range(iterations + 5):
                    end = today - timedelta(days=rng.randrange(0, 30))
                    query = stats.StatsQuery(date_from=end - timedelta(days=days - 1), date_to=end)
                    began = time.perf_counter()
                    report = await stats.operating_stats(conn, caller, query)
                    if i >= 5:  # the first few warm the caches (benefit versions)
                        timings.append((time.perf_counter() - began) * 1000)
                results[name] = timings
                echo(f"{name:<20} p50 {_pct(timings, 0.50):7.1f} ms  p99 {_pct(timings, 0.99):7.1f} ms  "
                     f"max {max(timings):7.1f} ms  (n={len(timings)}; last: {report.totals.redemptions} redemptions, "
                     f"{report.totals.people} people, {len(report.by_benefit)} benefits)")
    finally:
        await redis.aclose()
    return {name: (statistics.median(v), _pct(v, 0.99)) for name, v in results.items()}
