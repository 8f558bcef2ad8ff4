"""The ledger's guards inside PostgreSQL, driven directly over many connections at once.

These pin invariants 1, 2 and 5 at the layer that enforces them: whatever the HTTP layer or
Redis does, the database alone never accepts a code twice nor lets a cap be overrun. Every test
runs twice: each statement alone on a connection of its own, and in batches (what a worker
does, foundation/batching.py), from two batchers at once as two workers would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import asyncpg
import pytest

from benefits.redemption import db
from benefits.redemption.types import LedgerEntry, StoredAnswer
from benefits import redemption
from foundation.batching import StatementBatcher
from merchants.creditcode import make_credit_code

DAY = date(2026, 11, 27)
EXPIRES = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # the codes' expiry: their month is their partition


class Ledger:
    """Where the statements run: `pool` alone, or through `batchers` (taken in turn)."""

    def __init__(self, pool: asyncpg.Pool, batchers: list[StatementBatcher]) -> None:
        self.pool = pool
        self.batchers = batchers
        self._turn = 0

    def next_batcher(self) -> StatementBatcher | None:
        if not self.batchers:
            return None
        self._turn += 1
        return self.batchers[self._turn % len(self.batchers)]


@asynccontextmanager
async def _ledger(settings, *, batched: bool) -> AsyncIterator[Ledger]:
    pool = await asyncpg.create_pool(settings.database_url, min_size=50, max_size=100)
    batch_pools = []
    if batched:  # two workers' batchers, each with its own two connections
        batch_pools = [await asyncpg.create_pool(settings.database_url, min_size=0, max_size=2) for _ in range(2)]
    try:
        yield Ledger(pool, [redemption.ledger_batches(p) for p in batch_pools])
    finally:
        for p in (pool, *batch_pools):
            await p.close()


@pytest.fixture(params=["alone", "in batches"])
async def pool(request, settings):
    async with _ledger(settings, batched=request.param == "in batches") as ledger:
        yield ledger


@pytest.fixture
async def batched(settings):
    async with _ledger(settings, batched=True) as ledger:
        yield ledger


async def offered_benefit(conn, venues: int = 1) -> list[dict]:
    """A merchant with `venues` venues and one active benefit offered at each: what the ledger
    statement checks before it records (the rows a scan would have found)."""
    merchant, benefit = uuid.uuid4(), uuid.uuid4()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO merchants (id, name, credit_code, district, contact_name, contact_phone)"
            " VALUES ($1, 'm', $2, '310115', 'c', '021-00000')",
            merchant, make_credit_code("310115", uuid.uuid4().int % 10_000_000),
        )
        await conn.execute(
            "INSERT INTO benefits (id, code, current_version, status, domain) VALUES ($1, $2, 1, 'active', 'culture')",
            benefit, "L" + uuid.uuid4().hex[:12].upper(),
        )
        await conn.execute(
            "INSERT INTO benefit_versions (benefit_id, version, status, spec, actor_kind, actor_id)"
            " VALUES ($1, 1, 'active', '{}'::jsonb, 'system', 'test')",
            benefit,
        )
        out = []
        for _ in range(venues):
            venue = await conn.fetchval(
                "INSERT INTO venues (merchant_id, name_zh, district, address, domain)"
                " VALUES ($1, 'v', '310115', 'a', 'culture') RETURNING id",
                merchant,
            )
            await conn.execute("INSERT INTO venue_benefits (venue_id, benefit_id) VALUES ($1, $2)", venue, benefit)
            out.append({"venue": venue, "merchant": merchant, "benefit": benefit})
    return out


async def ids(conn):
    (where,) = await offered_benefit(conn)
    return {**where, "person": uuid.uuid4()}


async def record(ledger, who, *, jti, keys=(), caps=(), capacity=None, companions=0, expires=EXPIRES):
    """The ledger statement through the service's own call, which maps each refusal's SQLSTATE."""
    async with ledger.pool.acquire() as conn:
        return await db.record_redemption(
            conn,
            batches=ledger.next_batcher(),
            entry=LedgerEntry(
                id=uuid.uuid4(), jti=jti, code_expires_at=expires, code_source="cj", service_day=DAY, person_id=who["person"],
                benefit_id=who["benefit"], benefit_version=1, benefit_code="T1", venue_id=who["venue"],
                merchant_id=who["merchant"], device_id=None, staff_id=None, companions=companions,
                value_kind="free", value_fen=0, priority=False, period_keys=list(keys), period_caps=list(caps),
                venue_capacity=capacity, answer=StoredAnswer(caller="test", key=None, fingerprint=b"", response=b""),
            ),
        )


async def test_one_code_is_accepted_once_under_concurrency(pool, conn):
    who = await ids(conn)
    outcomes = await asyncio.gather(*[record(pool, who, jti="same-jti") for _ in range(300)])
    assert outcomes.count("accepted") == 1
    assert outcomes.count("replayed") == 299
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE jti = 'same-jti'") == 1


async def test_daily_cap_holds_for_many_codes_at_once(pool, conn):
    who = await ids(conn)
    outcomes = await asyncio.gather(
        *[record(pool, who, jti=f"code-{i}", keys=["d:2026-11-27", "m:2026-11"], caps=[1, 4]) for i in range(200)]
    )
    assert outcomes.count("accepted") == 1
    assert outcomes.count("quota_exhausted") == 199
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE person_id = $1", who["person"]) == 1
    # A refused scan consumed nothing: its code is still unused.
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes") == 1
    used = await conn.fetch("SELECT period_key, used FROM quota_usage ORDER BY period_key")
    assert [(r["period_key"], r["used"]) for r in used] == [("d:2026-11-27", 1), ("m:2026-11", 1)]


async def test_venue_capacity_counts_companions(pool, conn):
    (where,) = await offered_benefit(conn)
    venue = where["venue"]
    people = [{**where, "person": uuid.uuid4()} for _ in range(120)]
    outcomes = await asyncio.gather(
        *[record(pool, who, jti=f"v-{i}", capacity=50, companions=1) for i, who in enumerate(people)]
    )
    assert outcomes.count("accepted") == 25
    assert outcomes.count("venue_capacity_reached") == 95
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1", venue) == 50
    admitted = await conn.fetchval("SELECT sum(1 + companions) FROM redemptions WHERE venue_id = $1", venue)
    assert admitted == 50


async def test_zero_cap_never_accepts(pool, conn):
    assert await record(pool, await ids(conn), jti="z", keys=["y:2026"], caps=[0]) == "quota_exhausted"


async def test_a_benefit_changed_since_it_was_read_is_not_recorded(pool, conn):
    """The scan service may list a venue's benefits from memory; the statement checks them."""
    who = await ids(conn)
    (elsewhere,) = await offered_benefit(conn)
    assert await record(pool, {**who, "venue": elsewhere["venue"]}, jti="s1") == "stale_benefit"  # not offered there
    await conn.execute("UPDATE benefits SET status = 'paused' WHERE id = $1", who["benefit"])
    assert await record(pool, who, jti="s2") == "stale_benefit"
    await conn.execute("UPDATE benefits SET status = 'active' WHERE id = $1", who["benefit"])
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO benefit_versions (benefit_id, version, status, spec, actor_kind, actor_id)"
            " VALUES ($1, 2, 'active', '{}'::jsonb, 'system', 'test')",
            who["benefit"],
        )
        await conn.execute("UPDATE benefits SET current_version = 2 WHERE id = $1", who["benefit"])
    assert await record(pool, who, jti="s3") == "stale_benefit"  # evaluated with version 1
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes WHERE jti LIKE 's_'") == 0


async def test_ledger_rows_cannot_be_changed_or_deleted(pool, conn):
    who = await ids(conn)
    assert await record(pool, who, jti="keep") == "accepted"
    for statement in (
        "UPDATE redemptions SET companions = 5",
        "DELETE FROM redemptions",
        "DELETE FROM consumed_codes",
        "UPDATE consumed_codes SET jti = 'other'",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.FeatureNotSupportedError)):
        await conn.execute("TRUNCATE redemptions")
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1


async def test_batches_hold_many_scans_and_a_refusal_undoes_only_itself(batched, conn):
    """In batches, many scans share a statement: a replay or an exhausted quota among them is
    refused alone, its batch's other scans are recorded, and a capacity stripe is shared."""
    (where,) = await offered_benefit(conn)
    people = [{**where, "person": uuid.uuid4()} for _ in range(60)]
    first = {**where, "person": uuid.uuid4()}
    assert await record(batched, first, jti="first", capacity=100_000) == "accepted"  # shares the stripes out
    calls = [record(batched, who, jti=f"b-{i}", keys=["d:2026-11-27"], caps=[1], capacity=100_000) for i, who in enumerate(people)]
    calls += [record(batched, people[i], jti=f"again-{i}", keys=["d:2026-11-27"], caps=[1], capacity=100_000) for i in range(20)]
    calls += [record(batched, people[i], jti=f"b-{i}", capacity=100_000) for i in range(20, 40)]
    batches_before = sum(b.batches for b in batched.batchers)
    outcomes = await asyncio.gather(*calls)
    assert (outcomes.count("accepted"), outcomes.count("quota_exhausted"), outcomes.count("replayed")) == (60, 20, 20)
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE venue_id = $1", where["venue"]) == 61
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE type = 'redemption.accepted'") == 61
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1", where["venue"]) == 61
    batches = sum(b.batches for b in batched.batchers) - batches_before
    assert batches < 50  # they were batched
    # A batch's scans start at one stripe and keep it (migration 0058): a stripe a batch, not a scan.
    touched = await conn.fetchval("SELECT count(*) FROM capacity_stripes WHERE venue_id = $1 AND used > 0", where["venue"])
    assert touched <= batches + 1


async def test_an_error_in_a_batch_fails_only_its_own_scan(batched, conn):
    """A statement failing for another reason than a refusal rolls its batch back; each scan is
    then run alone, so the others are recorded and only the faulty one fails."""
    who = await ids(conn)
    people = [{**who, "person": uuid.uuid4()} for _ in range(30)]
    calls = [record(batched, p, jti=f"e-{i}") for i, p in enumerate(people)]
    calls.insert(10, record(batched, who, jti="no-expiry", expires=None))  # the statement refuses to guess a partition
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], asyncpg.PostgresError) and failed[0].sqlstate == "22004"
    assert outcomes.count("accepted") == 30
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE jti LIKE 'e-%'") == 30
    assert sum(b.batches for b in batched.batchers) < 31  # they were batched, the faulty one among others


async def test_a_caller_that_goes_away_leaves_its_batch_alone(batched, conn):
    """A scan whose client disconnected is cancelled while its call waits in a batch: the batch
    goes on for the others, and its call, queued with theirs, is made with theirs."""
    who = await ids(conn)
    people = [{**who, "person": uuid.uuid4()} for _ in range(20)]
    calls = [asyncio.create_task(record(batched, p, jti=f"gone-{i}")) for i, p in enumerate(people)]
    await asyncio.sleep(0)  # every call queued
    calls[7].cancel()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[7], asyncio.CancelledError)
    assert [o for i, o in enumerate(outcomes) if i != 7] == ["accepted"] * 19
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE jti LIKE 'gone-%'") == 20
