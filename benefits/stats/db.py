"""SQL of the operating statistics: the daily rollups (migration 0046) and a few live counts."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import asyncpg

__all__ = (
    "active_devices", "active_venues", "case_counts", "daily", "daily_by_category", "offline_outcomes", "people_used",
    "rating_totals",
    "reach", "refresh_rollups", "refusals", "refreshed_at", "replace_reach",
)

# Every rollup query narrows by the same four optional filters ($1..$2 the window, $3 district,
# $4 domain, $5 benefit).
_WHERE = """service_day BETWEEN $1 AND $2 AND ($3::text IS NULL OR district = $3)
    AND ($4::text IS NULL OR domain = $4) AND ($5::uuid IS NULL OR benefit_id = $5)"""


async def refresh_rollups(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT refresh_stats()")


async def refreshed_at(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT rollups_at, reach_at FROM stats_refreshed WHERE one")


async def daily(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT service_day, district, domain, benefit_id, kind, events, companions, priority
              FROM stats_daily WHERE {_WHERE}""",
        day_from, day_to, district, domain, benefit_id,
    )


async def daily_by_category(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT category, sum(events)::bigint AS events FROM stats_daily_category WHERE {_WHERE} GROUP BY category ORDER BY category",
        day_from, day_to, district, domain, benefit_id,
    )


async def refusals(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT reason, sum(events)::bigint AS events FROM stats_refusals_daily WHERE {_WHERE} GROUP BY reason ORDER BY reason",
        day_from, day_to, district, domain, benefit_id,
    )


async def offline_outcomes(
    conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id
) -> list[asyncpg.Record]:
    """Uploaded offline decisions (migration 0049) per outcome and reason, by the decision's service day."""
    return await conn.fetch(
        """
        SELECT o.outcome, o.reason, count(*)::bigint AS n
          FROM offline_scans o JOIN venues v ON v.id = o.venue_id
         WHERE o.service_day BETWEEN $1 AND $2
           AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
           AND ($5::uuid IS NULL OR o.benefit_id = $5)
         GROUP BY 1, 2 ORDER BY 1, 2
        """,
        day_from, day_to, district, domain, benefit_id,
    )


async def people_used(
    conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id
) -> list[asyncpg.Record]:
    """Distinct holders per benefit with a redemption in the window at a venue in scope, and over
    all benefits (benefit_id NULL)."""
    return await conn.fetch(
        """
        SELECT r.benefit_id, count(DISTINCT r.person_id)::bigint AS used
          FROM redemptions r JOIN venues v ON v.id = r.venue_id
         WHERE r.kind = 'redemption' AND r.service_day BETWEEN $1 AND $2
           AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
           AND ($5::uuid IS NULL OR r.benefit_id = $5)
         GROUP BY GROUPING SETS ((r.benefit_id), ())
        """,
        day_from, day_to, district, domain, benefit_id,
    )


async def reach(conn: asyncpg.Connection, *, district) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT benefit_id, sum(eligible)::bigint AS eligible FROM stats_reach"
        " WHERE ($1::text IS NULL OR district = $1) GROUP BY benefit_id",
        district,
    )


async def replace_reach(conn: asyncpg.Connection, rows: list[tuple[UUID, str, int]]) -> None:
    """The whole reach table at once (the caller's transaction)."""
    await conn.execute("DELETE FROM stats_reach")
    await conn.copy_records_to_table("stats_reach", records=rows, columns=("benefit_id", "district", "eligible"))
    await conn.execute(
        "INSERT INTO stats_refreshed (one, reach_at) VALUES (true, now())"
        " ON CONFLICT (one) DO UPDATE SET reach_at = excluded.reach_at"
    )


async def active_venues(conn: asyncpg.Connection, *, district, domain) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM venues WHERE status = 'active' AND ($1::text IS NULL OR district = $1)"
        " AND ($2::text IS NULL OR domain = $2)",
        district, domain,
    )


async def active_devices(conn: asyncpg.Connection, *, district, domain) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM devices d JOIN venues v ON v.id = d.venue_id WHERE d.status = 'active'"
        " AND v.status = 'active' AND ($1::text IS NULL OR v.district = $1) AND ($2::text IS NULL OR v.domain = $2)",
        district, domain,
    )


async def rating_totals(
    conn: asyncpg.Connection, *, start: datetime, end: datetime, district, domain, benefit_id, low_stars: int
) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        SELECT count(*)::bigint AS n, avg(g.stars)::float AS average,
               count(*) FILTER (WHERE g.stars <= $6)::bigint AS low
          FROM ratings g JOIN venues v ON v.id = g.venue_id JOIN redemptions r ON r.id = g.redemption_id
         WHERE g.created_at >= $1 AND g.created_at < $2
           AND ($3::text IS NULL OR v.district = $3) AND ($4::text IS NULL OR v.domain = $4)
           AND ($5::uuid IS NULL OR r.benefit_id = $5)
        """,
        start, end, district, domain, benefit_id, low_stars,
    )


async def case_counts(conn: asyncpg.Connection, *, district) -> list[asyncpg.Record]:
    """Open and overdue 差评 cases now, per district (the venue's)."""
    return await conn.fetch(
        """
        SELECT coalesce(district, '') AS district, count(*)::bigint AS open,
               count(*) FILTER (WHERE due_at < now())::bigint AS overdue
          FROM rating_cases WHERE status = 'open' AND ($1::text IS NULL OR district = $1)
         GROUP BY 1 ORDER BY 1
        """,
        district,
    )
