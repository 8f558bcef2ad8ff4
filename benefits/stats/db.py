"""SQL of the operating statistics: the rollups (migrations 0046, 0048) and a few live counts.

No query here reads the ledger itself: a year of a city's ledger is a few thousand rollup rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import UUID

import asyncpg

__all__ = (
    "active_devices", "active_venues", "case_counts", "daily", "daily_by_category", "offline_outcomes", "people_used",
    "rating_totals",
    "reach", "refresh_rollups", "refusals", "refreshed_at", "replace_reach",
)

# Every rollup query narrows by the same optional filters: $3 district, $4 domain, $5 benefit.
_FILTERS = """($3::text IS NULL OR district = $3) AND ($4::text IS NULL OR domain = $4)
    AND ($5::uuid IS NULL OR benefit_id = $5)"""


def _span(day_from: date, day_to: date) -> tuple[date, date]:
    """[start, end) of the whole months inside the window (start == end == day_from when none)."""
    start = day_from if day_from.day == 1 else _next_month(day_from)
    after = day_to + timedelta(days=1)
    end = after if after.day == 1 else day_to.replace(day=1)
    return (start, end) if start < end else (day_from, day_from)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _months_and_days(tables: tuple[str, str], columns: str) -> str:
    """`columns` of the window's whole months from the month rollup of `tables` (daily, monthly)
    and of its ragged ends from the daily one: $1..$2 the window, $6..$7 its whole months [start, end)."""
    daily, monthly = tables
    return f"""SELECT {columns} FROM {monthly} WHERE month >= $6 AND month < $7 AND {_FILTERS}
        UNION ALL
        SELECT {columns} FROM {daily}
         WHERE ((service_day >= $1 AND service_day < $6) OR (service_day >= $7 AND service_day <= $2)) AND {_FILTERS}"""


_EVENTS = ("stats_daily", "stats_monthly")
_CATEGORIES = ("stats_daily_category", "stats_category_monthly")
_REFUSALS = ("stats_refusals_daily", "stats_refusals_monthly")


async def refresh_rollups(conn: asyncpg.Connection) -> datetime:
    return await conn.fetchval("SELECT refresh_stats()")


async def refreshed_at(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT rollups_at, reach_at FROM stats_refreshed WHERE one")


async def daily(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    """Ledger events of the window per kind and by day, district, domain and benefit: each row has
    one of service_day, district, domain, benefit_id set (the one it is grouped by)."""
    filters = (district, domain, benefit_id)
    if domain is None and benefit_id is None:  # the city's or a district's days, ready made
        days = await conn.fetch(
            """SELECT service_day, NULL::text AS district, NULL::text AS domain, NULL::uuid AS benefit_id, kind,
                      events, companions, priority
                 FROM stats_days WHERE district = coalesce($3::text, '') AND service_day BETWEEN $1 AND $2""",
            day_from, day_to, district,
        )
    else:
        days = await conn.fetch(
            f"""SELECT service_day, NULL::text AS district, NULL::text AS domain, NULL::uuid AS benefit_id, kind,
                       sum(events)::bigint AS events, sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
                  FROM stats_daily WHERE service_day BETWEEN $1 AND $2 AND {_FILTERS} GROUP BY service_day, kind""",
            day_from, day_to, *filters,
        )
    places = await conn.fetch(
        f"""SELECT NULL::date AS service_day, district, domain, benefit_id, kind, sum(events)::bigint AS events,
                   sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
              FROM ({_months_and_days(_EVENTS, "district, domain, benefit_id, kind, events, companions, priority")}) x
             GROUP BY GROUPING SETS ((kind, district), (kind, domain), (kind, benefit_id))""",
        day_from, day_to, *filters, *_span(day_from, day_to),
    )
    return days + places


async def daily_by_category(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT category, sum(events)::bigint AS events FROM ({_months_and_days(_CATEGORIES, "category, events")}) x
             GROUP BY category ORDER BY category""",
        day_from, day_to, district, domain, benefit_id, *_span(day_from, day_to),
    )


async def refusals(conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT reason, sum(events)::bigint AS events FROM ({_months_and_days(_REFUSALS, "reason, events")}) x
             GROUP BY reason ORDER BY reason""",
        day_from, day_to, district, domain, benefit_id, *_span(day_from, day_to),
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
) -> dict[UUID | None, int]:
    """Distinct holders per benefit with a redemption in the window at a venue in scope, and over
    all benefits (key None), from stats_holders: a person's visit counts when it is their first
    in the window, i.e. their previous one in the same scope is before it (migration 0048)."""
    places = ("d" if district is not None else "") + ("m" if domain is not None else "")
    rows = await conn.fetch(
        """
        SELECT scope, benefit_id, sum(holders)::bigint AS used FROM stats_holders
         WHERE scope = ANY($6::text[]) AND day BETWEEN $1 AND $2 AND prev < $1
           AND ($3::text IS NULL OR district = $3) AND ($4::text IS NULL OR domain = $4)
           AND ($5::uuid IS NULL OR benefit_id = $5)
         GROUP BY 1, 2
        """,
        day_from, day_to, district, domain, benefit_id, ["b" + places] + ([places] if benefit_id is None else []),
    )
    used: dict[UUID | None, int] = {None: 0}
    for row in rows:
        used[None if row["scope"] == places else row["benefit_id"]] = row["used"]
    if benefit_id is not None:  # everyone counted is a holder of that one benefit
        used[None] = used.get(benefit_id, 0)
    return used


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
    conn: asyncpg.Connection, *, day_from: date, day_to: date, district, domain, benefit_id, low_stars: int
) -> asyncpg.Record:
    """Ratings given on the window's (Shanghai) days at venues in scope: count, average, 差评."""
    return await conn.fetchrow(
        """
        SELECT coalesce(sum(ratings), 0)::bigint AS n, sum(ratings * stars)::float / nullif(sum(ratings), 0) AS average,
               coalesce(sum(ratings) FILTER (WHERE stars <= $6), 0)::bigint AS low
          FROM stats_ratings_daily
         WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR district = $3) AND ($4::text IS NULL OR domain = $4)
           AND ($5::uuid IS NULL OR benefit_id = $5)
        """,
        day_from, day_to, district, domain, benefit_id, low_stars,
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
