"""SQL of the redemption engine: the ledger, the idempotency records and the reversal."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import asyncpg

__all__ = (
    "get_redemption",
    "get_stored_answer",
    "give_back_quota",
    "insert_reversal",
    "delete_idempotency_keys",
    "record_redemption",
    "record_rejection",
)

_RECORD = """
SELECT record_redemption($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17::text[], $18::int[], $19, $20, $21, $22, $23)
"""


_REFUSALS = {
    "CJQ00": "replayed",
    "CJQ01": "quota_exhausted",
    "CJQ02": "venue_capacity_reached",
    "CJQ03": "idempotency_conflict",
    "CJQ04": "stale_benefit",
}
"""What `record_redemption` raises when it refuses (migration 0042); the statement wrote nothing."""


async def record_redemption(conn: asyncpg.Connection, *args) -> str:
    """Run the one-statement accept path outside any transaction: "accepted" once committed, or
    the refusal ("replayed", "quota_exhausted", "venue_capacity_reached", "idempotency_conflict",
    or "stale_benefit" when the benefit is no longer active at that venue in that version)."""
    try:
        return await conn.fetchval(_RECORD, *args)
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


async def record_rejection(conn: asyncpg.Connection, *args) -> bool:
    """Record a refused scan; False when an Idempotency-Key answer was stored first by another."""
    return await conn.fetchval(_REJECT, *args)


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
