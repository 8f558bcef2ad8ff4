"""Capacity without a hot row (migrations 0044, 0057), driven at the ledger statement over many
connections: no counter where there is no capacity, striped counters whose cap is exact where
there is one (the venue's and the benefit's at the venue, each its own), a capacity appearing or
changing mid-day counted from the ledger, and reversals giving people back."""

from __future__ import annotations

import asyncio
import random
import uuid

from benefits.redemption import db
from benefits.redemption.types import LedgerEntry, StoredAnswer
from tests.redemption.test_ledger_sql import DAY, EXPIRES, offered_benefit, pool, record  # noqa: F401 (fixture)


async def _set_venue_capacity(conn, venue, capacity):
    await conn.execute("UPDATE venues SET daily_capacity = $2, updated_at = clock_timestamp() WHERE id = $1", venue, capacity)


async def _admitted(conn, venue) -> int:
    return await conn.fetchval(
        "SELECT coalesce(sum(1 + companions), 0) FROM redemptions r WHERE venue_id = $1 AND kind = 'redemption'"
        " AND NOT EXISTS (SELECT 1 FROM redemptions x WHERE x.reverses = r.id)",
        venue,
    )


async def test_no_capacity_takes_no_counter(pool, conn):
    (where,) = await offered_benefit(conn)
    people = [{**where, "person": uuid.uuid4()} for _ in range(100)]
    outcomes = await asyncio.gather(*[record(pool, who, jti=f"n-{i}") for i, who in enumerate(people)])
    assert outcomes == ["accepted"] * 100
    assert await conn.fetchval("SELECT count(*) FROM capacity_stripes") == 0


async def test_venue_capacity_is_exact_with_many_stripes_at_once(pool, conn):
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 137)
    people = [{**where, "person": uuid.uuid4()} for _ in range(400)]
    outcomes = await asyncio.gather(*[record(pool, who, jti=f"s-{i}") for i, who in enumerate(people)])
    assert outcomes.count("accepted") == 137, outcomes
    assert set(outcomes) == {"accepted", "venue_capacity_reached"}
    assert await _admitted(conn, venue) == 137
    rows = await conn.fetch("SELECT used, share, cap FROM capacity_stripes WHERE venue_id = $1 AND scope = $1", venue)
    assert len(rows) == 64 and sum(r["used"] for r in rows) == 137 and all(r["used"] <= r["share"] for r in rows)
    assert sum(r["share"] for r in rows) == 137


async def test_companions_never_overrun_and_fill_what_fits(pool, conn):
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 100)
    rng = random.Random(16)
    people = [({**where, "person": uuid.uuid4()}, rng.choice([0, 1, 2, 3])) for _ in range(300)]
    outcomes = await asyncio.gather(
        *[record(pool, who, jti=f"c-{i}", companions=k) for i, (who, k) in enumerate(people)]
    )
    admitted = await _admitted(conn, venue)
    assert admitted <= 100
    assert admitted > 100 - 4, admitted  # the slow path shares what is left: no stripe strands room
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1", venue) == admitted
    assert outcomes.count("accepted") == await conn.fetchval("SELECT count(*) FROM redemptions WHERE venue_id = $1", venue)


async def test_benefit_capacity_counts_only_its_own_visitors(pool, conn):
    first, second = await offered_benefit(conn), await offered_benefit(conn)
    # Two benefits at one venue: the second's capacity (20) counts only scans under it.
    venue = first[0]["venue"]
    await conn.execute("INSERT INTO venue_benefits (venue_id, benefit_id) VALUES ($1, $2)", venue, second[0]["benefit"])
    other = {**second[0], "venue": venue, "merchant": first[0]["merchant"]}
    free = [record(pool, {**first[0], "person": uuid.uuid4()}, jti=f"f-{i}") for i in range(60)]
    capped = [record(pool, {**other, "person": uuid.uuid4()}, jti=f"b-{i}", capacity=20) for i in range(90)]
    outcomes = await asyncio.gather(*free, *capped)
    assert outcomes[:60] == ["accepted"] * 60
    assert outcomes[60:].count("accepted") == 20
    scoped = await conn.fetchval(
        "SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1 AND scope = $2", venue, other["benefit"]
    )
    assert scoped == 20
    assert await conn.fetchval("SELECT count(*) FROM capacity_stripes WHERE scope = venue_id") == 0


async def test_a_capacity_set_mid_day_counts_the_day_from_the_ledger(pool, conn):
    """Scans without a capacity take no counter; when one appears, the first counted scan counts
    the day from the ledger, after every scan still in flight without a counter has committed
    (they hold the scope's lock shared). Any scan that escaped would show as one over the cap."""
    (where,) = await offered_benefit(conn)
    venue = where["venue"]

    async def set_capacity_meanwhile():
        while await conn.fetchval("SELECT count(*) FROM redemptions WHERE venue_id = $1", venue) < 30:
            await asyncio.sleep(0.005)  # on a connection of its own: the pool is busy with the scans
        await _set_venue_capacity(conn, venue, 250)

    scans = [record(pool, {**where, "person": uuid.uuid4()}, jti=f"m-{i}") for i in range(300)]
    await asyncio.gather(*scans, set_capacity_meanwhile())
    more = [record(pool, {**where, "person": uuid.uuid4()}, jti=f"l-{i}") for i in range(60)]
    await asyncio.gather(*more)
    assert await _admitted(conn, venue) == 250
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1", venue) == 250


async def test_a_lowered_then_raised_capacity_recounts(pool, conn):
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 30)
    assert (await asyncio.gather(*[record(pool, {**where, "person": uuid.uuid4()}, jti=f"a-{i}") for i in range(20)])) == [
        "accepted"
    ] * 20
    await _set_venue_capacity(conn, venue, None)  # no capacity for a while: nothing counted
    assert (await asyncio.gather(*[record(pool, {**where, "person": uuid.uuid4()}, jti=f"b-{i}") for i in range(10)])) == [
        "accepted"
    ] * 10
    await _set_venue_capacity(conn, venue, 30)  # the same capacity again: the 10 uncounted ones count
    outcomes = await asyncio.gather(*[record(pool, {**where, "person": uuid.uuid4()}, jti=f"c-{i}") for i in range(40)])
    assert outcomes.count("accepted") == 0
    assert await _admitted(conn, venue) == 30


async def test_a_reversal_gives_its_people_back(pool, conn):
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 3)
    who = [{**where, "person": uuid.uuid4()} for _ in range(4)]
    outcomes = [await record(pool, w, jti=f"r-{i}", companions=0) for i, w in enumerate(who[:3])]
    assert outcomes == ["accepted"] * 3
    assert await record(pool, who[3], jti="r-3") == "venue_capacity_reached"
    original = await conn.fetchrow("SELECT * FROM redemptions WHERE jti = 'r-0'")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO redemptions (id, kind, reverses, service_day, person_id, benefit_id, benefit_version,"
            " benefit_code, venue_id, merchant_id, value_kind) VALUES ($1, 'reversal', $2, $3, $4, $5, 1, 'T1', $6, $7, 'free')",
            uuid.uuid4(), original["id"], DAY, original["person_id"], original["benefit_id"], venue, original["merchant_id"],
        )
        await db.give_back_quota(conn, original)
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1", venue) == 2
    assert await record(pool, who[3], jti="r-3") == "accepted"
    assert await _admitted(conn, venue) == 3


async def test_a_busy_venue_stays_on_the_fast_path(pool, conn):
    """More scans in flight at one venue than 0044's 16 stripes (migration 0057: 64): none runs
    the ledger statement again on the slow path, except the day's first, which shares out."""
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 10_000)
    assert await record(pool, {**where, "person": uuid.uuid4()}, jti="busy-first") == "accepted"
    slow_runs: list[bool] = []

    def log(query) -> None:
        if "record_redemption" in query.query:
            slow_runs.append(query.args[23])  # p_slow

    async def scan(i: int) -> str:
        async with pool.pool.acquire() as held:
            held.add_query_logger(log)
            try:
                return await db.record_redemption(held, entry=_entry(where, f"busy-{i}"))
            finally:
                for _ in range(3):
                    await asyncio.sleep(0)  # asyncpg calls query loggers soon after the query
                held.remove_query_logger(log)

    outcomes = await asyncio.gather(*[scan(i) for i in range(48)])
    assert outcomes == ["accepted"] * 48
    assert len(slow_runs) == 48 and not any(slow_runs), slow_runs.count(True)
    rows = await conn.fetch("SELECT used, share FROM capacity_stripes WHERE venue_id = $1 AND scope = $1", venue)
    assert len(rows) == 64 and sum(r["used"] for r in rows) == 49 and sum(r["share"] for r in rows) == 10_000


async def test_a_day_shared_out_as_16_stripes_is_counted_again_as_64(pool, conn):
    """Stripes made before migration 0057 (16 a scope): the first slow path finds 16 where 64 are
    wanted, counts the day from the ledger and shares out 64, and the cap stays exact."""
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    await _set_venue_capacity(conn, venue, 40)
    for i in range(5):
        assert await record(pool, {**where, "person": uuid.uuid4()}, jti=f"old-{i}") == "accepted"
    # What 0044 left for this day: 16 stripes for the current capacity, the 5 admitted on stripe
    # 0, and no stripe with room (so the next scan takes the slow path at once).
    await conn.execute("DELETE FROM capacity_stripes WHERE venue_id = $1", venue)
    await conn.execute(
        """INSERT INTO capacity_stripes (venue_id, scope, service_day, stripe, used, share, cap, epoch)
           SELECT $1, $1, $2, n, CASE WHEN n = 0 THEN 5 ELSE 0 END, CASE WHEN n = 0 THEN 5 ELSE 0 END, 40,
                  (SELECT (extract(epoch FROM updated_at) * 1000000)::bigint::text FROM venues WHERE id = $1)
             FROM generate_series(0, 15) AS n""",
        venue, DAY,
    )
    outcomes = await asyncio.gather(*[record(pool, {**where, "person": uuid.uuid4()}, jti=f"new-{i}") for i in range(60)])
    assert outcomes.count("accepted") == 35 and set(outcomes) == {"accepted", "venue_capacity_reached"}
    assert await _admitted(conn, venue) == 40
    rows = await conn.fetch("SELECT used, share FROM capacity_stripes WHERE venue_id = $1 AND scope = $1", venue)
    assert len(rows) == 64 and sum(r["used"] for r in rows) == 40 and all(r["used"] <= r["share"] for r in rows)


def _entry(where: dict, jti: str) -> LedgerEntry:
    return LedgerEntry(
        id=uuid.uuid4(), jti=jti, code_expires_at=EXPIRES, code_source="cj", service_day=DAY, person_id=uuid.uuid4(),
        benefit_id=where["benefit"], benefit_version=1, benefit_code="T1", venue_id=where["venue"],
        merchant_id=where["merchant"], device_id=None, staff_id=None, companions=0,
        value_kind="free", value_fen=0, priority=False, period_keys=[], period_caps=[],
        venue_capacity=None, answer=StoredAnswer(caller="test", key=None, fingerprint=b"", response=b""),
    )
