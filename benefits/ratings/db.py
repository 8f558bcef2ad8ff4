"""SQL of 好差评: the holder's ledger events with their rating, ratings, and the 差评 cases."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from foundation.paging import Keyset

__all__ = (
    "close_case",
    "get_case",
    "get_person_event",
    "insert_case",
    "insert_rating",
    "list_cases",
    "list_person_events",
    "merchant_ratings",
    "overdue_by_district",
)

# A ledger event as its holder sees it: names as the ledger row applied them, and the holder's
# rating with its case. Reversal rows carry no rating (only a visit is rated).
_EVENT = """
SELECT r.id, r.kind, r.at, r.service_day, r.benefit_id, r.benefit_code,
       coalesce(bv.spec->>'name_zh', r.benefit_code) AS benefit_name_zh,
       r.venue_id, v.name_zh AS venue_name_zh, v.district, r.merchant_id, r.companions, r.reverses,
       EXISTS (SELECT 1 FROM redemptions x WHERE x.reverses = r.id) AS reversed,
       g.id AS rating_id, g.stars, g.comment, g.created_at AS rated_at,
       c.status AS case_status, c.reply, c.closed_at
FROM redemptions r
LEFT JOIN benefit_versions bv ON bv.benefit_id = r.benefit_id AND bv.version = r.benefit_version
LEFT JOIN venues v ON v.id = r.venue_id
LEFT JOIN ratings g ON g.redemption_id = r.id AND g.person_id = r.person_id
LEFT JOIN rating_cases c ON c.rating_id = g.id
"""


async def list_person_events(
    conn: asyncpg.Connection, person_id: UUID, *, before: Keyset | None, limit: int
) -> list[asyncpg.Record]:
    """One person's ledger events, newest first, strictly before the `(at, id)` cursor."""
    before_at, before_id = before or (None, None)
    return await conn.fetch(
        _EVENT
        + """
        WHERE r.person_id = $1 AND ($2::timestamptz IS NULL OR (r.at, r.id) < ($2, $3::uuid))
        ORDER BY r.at DESC, r.id DESC
        LIMIT $4
        """,
        person_id, before_at, before_id, limit,
    )


async def get_person_event(
    conn: asyncpg.Connection, person_id: UUID, event_id: UUID
) -> asyncpg.Record | None:
    """One ledger event if it is this person's; None for another's and for an unknown id alike."""
    return await conn.fetchrow(_EVENT + " WHERE r.id = $1 AND r.person_id = $2", event_id, person_id)


async def insert_rating(
    conn: asyncpg.Connection, *, rating_id: UUID, redemption_id: UUID, person_id: UUID, venue_id: UUID,
    merchant_id: UUID, stars: int, comment: str | None,
) -> asyncpg.Record | None:
    """The rating; None if the redemption was rated already (UNIQUE redemption_id decides races)."""
    return await conn.fetchrow(
        """
        INSERT INTO ratings (id, redemption_id, person_id, venue_id, merchant_id, stars, comment)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (redemption_id) DO NOTHING
        RETURNING id, created_at
        """,
        rating_id, redemption_id, person_id, venue_id, merchant_id, stars, comment,
    )


async def insert_case(
    conn: asyncpg.Connection, *, case_id: UUID, rating_id: UUID, district: str | None, due_hours: int
) -> None:
    await conn.execute(
        "INSERT INTO rating_cases (id, rating_id, district, due_at)"
        " VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
        case_id, rating_id, district, due_hours,
    )


_CASE_COLUMNS = """
       c.id, c.status, c.district, c.opened_at, c.reply, c.replied_by, c.closed_at, c.due_at,
       (c.status = 'open' AND c.due_at < now()) AS overdue,
       g.stars, g.comment, g.created_at AS rated_at, g.redemption_id, g.venue_id, g.merchant_id,
       v.name_zh AS venue_name_zh, r.benefit_code, r.service_day
FROM rating_cases c
JOIN ratings g ON g.id = c.rating_id
JOIN redemptions r ON r.id = g.redemption_id
LEFT JOIN venues v ON v.id = g.venue_id
"""

# The open queue is worked oldest first; closed cases read most recently answered first. Each
# entry: the timestamp a cursor is made of, the "after the cursor" test, the order.
_CASE_ORDER = {
    "open": ("c.opened_at", "(c.opened_at, c.id) > ($3, $4::uuid)", "c.opened_at, c.id"),
    "closed": ("c.closed_at", "(c.closed_at, c.id) < ($3, $4::uuid)", "c.closed_at DESC, c.id DESC"),
}


async def list_cases(
    conn: asyncpg.Connection, *, status: str, district: str | None, after: Keyset | None,
    limit: int, overdue: bool | None = None,
) -> list[asyncpg.Record]:
    """Cases of one status, in one district (all when `district` is None), in queue order.

    Each row's `sort_at` is the timestamp of its cursor.
    """
    sort_at, after_clause, order = _CASE_ORDER[status]
    after_at, after_id = after or (None, None)
    return await conn.fetch(
        f"""
        SELECT {sort_at} AS sort_at, {_CASE_COLUMNS}
        WHERE c.status = $1 AND ($2::text IS NULL OR c.district = $2)
          AND ($3::timestamptz IS NULL OR {after_clause})
          AND ($6::boolean IS NULL OR (c.status = 'open' AND c.due_at < now()) = $6)
        ORDER BY {order}
        LIMIT $5
        """,
        status, district, after_at, after_id, limit, overdue,
    )


async def get_case(conn: asyncpg.Connection, case_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT " + _CASE_COLUMNS + " WHERE c.id = $1", case_id)


async def close_case(
    conn: asyncpg.Connection, case_id: UUID, *, reply: str, replied_by: UUID, district: str | None
) -> bool:
    """Answer and close an open case in scope; False if it is closed, unknown or out of scope.

    One conditional UPDATE, so of two admins answering at once exactly one closes the case.
    """
    closed = await conn.fetchval(
        """
        UPDATE rating_cases SET status = 'closed', reply = $2, replied_by = $3, closed_at = now()
        WHERE id = $1 AND status = 'open' AND ($4::text IS NULL OR district = $4)
        RETURNING id
        """,
        case_id, reply, replied_by, district,
    )
    return closed is not None




async def merchant_ratings(
    conn: asyncpg.Connection, *, merchant_id: UUID, venue_id: UUID | None, before: Keyset | None, limit: int
) -> list[asyncpg.Record]:
    """Ratings of one merchant's venues, newest first, with their case's handling (no person id)."""
    before_at, before_id = before or (None, None)
    return await conn.fetch(
        """
        SELECT g.id, g.redemption_id, g.stars, g.comment, g.created_at AS at, g.venue_id, v.name_zh AS venue_name_zh,
               c.status AS case_status, c.due_at, (c.status = 'open' AND c.due_at < now()) AS overdue, c.reply
          FROM ratings g
          LEFT JOIN venues v ON v.id = g.venue_id
          LEFT JOIN rating_cases c ON c.rating_id = g.id
         WHERE g.merchant_id = $1 AND ($2::uuid IS NULL OR g.venue_id = $2)
           AND ($3::timestamptz IS NULL OR (g.created_at, g.id) < ($3, $4::uuid))
         ORDER BY g.created_at DESC, g.id DESC
         LIMIT $5
        """,
        merchant_id, venue_id, before_at, before_id, limit,
    )


async def overdue_by_district(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Open cases past their due time, per district (for /metrics)."""
    return await conn.fetch(
        "SELECT coalesce(district, '') AS district, count(*) AS overdue FROM rating_cases"
        " WHERE status = 'open' AND due_at < now() GROUP BY 1"
    )
