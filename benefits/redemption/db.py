"""SQL of the redemption engine: the ledger, the idempotency records and the reversal."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import asyncpg

from benefits.redemption.types import LedgerEntry, RejectedScan

__all__ = (
    "get_redemption",
    "get_stored_answer",
    "give_back_quota",
    "insert_reversal",
    "delete_idempotency_keys",
    "list_paused_at_venue",
    "record_redemption",
    "record_rejection",
)

_RECORD = """
SELECT record_redemption(
    p_id => $1, p_jti => $2, p_code_source => $3, p_service_day => $4,
    p_person_id => $5, p_benefit_id => $6, p_benefit_version => $7, p_benefit_code => $8,
    p_venue_id => $9, p_merchant_id => $10, p_device_id => $11, p_staff_id => $12,
    p_companions => $13, p_value_kind => $14, p_value_fen => $15, p_priority => $16,
    p_period_keys => $17::text[], p_period_caps => $18::int[], p_venue_capacity => $19,
    p_idem_caller => $20, p_idem_key => $21, p_idem_fingerprint => $22, p_idem_response => $23
)
"""


_REFUSALS = {
    "CJQ00": "replayed",
    "CJQ01": "quota_exhausted",
    "CJQ02": "venue_capacity_reached",
    "CJQ03": "idempotency_conflict",
    "CJQ04": "stale_benefit",
}
"""What `record_redemption` raises when it refuses (migration 0042); the statement wrote nothing."""


async def record_redemption(conn: asyncpg.Connection, *, entry: LedgerEntry) -> str:
    """Run the one-statement accept path outside any transaction: "accepted" once committed, or
    the refusal ("replayed", "quota_exhausted", "venue_capacity_reached", "idempotency_conflict",
    or "stale_benefit" when the benefit is no longer active at that venue in that version, or
    the venue no longer active)."""
    e, answer = entry, entry.answer
    try:
        return await conn.fetchval(
            _RECORD,
            e.id, e.jti, e.code_source, e.service_day,
            e.person_id, e.benefit_id, e.benefit_version, e.benefit_code,
            e.venue_id, e.merchant_id, e.device_id, e.staff_id,
            e.companions, e.value_kind, e.value_fen, e.priority,
            e.period_keys, e.period_caps, e.venue_capacity,
            answer.caller, answer.key, answer.fingerprint, answer.response,
        )
    except asyncpg.PostgresError as exc:
        refusal = _REFUSALS.get(exc.sqlstate)
        if refusal is None:
            raise
        return refusal


# One statement, so the refusal and its stored answer commit together or not at all. With an
# Idempotency-Key, the refusal is only recorded when this request's answer is the one stored: a
# retry whose key was answered already adds nothing to the ledger of refusals.
_REJECT = """
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
    """The reversal event; None if the redemption was already reversed (UNIQUE reverses)."""
    return await conn.fetchrow(
        """
        INSERT INTO redemptions (id, kind, reverses, service_day, person_id, benefit_id, benefit_version,
                                 benefit_code, venue_id, merchant_id, device_id, staff_id, companions,
                                 value_kind, value_fen, period_keys, reason)
        VALUES ($1, 'reversal', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (reverses) DO NOTHING
        RETURNING id, at
        """,
        reversal_id, original["id"], service_day, original["person_id"], original["benefit_id"],
        original["benefit_version"], original["benefit_code"], original["venue_id"], original["merchant_id"],
        device_id, staff_id, original["companions"], original["value_kind"], original["value_fen"],
        original["period_keys"], reason,
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
    await conn.execute(
        "UPDATE venue_day_usage SET used = greatest(used - $3, 0) WHERE venue_id = $1 AND service_day = $2",
        original["venue_id"], original["service_day"], 1 + original["companions"],
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
