"""Migration 0050 converts a ledger of the pre-partition schema (0049) with rows in several months:
every row stays, with its content, in its month's partition, and the ledger stays append-only
for the service's role; what referenced it (ratings, offline records, reversals, used codes,
the rollups) still does."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import asyncpg
import pytest

from benefits.redemption import db
from benefits.redemption.types import LedgerEntry, StoredAnswer
from foundation.connections import init_connection
from migrations import MIGRATIONS_DIR, apply_migrations, discover
from tests.redemption.test_ledger_sql import offered_benefit
from tests.support import dsn_with_database, new_test_database_name

SHANGHAI = timezone(timedelta(hours=8))
LAST_BEFORE = 49  # the last migration of the pre-partition schema
TABLES = ("redemptions", "rejected_scans", "consumed_codes", "ratings", "offline_scans", "idempotency_keys")
ADDED = {"code_month", "reverses_day", "redemption_day"}  # columns 0050 adds


@pytest.fixture
async def old_ledger(base_settings, tmp_path):
    """An empty database migrated up to 0049 only: (owner connection, service DSN)."""
    name = new_test_database_name()
    admin = await asyncpg.connect(base_settings.database_owner_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    before = tmp_path / "before"
    before.mkdir()
    for m in discover():
        if m.version <= LAST_BEFORE:
            shutil.copy(MIGRATIONS_DIR / f"{m.version:04d}_{m.name}.sql", before)
    conn = await asyncpg.connect(dsn_with_database(base_settings.database_owner_url, name))
    await init_connection(conn)
    try:
        await apply_migrations(conn, before)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == LAST_BEFORE
        yield conn, dsn_with_database(base_settings.database_url, name)
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


async def fill(conn) -> dict:
    """Rows in August, September and October 2026, of every kind the ledger holds."""
    (where,) = await offered_benefit(conn)
    person = uuid.uuid4()
    days = [date(2026, 8, 3), date(2026, 8, 31), date(2026, 9, 15), date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 20)]
    ids = []
    for i, day in enumerate(days * 3):
        rid = uuid.uuid4()
        ids.append((rid, day))
        await conn.execute(
            "INSERT INTO consumed_codes (jti, redemption_id, consumed_at) VALUES ($1, $2, $3)", f"jti-{i}", rid, at(day, 8 + i % 12)
        )
        await conn.execute(
            """
            INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                venue_id, merchant_id, device_id, jti, code_source, companions, value_kind, value_fen, period_keys,
                priority, decided_at)
            VALUES ($1, 'redemption', $2, $3, $4, $5, 1, 'T1', $6, $7, $8, $9, 'cj', $10, 'fixed_off', $11, $12, $13, $14)
            """,
            rid, at(day, 8 + i % 12), day, person, where["benefit"], where["venue"], where["merchant"], uuid.uuid4(),
            f"jti-{i}", i % 3, 100 * i, [f"d:{day}", f"m:{day:%Y-%m}"], i % 2 == 0, at(day, 7) if i % 5 == 0 else None,
        )
        await conn.execute(
            "INSERT INTO rejected_scans (id, at, service_day, reason, venue_id, merchant_id, person_id, benefit_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            uuid.uuid4(), at(day, 9), day, ("replayed", "not_eligible", "expired")[i % 3], where["venue"], where["merchant"],
            person if i % 2 else None, where["benefit"],
        )
    # A visit of 30 September reversed on 1 October: the reversal in the next month's partition.
    reversed_id = ids[3][0]
    assert ids[3][1] == date(2026, 9, 30)
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, reverses, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
            venue_id, merchant_id, companions, value_kind, value_fen, reason)
        VALUES ($1, 'reversal', $2, $3, $4, $5, $6, 1, 'T1', $7, $8, 0, 'fixed_off', 300, 'mistake')
        """,
        uuid.uuid4(), reversed_id, at(date(2026, 10, 1), 1), date(2026, 10, 1), person, where["benefit"], where["venue"],
        where["merchant"],
    )
    rated = ids[0][0]
    await conn.execute(
        "INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars, comment, created_at)"
        " VALUES ($1, $2, $3, $4, $5, 2, '排队太久', $6)",
        uuid.uuid4(), rated, person, where["venue"], where["merchant"], at(date(2026, 8, 4)),
    )
    offline_id, offline_day = ids[2]
    await conn.execute(
        """
        INSERT INTO offline_scans (id, device_id, local_id, fingerprint, outcome, reason, redemption_id, venue_id,
            merchant_id, benefit_id, person_id, companions, decided_at, service_day)
        VALUES ($1, $2, 'local-1', '\\x00', 'recorded', 'accepted', $3, $4, $5, $6, $7, 0, $8, $9)
        """,
        uuid.uuid4(), uuid.uuid4(), offline_id, where["venue"], where["merchant"], where["benefit"], person,
        at(offline_day, 7), offline_day,
    )
    await conn.execute(
        "INSERT INTO idempotency_keys (caller, key, fingerprint, status, response) VALUES ('device:x', 'k1', '\\x01', 200, 'a')"
    )
    return {**where, "person": person, "reversed": reversed_id, "rated": rated, "ids": ids}


async def snapshot(conn) -> dict[str, list[dict]]:
    out = {}
    for table in TABLES:
        rows = await conn.fetch(f"SELECT to_jsonb(t) AS j FROM {table} t")
        out[table] = sorted(({k: v for k, v in r["j"].items() if k not in ADDED} for r in rows), key=repr)
    return out


async def test_every_row_survives_in_its_months_partition(old_ledger):
    conn, service_dsn = old_ledger
    world = await fill(conn)
    before = await snapshot(conn)
    assert {t: len(rows) for t, rows in before.items()} == {
        "redemptions": 19, "rejected_scans": 18, "consumed_codes": 18, "ratings": 1, "offline_scans": 1, "idempotency_keys": 1,
    }
    seq_before = await conn.fetchval("SELECT max(seq) FROM redemptions")

    applied = await apply_migrations(conn)
    assert applied[0].version == 50

    assert await snapshot(conn) == before  # every row, every column as it was
    # Each in its month: the ledger by service day, codes by the month they were used (expiry unknown).
    months = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, to_char(service_day, 'YYYY\"m\"MM') AS m FROM redemptions"
    )
    assert all(r["part"] == f"redemptions_y{r['m']}" for r in months)
    assert {r["part"] for r in months} == {"redemptions_y2026m08", "redemptions_y2026m09", "redemptions_y2026m10"}
    codes = await conn.fetch("SELECT tableoid::regclass::text AS part, code_month, consumed_at FROM consumed_codes")
    assert all(r["code_month"] == r["consumed_at"].astimezone(SHANGHAI).date().replace(day=1) for r in codes)
    assert all(r["part"] == f"consumed_codes_y{r['code_month']:%Y}m{r['code_month']:%m}" for r in codes)
    rejected = await conn.fetch("SELECT DISTINCT tableoid::regclass::text AS part FROM rejected_scans")
    assert {r["part"] for r in rejected} == {"rejected_scans_y2026m08", "rejected_scans_y2026m09", "rejected_scans_y2026m10"}
    assert await conn.fetchval("SELECT count(*) FROM redemptions_default") == 0
    # What referenced the ledger still does, with the day that completes the key.
    assert await conn.fetchval("SELECT reverses_day FROM redemptions WHERE reverses = $1", world["reversed"]) == date(2026, 9, 30)
    assert await conn.fetchval("SELECT reversal_day FROM redemption_reversals WHERE redemption_id = $1", world["reversed"]) == date(2026, 10, 1)
    assert await conn.fetchval("SELECT redemption_day FROM ratings WHERE redemption_id = $1", world["rated"]) == date(2026, 8, 3)

    service = await asyncpg.connect(service_dsn)
    await init_connection(service)
    try:
        # Append-only for chongjun_app: the parents and each month's partition.
        for table in ("redemptions", "rejected_scans", "consumed_codes", "redemption_reversals",
                      "redemptions_y2026m09", "consumed_codes_y2026m10", "rejected_scans_y2026m08"):
            column = "jti" if table.startswith("consumed") else ("redemption_id" if table == "redemption_reversals" else "id")
            for sql in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await service.execute(sql)
        # The owner meets the append-only triggers on migrated rows, as before.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM redemptions WHERE id = $1", world["rated"])
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE consumed_codes_y2026m08 SET jti = jti")

        # A migrated reversal still holds its redemption; a migrated used code is still used.
        original = await db.get_redemption(service, world["reversed"])
        assert original["reversed"] is True
        async with service.transaction():
            assert await db.insert_reversal(service, reversal_id=uuid.uuid4(), original=original, service_day=date(2026, 10, 2),
                                            device_id=None, staff_id=None, reason="again") is None
        day = date(2026, 10, 20)

        def scan(jti: str, seen: date) -> LedgerEntry:
            return LedgerEntry(
                id=uuid.uuid4(), jti=jti, code_expires_at=at(seen, 13), code_source="cj", service_day=seen,
                person_id=world["person"], benefit_id=world["benefit"], benefit_version=1, benefit_code="T1",
                venue_id=world["venue"], merchant_id=world["merchant"], device_id=None, staff_id=None, companions=0,
                value_kind="free", value_fen=0, priority=False, period_keys=[], period_caps=[], venue_capacity=None,
                answer=StoredAnswer(caller="device:x", key=None, fingerprint=b"", response=b""),
            )

        used = next(i for i, (_, d) in enumerate(world["ids"]) if d == day)
        assert await db.record_redemption(service, entry=scan(f"jti-{used}", day)) == "replayed"
        fresh = scan("jti-new", day)
        assert await db.record_redemption(service, entry=fresh) == "accepted"
        assert await conn.fetchval("SELECT seq FROM redemptions WHERE id = $1", fresh.id) > seq_before
        assert await service.fetchval("SELECT refresh_stats() IS NOT NULL")
        assert await service.fetchval("SELECT sum(events) FROM stats_daily WHERE kind = 'redemption'") == 19
        assert await service.fetchval("SELECT sum(events) FROM stats_refusals_daily") == 18
        assert await service.fetchval("SELECT sum(ratings) FROM stats_ratings_daily") == 1
    finally:
        await service.close()


async def test_the_migration_waits_while_a_used_code_may_still_be_shown_next_month(old_ledger):
    """A code used within 25 hours (a code's longest life) of a month's end may expire in the next
    month, and its expiry was not stored: its month is unknown, so the migration refuses rather
    than guess, and applies nothing. (The row is dated at a month's last minute ahead of the
    database clock, so it counts as recent whatever day the test runs on; rows used at a month's
    end long ago, like 31 August in the test above, migrate.)"""
    conn, _ = old_ledger
    await conn.execute(
        "INSERT INTO consumed_codes (jti, redemption_id, consumed_at) VALUES ('edge', $1, $2)",
        uuid.uuid4(), datetime(2099, 1, 31, 23, 59, tzinfo=SHANGHAI),
    )
    with pytest.raises(asyncpg.RaiseError, match="may expire in the next month"):
        await apply_migrations(conn)
    assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == LAST_BEFORE  # nothing applied
    assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'consumed_codes'") == "r"
