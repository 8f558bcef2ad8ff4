"""Operating statistics for the bureau (第二十三条): what was used, where, by whom, what was refused,
and how 好差评 are handled.

- Everything counted comes from rollups (materialized views of migrations 0046 and 0048,
  refreshed concurrently by `refresh_stats`: `as_of` says when), so a year of a city's ledger
  is read as a few thousand rows: events per day, refusals, ratings per day and stars, and the
  distinct holders of any window, exactly, from `stats_holders` (each visit with the day of the
  same person's previous one in the same scope). Open cases, venues and devices are live.
- 免申即享 reach: `refresh_stats` evaluates every active benefit's rule for every person of the
  roster and stores the eligible counts per benefit and residence district
  (`reach_computed_at`); `used` is the holders with a redemption in the window.
- Scope: a district admin's statistics are their district's (the venue's district for the
  ledger, the person's residence for reach), whatever district they ask for; city admins and
  auditors see the city or the district they name.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from uuid import UUID

import asyncpg

import identity
from benefits import catalog
from benefits.ratings import LOW_STARS
from benefits.stats import db
from benefits.stats.types import (
    BenefitStats,
    CaseCounts,
    DayCount,
    KeyCount,
    LedgerTotals,
    OfflineStats,
    RatingStats,
    ReasonCount,
    RefreshResult,
    StatsQuery,
    StatsReport,
)
from foundation.errors import Forbidden, Invalid

__all__ = ("MAX_WINDOW_DAYS", "StatsWindowInvalid", "operating_stats", "refresh_stats", "stats_scope", "stats_window")

MAX_WINDOW_DAYS = 366 * 3


class StatsWindowInvalid(Invalid):
    type = "stats-window-invalid"
    title = "The statistics window is not valid"


def stats_scope(caller: identity.Principal, district: str | None) -> str | None:
    """The district the caller's statistics cover (None: the city)."""
    if caller.kind != "admin" or caller.role not in ("city", "district", "auditor"):
        raise Forbidden("Statistics are for admins")
    if caller.role == "district":
        if not caller.district:
            raise Forbidden("A district admin without a district sees no statistics")
        return caller.district
    return district


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
DEFAULT_WINDOW_DAYS = 30


def stats_window(date_from: date | None, date_to: date | None, *, today: date) -> tuple[date, date]:
    """The window asked for: `to` defaults to today, `from` to 30 days before `to`; both within
    2000-2099, `from` not after `to`, at most MAX_WINDOW_DAYS (else StatsWindowInvalid)."""
    end = date_to or min(max(today, FIRST_DAY), LAST_DAY)
    if not FIRST_DAY <= end <= LAST_DAY or (date_from is not None and not FIRST_DAY <= date_from <= LAST_DAY):
        raise StatsWindowInvalid("Dates are service days of 2000-2099")
    start = date_from or max(FIRST_DAY, end - timedelta(days=DEFAULT_WINDOW_DAYS - 1))
    if end < start or (end - start).days >= MAX_WINDOW_DAYS:
        raise StatsWindowInvalid(f"`from` must not be after `to`, and the window at most {MAX_WINDOW_DAYS} days")
    return start, end


async def operating_stats(conn: asyncpg.Connection, caller: identity.Principal, query: StatsQuery) -> StatsReport:
    stats_window(query.date_from, query.date_to, today=query.date_to)
    district = stats_scope(caller, query.district)
    query = StatsQuery(date_from=query.date_from, date_to=query.date_to, district=district, domain=query.domain,
                       benefit_id=query.benefit_id)
    window = {"day_from": query.date_from, "day_to": query.date_to, "district": district, "domain": query.domain,
              "benefit_id": query.benefit_id}
    by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    by_district: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_domain: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_benefit: dict[UUID, list[int]] = defaultdict(lambda: [0, 0])
    companions = priority = 0
    for row in await db.daily(conn, **window):  # one row per kind and day, district, domain or benefit
        slot = 0 if row["kind"] == "redemption" else 1
        for table, column in ((by_day, "service_day"), (by_district, "district"), (by_domain, "domain"),
                              (by_benefit, "benefit_id")):
            if row[column] is not None:
                table[row[column]][slot] += row["events"]
        if slot == 0 and row["service_day"] is not None:
            companions += row["companions"]
            priority += row["priority"]
    redemptions = sum(v[0] for v in by_day.values())
    reversals = sum(v[1] for v in by_day.values())
    used = await db.people_used(conn, **window)
    eligible = {row["benefit_id"]: row["eligible"] for row in await db.reach(conn, district=district)}
    refreshed = await db.refreshed_at(conn)
    names = {v.benefit_id: v for v in await catalog.list_active_benefits(conn)}
    for benefit_id in (set(by_benefit) | set(eligible)) - set(names):  # paused or retired since
        version = await catalog.get_benefit(conn, benefit_id)
        if version is not None:
            names[benefit_id] = version
    benefits = []
    for benefit_id, version in sorted(names.items(), key=lambda kv: kv[1].code):
        if query.benefit_id is not None and benefit_id != query.benefit_id:
            continue
        if query.domain is not None and version.domain != query.domain and benefit_id not in by_benefit:
            continue
        counts = by_benefit.get(benefit_id, [0, 0])
        people = used.get(benefit_id, 0)
        benefits.append(BenefitStats(
            benefit_id=benefit_id, code=version.code, name_zh=version.name_zh, redemptions=counts[0], reversals=counts[1],
            eligible=eligible.get(benefit_id), used=people, reach_share=_share(people, eligible.get(benefit_id)),
        ))
    rated = await db.rating_totals(conn, low_stars=LOW_STARS, **window)
    cases = [CaseCounts(district=r["district"], open=r["open"], overdue=r["overdue"]) for r in await db.case_counts(conn, district=district)]
    offline = await db.offline_outcomes(conn, **window)
    return StatsReport(
        query=query,
        as_of=refreshed["rollups_at"] if refreshed else None,
        reach_computed_at=refreshed["reach_at"] if refreshed else None,
        totals=LedgerTotals(
            redemptions=redemptions, reversals=reversals, net=redemptions - reversals, companions=companions,
            priority=priority, priority_share=_share(priority, redemptions), people=used.get(None, 0),
        ),
        by_day=[DayCount(day=d, redemptions=v[0], reversals=v[1]) for d, v in sorted(by_day.items())],
        by_district=[KeyCount(key=k, redemptions=v[0], reversals=v[1]) for k, v in sorted(by_district.items())],
        by_domain=[KeyCount(key=k, redemptions=v[0], reversals=v[1]) for k, v in sorted(by_domain.items())],
        by_benefit=benefits,
        by_category=[KeyCount(key=r["category"], redemptions=r["events"]) for r in await db.daily_by_category(conn, **window)],
        refusals=[ReasonCount(reason=r["reason"], count=r["events"]) for r in await db.refusals(conn, **window)],
        venues_active=await db.active_venues(conn, district=district, domain=query.domain),
        devices_active=await db.active_devices(conn, district=district, domain=query.domain),
        ratings=RatingStats(
            count=rated["n"], average=round(rated["average"], 3) if rated["average"] is not None else None,
            low=rated["low"], low_share=_share(rated["low"], rated["n"]),
            open_cases=sum(c.open for c in cases), overdue_cases=sum(c.overdue for c in cases), by_district=cases,
        ),
        offline=OfflineStats(
            recorded=sum(r["n"] for r in offline if r["outcome"] == "recorded"),
            conflicts=sum(r["n"] for r in offline if r["outcome"] == "conflict"),
            rejected=sum(r["n"] for r in offline if r["outcome"] == "rejected"),
            conflict_reasons=[ReasonCount(reason=r["reason"], count=r["n"]) for r in offline if r["outcome"] == "conflict"],
            rejected_reasons=[ReasonCount(reason=r["reason"], count=r["n"]) for r in offline if r["outcome"] == "rejected"],
        ),
    )


async def refresh_stats(conn: asyncpg.Connection, *, reach: bool = True, now: datetime | None = None) -> RefreshResult:
    """Refresh the daily rollups (concurrently: readers are never blocked) and, with `reach`,
    recompute who is eligible for each active benefit now. One refresher at a time."""
    started = time.perf_counter()
    at = await db.refresh_rollups(conn)
    rollup_seconds = time.perf_counter() - started
    people = 0
    reach_seconds = 0.0
    if reach:
        started = time.perf_counter()
        moment = now or datetime.now(timezone.utc)
        versions = await catalog.list_active_benefits(conn)
        counts: dict[tuple[UUID, str], int] = defaultdict(int)
        async for person in identity.iter_people(conn):
            people += 1
            for version in versions:
                if catalog.evaluate(version, person, moment).eligible:
                    counts[(version.benefit_id, person.district or "")] += 1
        async with conn.transaction():
            await db.replace_reach(conn, [(b, d, n) for (b, d), n in counts.items()])
        reach_seconds = time.perf_counter() - started
    return RefreshResult(refreshed_at=at, rollup_seconds=round(rollup_seconds, 3), reach_seconds=round(reach_seconds, 3), people=people)
