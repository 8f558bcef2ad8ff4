"""The ledger partitioned by month (migration 0050): single use of a code and of an
Idempotency-Key across months, at the boundary and under concurrency; a month without a
partition; partitions made ahead by the service; reversals once across months; detach and
export for the archive.

The boundary is Asia/Shanghai midnight between 2026-11-30 and 2026-12-01: a code shown at
23:59:50 and again at 00:00:10 is one code (its expiry, signed inside it, is 00:00:30 on the
1st), but the two scans fall on two service days in two months, so their ledger rows go to two
partitions. The partitions used are made by each test, so the tests do not depend on the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from benefits import redemption
from benefits.redemption import db
from benefits.redemption.errors import MonthArchived, PartitionInUse
from benefits.redemption.reports import monthly_statement
from benefits.redemption.types import LedgerEntry, RejectedScan, StoredAnswer
from foundation.connections import init_connection
from identity import Principal
from tests.redemption.test_ledger_sql import offered_benefit

SHANGHAI = timezone(timedelta(hours=8))
NOV_30, DEC_1 = date(2026, 11, 30), date(2026, 12, 1)
EXPIRES = datetime(2026, 12, 1, 0, 0, 30, tzinfo=SHANGHAI)  # a code shown at 23:59:50 on the 30th
WINDOW = timedelta(hours=72)  # the offline upload window (Settings.offline_upload_seconds)


@pytest.fixture
async def pool(settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=10, max_size=40, init=init_connection)
    yield pool
    await pool.close()


@pytest.fixture
async def service(settings):
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    yield conn
    await conn.close()


@pytest.fixture
async def where(conn):
    await db.ensure_partitions(conn, first=date(2026, 11, 1), last=date(2026, 12, 1))
    (place,) = await offered_benefit(conn)
    return {**place, "person": uuid.uuid4()}


def entry(where, *, jti, day, expires=EXPIRES, key=None, caller="device:gate-1") -> LedgerEntry:
    return LedgerEntry(
        id=uuid.uuid4(), jti=jti, code_expires_at=expires, code_source="cj", service_day=day,
        person_id=where["person"], benefit_id=where["benefit"], benefit_version=1, benefit_code="T1",
        venue_id=where["venue"], merchant_id=where["merchant"], device_id=None, staff_id=None, companions=0,
        value_kind="free", value_fen=0, priority=False, period_keys=[], period_caps=[], venue_capacity=None,
        answer=StoredAnswer(caller=caller, key=key, fingerprint=b"f", response=f"answer {jti}".encode()),
    )


def refusal(where, *, day, key, caller="device:gate-1") -> RejectedScan:
    return RejectedScan(
        id=uuid.uuid4(), service_day=day, reason="not_eligible", venue_id=where["venue"], merchant_id=where["merchant"],
        device_id=None, staff_id=None, person_id=where["person"], benefit_id=where["benefit"],
        answer=StoredAnswer(caller=caller, key=key, fingerprint=b"f", response=b"refused"),
    )


async def record(pool, e: LedgerEntry) -> str:
    async with pool.acquire() as conn:
        return await db.record_redemption(conn, entry=e)


async def reject(pool, e: RejectedScan) -> bool:
    async with pool.acquire() as conn:
        return await db.record_rejection(conn, entry=e)


async def partition_of(conn, table: str, where_sql: str, *args) -> list[str]:
    rows = await conn.fetch(f"SELECT tableoid::regclass::text AS p FROM {table} WHERE {where_sql}", *args)
    return sorted(r["p"] for r in rows)


async def test_the_three_tables_are_partitioned_by_month(conn):
    kinds = dict(await conn.fetch(
        "SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1::text[])",
        ["redemptions", "rejected_scans", "consumed_codes", "redemption_reversals", "idempotency_keys"],
    ))
    assert kinds == {"redemptions": "p", "rejected_scans": "p", "consumed_codes": "p",
                     "redemption_reversals": "r", "idempotency_keys": "r"}
    keys = dict(await conn.fetch(
        "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.relkind = 'p' AND c.relname = ANY($1::text[])",
        ["redemptions", "rejected_scans", "consumed_codes"],
    ))
    assert keys == {"redemptions": "RANGE (service_day)", "rejected_scans": "RANGE (service_day)",
                    "consumed_codes": "RANGE (code_month)"}
    parts = {r["partition"] for r in await redemption.list_partitions(conn)}
    this_month = redemption.first_of_month(datetime.now(SHANGHAI).date())
    for table in ("redemptions", "rejected_scans", "consumed_codes"):
        assert f"{table}_default" in parts
        for months in (-1, 0, 1, 2, 3):  # made by the migration: last month, this one and three ahead
            month = redemption.first_of_month(this_month, months)
            assert f"{table}_y{month:%Y}m{month:%m}" in parts


async def test_a_code_shown_either_side_of_midnight_at_a_months_end_is_accepted_once(pool, conn, where):
    assert await record(pool, entry(where, jti="cj-boundary", day=NOV_30)) == "accepted"
    assert await record(pool, entry(where, jti="cj-boundary", day=DEC_1)) == "replayed"
    # The ledger row is on its service day's month; the code on its own expiry's month, whenever shown.
    assert await partition_of(conn, "redemptions", "jti = 'cj-boundary'") == ["redemptions_y2026m11"]
    assert await partition_of(conn, "consumed_codes", "jti = 'cj-boundary'") == ["consumed_codes_y2026m12"]


async def test_one_code_in_two_months_at_once_is_accepted_once(pool, conn, where):
    attempts = [entry(where, jti="cj-race", day=NOV_30 if i % 2 else DEC_1) for i in range(200)]
    outcomes = await asyncio.gather(*[record(pool, e) for e in attempts])
    assert outcomes.count("accepted") == 1 and outcomes.count("replayed") == 199
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE jti = 'cj-race'") == 1
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes WHERE jti = 'cj-race'") == 1
    # The same in the statement's own check for a code Redis saw before: one probe, its month.
    assert await db.code_consumed(conn, "cj-race", expires_at=EXPIRES) is True
    assert await db.code_consumed(conn, "cj-other", expires_at=EXPIRES) is False


async def test_an_idempotency_key_answers_once_across_months(pool, conn, where):
    first = entry(where, jti="k-1", day=NOV_30, key="key-boundary")
    assert await record(pool, first) == "accepted"
    # The same key after midnight, with another code: the first answer stands, nothing is written.
    assert await record(pool, entry(where, jti="k-2", day=DEC_1, key="key-boundary")) == "idempotency_conflict"
    assert await reject(pool, refusal(where, day=DEC_1, key="key-boundary")) is False
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE merchant_id = $1", where["merchant"]) == 1
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans WHERE merchant_id = $1", where["merchant"]) == 0
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes WHERE jti = 'k-2'") == 0
    stored = await db.get_stored_answer(conn, caller="device:gate-1", key="key-boundary")
    assert stored["response"] == b"answer k-1"


async def test_one_idempotency_key_in_two_months_at_once_answers_once(pool, conn, where):
    tasks = []
    for i in range(120):
        day = NOV_30 if i % 2 else DEC_1
        if i % 3:
            tasks.append(record(pool, entry(where, jti=f"race-{i}", day=day, key="key-race")))
        else:
            tasks.append(reject(pool, refusal(where, day=day, key="key-race")))
    outcomes = await asyncio.gather(*tasks)
    firsts = [o for o in outcomes if o in ("accepted", True)]
    assert len(firsts) == 1
    ledger = await conn.fetchval("SELECT count(*) FROM redemptions WHERE merchant_id = $1", where["merchant"])
    refused = await conn.fetchval("SELECT count(*) FROM rejected_scans WHERE merchant_id = $1", where["merchant"])
    assert ledger + refused == 1
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes WHERE jti LIKE 'race-%'") == ledger
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'key-race'") == 1


async def test_a_month_without_a_partition_goes_to_the_default_partition(pool, conn, where):
    far, later = date(2041, 7, 15), date(2041, 8, 15)
    assert not {p["partition"] for p in await redemption.list_partitions(conn)} & {"redemptions_y2041m07"}
    expires = datetime(2041, 7, 15, 10, 0, tzinfo=SHANGHAI)
    assert await record(pool, entry(where, jti="far-1", day=far, expires=expires)) == "accepted"
    assert await reject(pool, refusal(where, day=far, key=None)) is True
    assert await partition_of(conn, "redemptions", "jti = 'far-1'") == ["redemptions_default"]
    assert await partition_of(conn, "consumed_codes", "jti = 'far-1'") == ["consumed_codes_default"]
    assert await partition_of(conn, "rejected_scans", "service_day = $1", far) == ["rejected_scans_default"]
    assert await record(pool, entry(where, jti="far-1", day=far, expires=expires)) == "replayed"  # unique there too

    # Ensuring that month later leaves it in the default partition (history is never moved) and
    # makes the next one; a scan of the next month goes to its own partition.
    made = await redemption.ensure_partitions(conn, months=1, today=far)
    assert set(made.in_default) == {"redemptions_y2041m07", "rejected_scans_y2041m07", "consumed_codes_y2041m07"}
    assert {"redemptions_y2041m08", "rejected_scans_y2041m08", "consumed_codes_y2041m08"} <= set(made.created)
    assert await record(pool, entry(where, jti="far-2", day=later, expires=expires + timedelta(days=31))) == "accepted"
    assert await partition_of(conn, "redemptions", "jti = 'far-2'") == ["redemptions_y2041m08"]
    assert await record(pool, entry(where, jti="far-1", day=later, expires=expires)) == "replayed"


async def test_the_service_makes_partitions_ahead_and_cannot_rewrite_them(service, conn):
    made = await redemption.ensure_partitions(service, months=2, today=date(2035, 1, 20))  # as chongjun_app
    assert made.in_default == []
    assert sorted(made.created) == sorted(
        f"{t}_y{m}" for t in ("redemptions", "rejected_scans", "consumed_codes") for m in ("2034m12", "2035m01", "2035m02", "2035m03")
    )
    again = await redemption.ensure_partitions(service, months=2, today=date(2035, 1, 20))
    assert again.created == [] and again.in_default == []
    for part in ("redemptions_y2035m01", "consumed_codes_y2035m01", "rejected_scans_y2035m01", "redemptions_default"):
        owner = await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = $1", part)
        assert owner != "chongjun_app"
        column = "jti" if part.startswith("consumed") else "id"
        for sql in (f"UPDATE {part} SET {column} = {column}", f"DELETE FROM {part}", f"TRUNCATE {part}"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await service.execute(sql)
        # and the owner meets the partition's own TRUNCATE trigger (a redemptions partition: first the ratings' FK)
        refused = "referenced in a foreign key" if part.startswith("redemptions") else "is append-only: TRUNCATE refused"
        with pytest.raises(asyncpg.PostgresError, match=refused):
            await conn.execute(f"TRUNCATE {part}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # taking months out is the owner's act
        await service.execute("SELECT ledger_detach_partitions('2030-01-01')")


async def test_a_redemption_is_reversed_once_whatever_month_the_reversal_falls_in(pool, conn, service, where):
    e = entry(where, jti="to-reverse", day=NOV_30)
    assert await record(pool, e) == "accepted"
    original = await db.get_redemption(conn, e.id)

    async def reverse(day: date):
        async with pool.acquire() as c, c.transaction():
            return await db.insert_reversal(c, reversal_id=uuid.uuid4(), original=original, service_day=day,
                                            device_id=None, staff_id=None, reason="test")

    outcomes = await asyncio.gather(*[reverse(NOV_30 if i % 2 else DEC_1) for i in range(30)])
    assert sum(o is not None for o in outcomes) == 1
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE reverses = $1", e.id) == 1
    assert await conn.fetchval("SELECT reversal_id FROM redemption_reversals WHERE redemption_id = $1", e.id) == next(
        o["id"] for o in outcomes if o is not None
    )
    assert (await db.get_redemption(conn, e.id))["reversed"] is True
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # what the FK on `reverses` said
        await service.execute(
            "INSERT INTO redemptions (id, kind, reverses, service_day, person_id, benefit_id, benefit_version, benefit_code,"
            " venue_id, merchant_id, value_kind) VALUES ($1, 'reversal', $2, $3, $4, $5, 1, 'T1', $6, $7, 'free')",
            uuid.uuid4(), uuid.uuid4(), DEC_1, where["person"], where["benefit"], where["venue"], where["merchant"],
        )


async def test_a_rating_names_its_visit_across_the_partition_key(pool, conn, service, where):
    e = entry(where, jti="rated", day=NOV_30)
    assert await record(pool, e) == "accepted"
    await service.execute(
        "INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars) VALUES ($1, $2, $3, $4, $5, 5)",
        uuid.uuid4(), e.id, where["person"], where["venue"], where["merchant"],
    )
    assert await conn.fetchval("SELECT redemption_day FROM ratings WHERE redemption_id = $1", e.id) == NOV_30
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):  # no rating of a visit that is not in the ledger
        await service.execute(
            "INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars) VALUES ($1, $2, $3, $4, $5, 5)",
            uuid.uuid4(), uuid.uuid4(), where["person"], where["venue"], where["merchant"],
        )


async def test_a_month_in_use_is_not_detached(pool, conn, where):
    await db.ensure_partitions(conn, first=date(2026, 4, 1), last=date(2026, 4, 1))
    april = entry(where, jti="april-rated", day=date(2026, 4, 20), expires=datetime(2026, 4, 20, 9, tzinfo=SHANGHAI))
    assert await record(pool, april) == "accepted"
    await conn.execute(
        "INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars) VALUES ($1, $2, $3, $4, $5, 4)",
        uuid.uuid4(), april.id, where["person"], where["venue"], where["merchant"],
    )
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    # Too recent: November's codes may still come in from offline gates (72 h) or a city code (24 h).
    with pytest.raises(PartitionInUse, match="latest you may detach before is 2026-11"):
        await redemption.detach_partitions(conn, before=date(2026, 12, 1), upload_window=WINDOW, now=now)
    assert redemption.latest_detachable(datetime(2026, 12, 5, 9, tzinfo=UTC), WINDOW) == date(2026, 12, 1)
    # April's visit is rated: PostgreSQL refuses to take it out of the ledger, and nothing at all is detached.
    with pytest.raises(PartitionInUse, match="rating or an offline record"):
        await redemption.detach_partitions(conn, before=date(2026, 5, 1), upload_window=WINDOW, now=now)
    parts = {p["partition"] for p in await redemption.list_partitions(conn)}
    assert {"redemptions_y2026m04", "consumed_codes_y2026m04", "rejected_scans_y2026m04"} <= parts
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'ledger.partitions.%'") == 0


async def test_old_months_are_detached_and_exported_with_digests(pool, conn, service, where, tmp_path):
    await db.ensure_partitions(conn, first=date(2026, 5, 1), last=date(2026, 5, 1))
    may = datetime(2026, 5, 10, 12, 0, tzinfo=SHANGHAI)
    for i in range(3):
        assert await record(pool, entry(where, jti=f"may-{i}", day=may.date(), expires=may)) == "accepted"
    assert await reject(pool, refusal(where, day=may.date(), key=None)) is True
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    detached = await redemption.detach_partitions(conn, before=date(2026, 6, 1), upload_window=WINDOW, now=now)
    assert sorted(detached) == ["consumed_codes_y2026m05", "redemptions_y2026m05", "rejected_scans_y2026m05"]
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE service_day = $1", may.date()) == 0
    assert await conn.fetchval("SELECT count(*) FROM redemptions_y2026m05") == 3  # out of the ledger, not gone
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await service.fetchval("SELECT count(*) FROM redemptions_y2026m05")
    entries = await conn.fetch("SELECT action, detail FROM audit_log WHERE action LIKE 'ledger.partitions.%'")
    assert [e["action"] for e in entries] == ["ledger.partitions.detach"]
    assert sorted(entries[0]["detail"]["partitions"]) == detached
    assert await redemption.detach_partitions(conn, before=date(2026, 6, 1), upload_window=WINDOW, now=now) == []
    # A statement of an archived month would miss its rows (and be sealed as a new revision): refused.
    staff = Principal(kind="staff", subject=uuid.uuid4(), role="manager", district=None, merchant_id=where["merchant"],
                      venue_id=None, secret_generation=None)
    with pytest.raises(MonthArchived):
        await monthly_statement(conn, staff, "2026-05", key=None, jwks_url="", reversal_window_seconds=0, now=now)

    exported = await redemption.export_partitions(conn, month=date(2026, 5, 1), out_dir=tmp_path)
    assert {(e.table, e.rows) for e in exported} == {("redemptions", 3), ("rejected_scans", 1), ("consumed_codes", 3)}
    for e in exported:
        data = (tmp_path / e.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e.sha256
        lines = data.decode().splitlines()
        assert len(lines) == 1 + e.rows and lines[0].split(",")[0] in ("id", "jti")
    sums = (tmp_path / "ledger-2026-05.sha256").read_text().splitlines()
    assert sorted(sums) == sorted(f"{e.sha256}  {e.file}" for e in exported)
    manifest = json.loads((tmp_path / "ledger-2026-05.json").read_text())
    assert manifest["month"] == "2026-05" and len(manifest["partitions"]) == 3
    codes = (tmp_path / "consumed_codes_y2026m05.csv").read_text()
    assert all(f"may-{i}" in codes for i in range(3))
    again = await redemption.export_partitions(conn, month=date(2026, 5, 1), out_dir=tmp_path / "again")
    assert [e.sha256 for e in again] == [e.sha256 for e in exported]  # the same rows, the same bytes
    with pytest.raises(PartitionInUse, match="detach it first"):
        await redemption.export_partitions(conn, month=date(2026, 11, 1), out_dir=tmp_path)


async def test_the_app_makes_the_coming_months_at_start(conn, settings):
    """`serve`'s workers ensure the partitions when they start (and daily after): a month three
    ahead that is missing is there once the app has started."""
    ahead = redemption.first_of_month(datetime.now(SHANGHAI).date(), 3)
    names = [f"{t}_y{ahead:%Y}m{ahead:%m}" for t in ("redemptions", "rejected_scans", "consumed_codes")]
    for name in names:
        parent = name.rsplit("_y", 1)[0]
        await conn.execute(f"ALTER TABLE {parent} DETACH PARTITION {name}")
        await conn.execute(f"DROP TABLE {name}")
    assert not set(names) & {p["partition"] for p in await redemption.list_partitions(conn)}
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/health")).status_code == 200
        assert set(names) <= {p["partition"] for p in await redemption.list_partitions(conn)}
