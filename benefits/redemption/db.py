"""SQL of the redemption engine: the ledger, the idempotency records, the reversal, and the ledger
read for the merchant's views (reports.py)."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import asyncpg

from benefits.redemption.types import LedgerEntry, OfflineRecord, RejectedScan
from foundation.batching import StatementBatcher
from foundation.outbox import OUTBOX_INSERT

__all__ = (
    "RECORD_IN_BATCHES",
    "code_consumed",
    "attached_partitions",
    "copy_partition",
    "delete_idempotency_keys",
    "detach_partitions",
    "detached_partitions",
    "ensure_partitions",
    "get_redemption",
    "get_stored_answer",
    "give_back_quota",
    "insert_offline_scan",
    "insert_reversal",
    "ledger_lock_order",
    "ledger_totals",
    "list_ledger_entries",
    "list_paused_at_venue",
    "month_archived",
    "lock_offline_device",
    "offline_budget_used",
    "offline_scan",
    "record_offline_redemption",
    "record_redemption",
    "record_rejection",
    "rejected_totals",
)

# The ledger function and its outbox event (issue 13) in one statement: no extra round trip, and
# the event exists exactly when the ledger row does (a refusal raises and the statement writes
# nothing). The person is only `subject`; the relay pseudonymises it.
def _record_statement(offline: bool, *, batched: bool = False) -> str:
    """The ledger function and its outbox event (issue 13) in one statement: no extra round trip,
    and the event exists exactly when the ledger row does (a refusal raises and the statement
    writes nothing). The person is only `subject`; the relay pseudonymises it. An offline
    decision (issue 15) also passes its decision time and writes its `offline_scans` row in the
    same statement, so the row and the ledger entry commit together or not at all."""
    # Online, $26 is the version of a cached person to check (migration 0059); offline, the
    # decision time (an offline decision is taken from the gate's own copy, checked on upload).
    decided_at = ", p_decided_at => $26" if offline else ", p_person_version => $26"
    kept = """, kept AS (
    INSERT INTO offline_scans (id, device_id, local_id, fingerprint, outcome, reason, redemption_id, venue_id,
                               merchant_id, benefit_id, person_id, companions, decided_at, service_day)
    SELECT $27, $11, $28, $29, 'recorded', 'accepted', $1, $9, $10, $6, $5, $13, $26, $4
    FROM decided WHERE result = 'accepted'
)""" if offline else ""
    return f"""
WITH decided AS (
    SELECT {"record_redemption_or_refusal" if batched else "record_redemption"}(
        p_id => $1, p_jti => $2, p_code_source => $3, p_service_day => $4,
        p_person_id => $5, p_benefit_id => $6, p_benefit_version => $7, p_benefit_code => $8,
        p_venue_id => $9, p_merchant_id => $10, p_device_id => $11, p_staff_id => $12,
        p_companions => $13, p_value_kind => $14, p_value_fen => $15, p_priority => $16,
        p_period_keys => $17::text[], p_period_caps => $18::int[], p_venue_capacity => $19,
        p_idem_caller => $20, p_idem_key => $21, p_idem_fingerprint => $22, p_idem_response => $23,
        p_slow => $24, p_code_expires_at => $25{decided_at}
    ) AS result
), event AS (
    {OUTBOX_INSERT}
    SELECT 'ledger', 'redemption.accepted', 1, $5, jsonb_build_object(
        'redemption_id', $1::uuid, 'service_day', $4::date, 'benefit_id', $6::uuid,
        'benefit_version', $7::int, 'benefit_code', $8::text, 'venue_id', $9::uuid,
        'merchant_id', $10::uuid, 'device_id', $11::uuid, 'staff_id', $12::uuid,
        'code_source', $3::text, 'companions', $13::int, 'value_kind', $14::text,
        'value_fen', $15::bigint, 'priority', $16::boolean)
    FROM decided WHERE result = 'accepted'
){kept}
SELECT result FROM decided
"""


_RECORD = _record_statement(offline=False)
_RECORD_OFFLINE = _record_statement(offline=True)
RECORD_IN_BATCHES = _record_statement(offline=False, batched=True)
"""The statement `record_redemption` runs through a `StatementBatcher` (api.lifespan makes it)."""


_REFUSALS = {
    "CJQ00": "replayed",
    "CJQ01": "quota_exhausted",
    "CJQ02": "venue_capacity_reached",
    "CJQ03": "idempotency_conflict",
    "CJQ04": "stale_benefit",
    "CJQ06": "stale_person",
}
"""What `record_redemption` raises when it refuses (migration 0042); the statement wrote nothing."""

_SLOW_PATH = "CJQ05"
"""Raised (nothing written) when no free capacity stripe had room: run again with `p_slow` (0044)."""


async def record_redemption(
    conn: asyncpg.Connection, *, entry: LedgerEntry, batches: StatementBatcher | None = None
) -> str:
    """Run the one-statement accept path outside any transaction: "accepted" once committed, or
    the refusal ("replayed", "quota_exhausted", "venue_capacity_reached", "idempotency_conflict",
    or "stale_benefit" when the benefit is no longer active at that venue in that version, or
    the venue no longer active, or "stale_person" when the entry carries a `person_version`
    and the person is no longer that version). Where a capacity is counted and no free stripe has room, the
    statement runs a second time on the capacity's slow path (migration 0044), on `conn`.

    With `batches` the statement runs in a batch with the worker's other scans of the moment
    (`RECORD_IN_BATCHES`, foundation/batching.py): the same decision, committed with theirs."""
    args = (*_ledger_args(entry), entry.person_version)
    if batches is None:
        return await _run_ledger(conn, _RECORD, args, savepoint=False)
    result = await batches.run((*args[:23], False, *args[23:]))
    if result == _SLOW_PATH:
        return await _run_ledger(conn, _RECORD, args, savepoint=False, slow_only=True)
    return _REFUSALS.get(result, result)


def ledger_lock_order(args: tuple) -> tuple:
    """The order a batch's ledger statements run in: by person, then code. The rows a statement
    waits for belong to its person (their quota rows; their code, whose replay waits for the
    first use to commit; their Idempotency-Key), and stripes are never waited for (`SKIP
    LOCKED`; the slow path runs alone): so batches lock in one order and cannot deadlock."""
    return (args[4], args[1])  # p_person_id, p_jti


async def record_offline_redemption(conn: asyncpg.Connection, *, entry: LedgerEntry, kept: OfflineRecord) -> str:
    """The same ledger statement for a decision a gate took offline, inside the caller's
    transaction (each run in a savepoint, so a refusal undoes only itself): it carries the
    decision time and writes the item's `offline_scans` row with the ledger row (migration 0049)."""
    args = (*_ledger_args(entry), kept.decided_at, kept.id, kept.local_id, kept.fingerprint)
    return await _run_ledger(conn, _RECORD_OFFLINE, args, savepoint=True)


def _ledger_args(e: LedgerEntry) -> tuple:
    answer = e.answer
    return (
        e.id, e.jti, e.code_source, e.service_day,
        e.person_id, e.benefit_id, e.benefit_version, e.benefit_code,
        e.venue_id, e.merchant_id, e.device_id, e.staff_id,
        e.companions, e.value_kind, e.value_fen, e.priority,
        e.period_keys, e.period_caps, e.venue_capacity,
        answer.caller, answer.key, answer.fingerprint, answer.response, e.code_expires_at,
    )


async def _run_ledger(
    conn: asyncpg.Connection, sql: str, args: tuple, *, savepoint: bool, slow_only: bool = False
) -> str:
    for slow in (True,) if slow_only else (False, True):
        try:
            if not savepoint:
                return await conn.fetchval(sql, *args[:23], slow, *args[23:])
            async with conn.transaction():
                return await conn.fetchval(sql, *args[:23], slow, *args[23:])
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == _SLOW_PATH and not slow:
                continue  # no free stripe with room: the same statement once more, on the slow path
            refusal = _REFUSALS.get(exc.sqlstate)
            if refusal is None:
                raise
            return refusal
    raise AssertionError("unreachable: the slow path never asks for itself")


# --- offline decisions (migration 0049, offline.py) ---------------------------------------------


async def lock_offline_device(conn: asyncpg.Connection, device_id: UUID) -> None:
    """One upload of a device at a time (to its transaction's end): its items' stored answers and
    its offline budget are read and written under it, so two uploads of one batch (or two clones
    of one device) cannot both record the same item or both spend the last of the budget."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('offline-device:' || $1::uuid::text, 0))", device_id)


async def offline_scan(conn: asyncpg.Connection, *, device_id: UUID, local_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT fingerprint, outcome, reason, redemption_id FROM offline_scans WHERE device_id = $1 AND local_id = $2",
        device_id, local_id,
    )


async def offline_budget_used(
    conn: asyncpg.Connection, *, device_id: UUID, hour_start: datetime, person_id: UUID, service_day: date
) -> asyncpg.Record:
    """The device's recorded offline accepts in the clock hour from `hour_start`, and the person's that day."""
    return await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE decided_at >= $2 AND decided_at < $2 + interval '1 hour')::int AS hour,
               count(*) FILTER (WHERE person_id = $3 AND service_day = $4)::int AS person_day
          FROM offline_scans
         WHERE device_id = $1 AND outcome = 'recorded'
           AND decided_at >= least($2, $4::timestamp AT TIME ZONE 'Asia/Shanghai')
           AND decided_at < greatest($2 + interval '1 hour', ($4 + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
        """,
        device_id, hour_start, person_id, service_day,
    )


async def insert_offline_scan(conn: asyncpg.Connection, kept: OfflineRecord) -> None:
    """A conflict or a rejection of an uploaded item (a recorded one is written by the ledger statement)."""
    await conn.execute(
        """
        INSERT INTO offline_scans (id, device_id, local_id, fingerprint, outcome, reason, redemption_id, venue_id,
                                   merchant_id, benefit_id, person_id, companions, decided_at, service_day)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        """,
        kept.id, kept.device_id, kept.local_id, kept.fingerprint, kept.outcome, kept.reason, kept.redemption_id,
        kept.venue_id, kept.merchant_id, kept.benefit_id, kept.person_id, kept.companions, kept.decided_at,
        kept.service_day,
    )


# One statement, so the refusal and its stored answer commit together or not at all. With an
# Idempotency-Key, the refusal is only recorded when this request's answer is the one stored: a
# retry whose key was answered already adds nothing to the ledger of refusals.
_REJECT = f"""
WITH answer AS (
    INSERT INTO idempotency_keys (caller, key, fingerprint, status, response)
    SELECT $10, $11, $12, 200, $13 WHERE $11::text IS NOT NULL
    ON CONFLICT (caller, key) DO NOTHING
    RETURNING 1
), refused AS (
    INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id, device_id, staff_id, person_id, benefit_id)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
    WHERE $11::text IS NULL OR EXISTS (SELECT 1 FROM answer)
    RETURNING 1
), event AS (  -- issue 13: the refusal's event, reason only (no person)
    {OUTBOX_INSERT}
    SELECT 'scans', 'scan.refused', 1, NULL, jsonb_build_object(
        'scan_id', $1::uuid, 'service_day', $2::date, 'reason', $3::text, 'venue_id', $4::uuid,
        'merchant_id', $5::uuid, 'device_id', $6::uuid, 'staff_id', $7::uuid, 'benefit_id', $9::uuid)
    FROM refused
)
SELECT EXISTS (SELECT 1 FROM refused)
"""


async def record_rejection(conn: asyncpg.Connection, *, entry: RejectedScan) -> bool:
    """Record a refused scan; False when an Idempotency-Key answer was stored first by another."""
    e, answer = entry, entry.answer
    return await conn.fetchval(
        _REJECT,
        e.id, e.service_day, e.reason, e.venue_id, e.merchant_id, e.device_id, e.staff_id, e.person_id,
        e.benefit_id, answer.caller, answer.key, answer.fingerprint, answer.response,
    )


async def code_consumed(conn: asyncpg.Connection, jti: str, *, expires_at: datetime) -> bool:
    """Whether a code was used: asked only when Redis says it was presented before. Its expiry
    names its one partition (migration 0050), so this is one index probe, not one per month."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM consumed_codes WHERE jti = $1"
        " AND code_month = date_trunc('month', $2::timestamptz AT TIME ZONE 'Asia/Shanghai')::date)",
        jti, expires_at,
    )


async def list_paused_at_venue(conn: asyncpg.Connection, venue_id: UUID) -> list[asyncpg.Record]:
    """The paused benefits linked to a venue (id, current_version), in code order."""
    return await conn.fetch(
        "SELECT b.id, b.current_version FROM venue_benefits vb JOIN benefits b ON b.id = vb.benefit_id"
        " WHERE vb.venue_id = $1 AND b.status = 'paused' ORDER BY b.code",
        venue_id,
    )


async def get_stored_answer(conn: asyncpg.Connection, *, caller: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE caller = $1 AND key = $2", caller, key
    )


async def get_redemption(conn: asyncpg.Connection, redemption_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT r.id, r.at, r.service_day, r.person_id, r.benefit_id, r.benefit_version, r.benefit_code,
               r.venue_id, r.merchant_id, r.companions, r.value_kind, r.value_fen, r.period_keys,
               EXISTS (SELECT 1 FROM redemptions x WHERE x.reverses = r.id) AS reversed
        FROM redemptions r WHERE r.id = $1 AND r.kind = 'redemption'
        """,
        redemption_id,
    )


async def insert_reversal(
    conn: asyncpg.Connection, *, reversal_id: UUID, original: asyncpg.Record, service_day: date,
    device_id: UUID | None, staff_id: UUID | None, reason: str,
) -> asyncpg.Record | None:
    """The reversal event; None if the redemption was already reversed (the ledger's trigger
    writes no row when `redemption_reversals` holds one for it, migration 0050)."""
    return await conn.fetchrow(
        f"""
        WITH reversal AS (
            INSERT INTO redemptions (id, kind, reverses, service_day, person_id, benefit_id, benefit_version,
                                     benefit_code, venue_id, merchant_id, device_id, staff_id, companions,
                                     value_kind, value_fen, period_keys, reason, reverses_day)
            VALUES ($1, 'reversal', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
            RETURNING id, at
        ), event AS (  -- issue 13: the reversal's event, in the same statement
            {OUTBOX_INSERT}
            SELECT 'ledger', 'redemption.reversed', 1, $4, jsonb_build_object(
                'reversal_id', $1::uuid, 'redemption_id', $2::uuid, 'service_day', $3::date,
                'benefit_id', $5::uuid, 'benefit_version', $6::int, 'benefit_code', $7::text,
                'venue_id', $8::uuid, 'merchant_id', $9::uuid, 'device_id', $10::uuid,
                'staff_id', $11::uuid, 'companions', $12::int, 'value_kind', $13::text,
                'value_fen', $14::bigint, 'reason', $16::text)
            FROM reversal
        )
        SELECT id, at FROM reversal
        """,
        reversal_id, original["id"], service_day, original["person_id"], original["benefit_id"],
        original["benefit_version"], original["benefit_code"], original["venue_id"], original["merchant_id"],
        device_id, staff_id, original["companions"], original["value_kind"], original["value_fen"],
        original["period_keys"], reason, original["service_day"],
    )


async def give_back_quota(conn: asyncpg.Connection, original: asyncpg.Record) -> None:
    """A reversal returns what its redemption took: the person's cap buckets and the venue's day."""
    await conn.execute(
        """
        UPDATE quota_usage SET used = used - 1
        WHERE person_id = $1 AND benefit_id = $2 AND period_key = ANY($3::text[]) AND used > 0
        """,
        original["person_id"], original["benefit_id"], original["period_keys"],
    )
    # The venue's capacity, then the benefit's at the venue (the ledger statement's lock order);
    # each is a no-op where that capacity is not counted (migration 0044).
    await conn.execute(
        "SELECT capacity_give_back($1, $1, $2, $4), capacity_give_back($1, $3, $2, $4)",
        original["venue_id"], original["service_day"], original["benefit_id"], 1 + original["companions"],
    )


async def delete_idempotency_keys(conn: asyncpg.Connection, *, created_before: datetime, batch: int) -> int:
    """One batch of stored Idempotency-Key answers older than `created_before`; how many went."""
    status = await conn.execute(
        """
        DELETE FROM idempotency_keys WHERE (caller, key) IN (
            SELECT caller, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2
        )
        """,
        created_before, batch,
    )
    return int(status.split()[-1])


# --- the ledger, read for the merchant's views (tables of migration 0040) ----------------------


async def list_ledger_entries(
    conn: asyncpg.Connection,
    *,
    merchant_id: UUID,
    venue_id: UUID | None,
    benefit_id: UUID | None,
    day_from: date | None,
    day_to: date | None,
    result: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Accepted (standing or reversed) and refused scans of one merchant, newest first."""
    before_at, before_id = before or (None, None)
    return await conn.fetch(
        """
        SELECT * FROM (
            SELECT r.id, r.at, r.service_day, r.venue_id, r.benefit_id, r.benefit_code,
                   CASE WHEN x.id IS NULL THEN 'accepted' ELSE 'reversed' END AS result,
                   x.reason, r.companions, r.value_fen, r.device_id, r.staff_id, x.at AS reversed_at,
                   r.decided_at
            FROM redemptions r LEFT JOIN redemptions x ON x.reverses = r.id
            WHERE r.kind = 'redemption' AND r.merchant_id = $1
              AND ($2::uuid IS NULL OR r.venue_id = $2)
              AND ($3::uuid IS NULL OR r.benefit_id = $3)
              AND ($4::date IS NULL OR r.service_day >= $4)
              AND ($5::date IS NULL OR r.service_day <= $5)
              AND ($6::text IS NULL OR $6 IN ('accepted', 'reversed'))
              AND ($7::timestamptz IS NULL OR (r.at, r.id) < ($7, $8::uuid))
            UNION ALL
            SELECT s.id, s.at, s.service_day, s.venue_id, s.benefit_id, b.code,
                   'rejected', s.reason, 0, 0::bigint, s.device_id, s.staff_id, NULL::timestamptz, NULL::timestamptz
            FROM rejected_scans s LEFT JOIN benefits b ON b.id = s.benefit_id  -- a benefit's code never changes
            WHERE s.merchant_id = $1
              AND ($2::uuid IS NULL OR s.venue_id = $2)
              AND ($3::uuid IS NULL OR s.benefit_id = $3)
              AND ($4::date IS NULL OR s.service_day >= $4)
              AND ($5::date IS NULL OR s.service_day <= $5)
              AND ($6::text IS NULL OR $6 = 'rejected')
              AND ($7::timestamptz IS NULL OR (s.at, s.id) < ($7, $8::uuid))
            UNION ALL  -- offline decisions the upload did not record (migration 0049): never counted
            SELECT o.id, o.uploaded_at, o.service_day, o.venue_id, o.benefit_id, b.code,
                   o.outcome, o.reason, o.companions, 0::bigint, o.device_id, NULL::uuid, NULL::timestamptz, o.decided_at
            FROM offline_scans o LEFT JOIN benefits b ON b.id = o.benefit_id
            WHERE o.merchant_id = $1 AND o.outcome <> 'recorded'
              AND ($2::uuid IS NULL OR o.venue_id = $2)
              AND ($3::uuid IS NULL OR o.benefit_id = $3)
              AND ($4::date IS NULL OR o.service_day >= $4)
              AND ($5::date IS NULL OR o.service_day <= $5)
              AND ($6::text IS NULL OR $6 = o.outcome)
              AND ($7::timestamptz IS NULL OR (o.uploaded_at, o.id) < ($7, $8::uuid))
        ) e
        WHERE ($6::text IS NULL OR e.result = $6)
        ORDER BY e.at DESC, e.id DESC
        LIMIT $9
        """,
        merchant_id,
        venue_id,
        benefit_id,
        day_from,
        day_to,
        result,
        before_at,
        before_id,
        limit,
    )


async def ledger_totals(
    conn: asyncpg.Connection, *, venue_ids: list[UUID], day_from: date, day_to: date
) -> list[asyncpg.Record]:
    """Per venue and benefit: redemptions and reversals whose service day is in the range.

    A reversal counts on its own service day, with the companions and value of the redemption
    it reverses, so a closed period's totals do not move when a later reversal happens.
    """
    return await conn.fetch(
        """
        SELECT r.venue_id, r.benefit_id, min(r.benefit_code) AS benefit_code,
               count(*) FILTER (WHERE r.kind = 'redemption') AS redemptions,
               count(*) FILTER (WHERE r.kind = 'reversal') AS reversals,
               coalesce(sum(CASE WHEN r.kind = 'redemption' THEN 1 + o.companions
                                 ELSE -(1 + o.companions) END), 0)::bigint AS net_admitted,
               coalesce(sum(CASE WHEN r.kind = 'redemption' THEN o.value_fen ELSE -o.value_fen END), 0)::bigint
                   AS net_value_fen
        FROM redemptions r JOIN redemptions o ON o.id = coalesce(r.reverses, r.id)
        WHERE r.venue_id = ANY($1::uuid[]) AND r.service_day BETWEEN $2 AND $3
        GROUP BY r.venue_id, r.benefit_id
        ORDER BY r.venue_id, min(r.benefit_code), r.benefit_id
        """,
        venue_ids,
        day_from,
        day_to,
    )


async def rejected_totals(conn: asyncpg.Connection, *, venue_ids: list[UUID], day: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT venue_id, reason, count(*) AS n FROM rejected_scans
        WHERE venue_id = ANY($1::uuid[]) AND service_day = $2
        GROUP BY venue_id, reason ORDER BY venue_id, reason
        """,
        venue_ids,
        day,
    )


# --- the archive of sealed statements (migration 0047, archive.py) -------------------------------


async def lock_statement(conn: asyncpg.Connection, statement_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('sealed-statement:' || $1, 0))", statement_id)


async def archived_statement(conn: asyncpg.Connection, *, statement_id: str, content_digest: str) -> bytes | None:
    return await conn.fetchval(
        "SELECT document FROM sealed_statements WHERE statement_id = $1 AND content_digest = $2", statement_id, content_digest
    )


async def record_seal_key(conn: asyncpg.Connection, *, kid: str, alg: str, version: int, public_jwk: dict) -> None:
    await conn.execute(
        "INSERT INTO seal_keys (kid, alg, version, public_jwk) VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING",
        kid, alg, version, public_jwk,
    )


async def archive_statement(
    conn: asyncpg.Connection, *, statement_id: str, content_digest: str, merchant_id, month: str, kid: str,
    document: bytes, digest: str, issued_at,
) -> int:
    """Append the next revision of a statement (the caller holds its lock); returns the revision."""
    return await conn.fetchval(
        """
        INSERT INTO sealed_statements (statement_id, content_digest, revision, merchant_id, month, kid, document, digest, issued_at)
        SELECT $1, $2, coalesce(max(revision), 0) + 1, $3, $4, $5, $6, $7, $8
          FROM sealed_statements WHERE statement_id = $1
        RETURNING revision
        """,
        statement_id, content_digest, merchant_id, month, kid, document, digest, issued_at,
    )


async def seal_key_jwks(conn: asyncpg.Connection) -> list[dict]:
    return [dict(row["public_jwk"]) for row in await conn.fetch("SELECT public_jwk FROM seal_keys ORDER BY kid")]


# --- the ledger's month partitions (migration 0050, partitions.py) ------------------------------

LEDGER_TABLES = ("redemptions", "rejected_scans", "consumed_codes")
"""The partitioned tables, each with partitions `<table>_yYYYYmMM` and `<table>_default`."""

_EXPORT_ORDER = {"redemptions": "seq, id", "rejected_scans": "at, id", "consumed_codes": "jti, code_month"}
"""Rows in a fixed order, so an export's bytes (and digest) depend only on its rows."""


async def ensure_partitions(conn: asyncpg.Connection, *, first: date, last: date) -> list[str]:
    """The owner's `ledger_ensure_partitions` (SECURITY DEFINER: the service may call it)."""
    return [row[0] for row in await conn.fetch("SELECT ledger_ensure_partitions($1, $2)", first, last)]


async def detach_partitions(conn: asyncpg.Connection, *, before: date) -> list[str]:
    """Detach every month partition that ends on or before `before` (the owner only)."""
    return [row[0] for row in await conn.fetch("SELECT ledger_detach_partitions($1)", before)]


async def attached_partitions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(parent, partition, rows estimate) of every partition of the ledger's tables."""
    return await conn.fetch(
        """
        SELECT p.relname AS parent, c.relname AS partition, greatest(c.reltuples, 0)::bigint AS estimate
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = ANY($1::text[]) AND p.relnamespace = 'public'::regnamespace
         ORDER BY 1, 2
        """,
        list(LEDGER_TABLES),
    )


async def detached_partitions(conn: asyncpg.Connection, *, suffix: str) -> list[asyncpg.Record]:
    """(table, partition) of the tables named `<ledger table>_<suffix>` that are no partition of anything."""
    return await conn.fetch(
        """
        SELECT t.parent AS table, c.relname AS partition
          FROM unnest($1::text[]) AS t (parent)
          JOIN pg_class c ON c.relname = t.parent || '_' || $2 AND c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
         WHERE NOT c.relispartition
         ORDER BY 1
        """,
        list(LEDGER_TABLES), suffix,
    )


async def month_archived(conn: asyncpg.Connection, month: date) -> bool:
    """Whether the ledger's partition of that month was detached (it exists, part of nothing)."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace"
        " AND relkind = 'r' AND NOT relispartition)",
        f"redemptions_y{month:%Y}m{month:%m}",
    )


async def copy_partition(conn: asyncpg.Connection, *, table: str, partition: str, write) -> int:
    """COPY one detached partition out as CSV with a header, in a fixed row order; the row count."""
    status = await conn.copy_from_query(
        f"SELECT * FROM public.{_ident(partition)} ORDER BY {_EXPORT_ORDER[table]}", output=write, format="csv", header=True
    )
    return int(status.split()[-1])


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a plain table name: {name!r}")
    return '"' + name + '"'
