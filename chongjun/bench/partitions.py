"""`chongjun bench partition-migration`: how long migration 0050 (the ledger partitioned by month)
holds the ledger on a ledger of `rows` redemptions.

A scratch database is migrated to the pre-partition schema (0049) and filled in SQL: `rows`
redemptions over the last 365 days at 16 venues (3 % of them reversed), a consumed code each,
a tenth as many refused scans, a rating for one visit in 20, and the rollups refreshed. Then 0050
alone is applied and timed: it runs in one transaction that takes ACCESS EXCLUSIVE on the
ledger's tables at its first statements, so that time is how long scans wait. Then the
migrations up to 0053 (which fills the rollups, without locking the ledger) are timed apart.
Nothing here is asserted but that every row is still there: it prints what it measured.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from foundation.connections import dsn_with_database, init_connection
from foundation.settings import Settings
from merchants.creditcode import make_credit_code
from migrations import MIGRATIONS_DIR, apply_migrations, discover

__all__ = ("run_partition_migration_bench",)

PARTITIONED_AT = 50
ROLLUPS_FILLED_AT = 53  # the rollups, filled in a transaction of their own (0051 and 0052 come between)


async def _fill(conn: asyncpg.Connection, rows: int, echo) -> None:
    merchant = uuid.uuid4()
    await conn.execute(
        "INSERT INTO merchants (id, name, credit_code, district, contact_name, contact_phone)"
        " VALUES ($1, 'bench', $2, '310115', 'c', '021-00000')",
        merchant, make_credit_code("310115", 4242),
    )
    await conn.execute(
        "INSERT INTO venues (merchant_id, name_zh, district, address, domain)"
        " SELECT $1, 'v' || i, (ARRAY['310101','310104','310115','310112'])[1 + i % 4], 'a', 'culture'"
        " FROM generate_series(1, 16) AS i",
        merchant,
    )
    async with conn.transaction():  # a benefit and its first version (a deferred key between them)
        await conn.execute(
            "INSERT INTO benefits (id, code, current_version, status, domain)"
            " SELECT gen_random_uuid(), 'BENCH' || i, 1, 'active', 'culture' FROM generate_series(1, 3) AS i"
        )
        await conn.execute(
            "INSERT INTO benefit_versions (benefit_id, version, status, spec, actor_kind, actor_id)"
            " SELECT id, 1, 'active', '{}'::jsonb, 'system', 'bench' FROM benefits"
        )
    await conn.execute(
        "INSERT INTO venue_benefits (venue_id, benefit_id) SELECT v.id, b.id FROM venues v CROSS JOIN benefits b"
    )
    await conn.execute(
        "CREATE TEMP TABLE bench_offers AS SELECT row_number() OVER () AS n, vb.venue_id, vb.benefit_id, b.code"
        " FROM venue_benefits vb JOIN benefits b ON b.id = vb.benefit_id"
    )
    offers = await conn.fetchval("SELECT count(*) FROM bench_offers")
    started = time.perf_counter()
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, jti, code_source, companions, value_kind, priority, period_keys)
        SELECT gen_random_uuid(), 'redemption', t.at, (t.at AT TIME ZONE 'Asia/Shanghai')::date,
               md5('p' || (i % 200000))::uuid,
               o.benefit_id, 1, o.code, o.venue_id, $3, 'bench-' || i, 'cj', i % 3, 'free', i % 17 = 0,
               ARRAY['m:' || to_char(t.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')]
          FROM generate_series(1, $1) AS i
          CROSS JOIN LATERAL (SELECT now() - interval '1 day' - make_interval(secs => i * 31449600.0 / $1) AS at) t
          JOIN bench_offers o ON o.n = 1 + i % $2
        """,
        rows, offers, merchant,
    )
    await conn.execute(
        "INSERT INTO consumed_codes (jti, redemption_id, consumed_at) SELECT jti, id, at FROM redemptions"
    )
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, reverses, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, value_kind, reason)
        SELECT gen_random_uuid(), 'reversal', r.id, r.at + interval '5 minutes', r.service_day, r.person_id, r.benefit_id,
               1, r.benefit_code, r.venue_id, r.merchant_id, r.value_kind, 'bench'
          FROM redemptions r WHERE r.seq % 33 = 0
        """
    )
    await conn.execute(
        """
        INSERT INTO rejected_scans (id, at, service_day, reason, venue_id, merchant_id)
        SELECT gen_random_uuid(), t.at, (t.at AT TIME ZONE 'Asia/Shanghai')::date,
               (ARRAY['not_eligible', 'quota_exhausted', 'expired', 'replayed', 'outside_window'])[1 + i % 5], o.venue_id, $3
          FROM generate_series(1, $1) AS i
          CROSS JOIN LATERAL (SELECT now() - interval '1 day' - make_interval(secs => i * 314496.0 * 100 / $1) AS at) t
          JOIN bench_offers o ON o.n = 1 + i % $2
        """,
        rows // 10, offers, merchant,
    )
    await conn.execute(
        "INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars, created_at)"
        " SELECT gen_random_uuid(), id, person_id, venue_id, merchant_id, 1 + seq::int % 5, at + interval '1 hour'"
        " FROM redemptions WHERE kind = 'redemption' AND seq % 20 = 0"
    )
    await conn.execute("SELECT refresh_stats()")
    await conn.execute("ANALYZE")
    echo(f"filled the pre-partition ledger in {time.perf_counter() - started:.1f} s")


async def run_partition_migration_bench(settings: Settings, *, rows: int, echo) -> dict[str, float | int]:
    """Fill a 0049 ledger with `rows` redemptions, then time migration 0050 alone."""
    name = "cj_bench_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(settings.migration_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(dsn_with_database(settings.migration_url, name))
        await init_connection(conn)
        try:
            with tempfile.TemporaryDirectory() as before, tempfile.TemporaryDirectory() as through, \
                    tempfile.TemporaryDirectory() as filled:
                for m in discover():
                    source = MIGRATIONS_DIR / f"{m.version:04d}_{m.name}.sql"
                    if m.version < PARTITIONED_AT:
                        shutil.copy(source, before)
                    if m.version <= PARTITIONED_AT:
                        shutil.copy(source, through)
                    if m.version <= ROLLUPS_FILLED_AT:
                        shutil.copy(source, filled)
                await apply_migrations(conn, Path(before))
                await _fill(conn, rows, echo)
                counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("redemptions", "consumed_codes", "rejected_scans", "ratings")}
                started = time.perf_counter()
                applied = await apply_migrations(conn, Path(through))
                seconds = time.perf_counter() - started
                assert [m.version for m in applied] == [PARTITIONED_AT]
                started = time.perf_counter()
                applied = await apply_migrations(conn, Path(filled))
                rollups = time.perf_counter() - started
                assert applied[-1].version == ROLLUPS_FILLED_AT
                after = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in counts}
                if after != counts:
                    raise RuntimeError(f"rows differ after the migration: {counts} -> {after}")
                partitions = await conn.fetchval(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'redemptions'"
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {"seconds": seconds, "rollups_seconds": rollups, "partitions": partitions, **counts}
