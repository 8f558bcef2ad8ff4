"""第二十三条 operating statistics over HTTP: `GET /v1/admin/stats` (JSON, or CSV by Accept).

Every admin role reads; a district admin's figures are their district's (`benefits.stats`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Litestar, Request, Response, get
from litestar.params import QueryParameter

from api.deps import CurrentPrincipal, ReadConn
from api.guards import AdminRoutes
from api.lifespan import in_background
from api.paging import District
from api.spreadsheets import CSV, csv_document
from benefits import catalog, stats
from benefits.stats import StatsQuery, StatsReport

__all__ = ("AdminStatsController", "stats_refresher")

log = logging.getLogger("chongjun.stats")
STATS_REFRESH_SECONDS = 300
"""How often a worker refreshes the daily rollups (the reach is the CLI's: `chongjun stats refresh`)."""

_COLUMNS = ["section", "key", "redemptions", "reversals", "count", "eligible", "used", "share"]


def _rows(report: StatsReport) -> list[dict[str, Any]]:
    t = report.totals
    rows: list[dict[str, Any]] = [
        {"section": "totals", "key": "all", "redemptions": t.redemptions, "reversals": t.reversals, "count": t.people,
         "share": t.priority_share},
        {"section": "companions", "key": "all", "count": t.companions},
        {"section": "priority", "key": "all", "count": t.priority, "share": t.priority_share},
    ]
    rows += [{"section": "day", "key": d.day.isoformat(), "redemptions": d.redemptions, "reversals": d.reversals} for d in report.by_day]
    rows += [{"section": "district", "key": k.key, "redemptions": k.redemptions, "reversals": k.reversals} for k in report.by_district]
    rows += [{"section": "domain", "key": k.key, "redemptions": k.redemptions, "reversals": k.reversals} for k in report.by_domain]
    rows += [{"section": "category", "key": k.key, "redemptions": k.redemptions} for k in report.by_category]
    rows += [{"section": "benefit", "key": b.code, "redemptions": b.redemptions, "reversals": b.reversals,
              "eligible": b.eligible, "used": b.used, "share": b.reach_share} for b in report.by_benefit]
    rows += [{"section": "refusal", "key": r.reason, "count": r.count} for r in report.refusals]
    rows += [{"section": "venues_active", "key": "all", "count": report.venues_active},
             {"section": "devices_active", "key": "all", "count": report.devices_active}]
    r = report.ratings
    rows += [{"section": "ratings", "key": "all", "count": r.count, "share": r.low_share},
             {"section": "ratings_average", "key": "all", "share": r.average}]
    rows += [{"section": "cases", "key": c.district or "none", "count": c.open, "used": c.overdue} for c in r.by_district]
    return rows


class AdminStatsController(AdminRoutes):
    path = "/v1/admin/stats"

    @get(
        "", operation_id="AdminStats",
        summary="第二十三条 operating statistics (district admins: their district; CSV with Accept: text/csv)",
        description="Window `from`..`to` (inclusive service days; default the last 30 days). Ledger figures come "
        "from rollups refreshed every few minutes (`as_of`); reach from the last `chongjun stats refresh`.",
    )
    async def stats(
        self, request: Request, read_conn: ReadConn, principal: CurrentPrincipal,
        date_from: Annotated[date | None, QueryParameter(name="from", description="First service day (Asia/Shanghai)")] = None,
        date_to: Annotated[date | None, QueryParameter(name="to", description="Last service day, inclusive")] = None,
        district: District = None,
        domain: Annotated[str | None, QueryParameter(pattern="^(culture|tourism|transit|other)$")] = None,
        benefit: Annotated[UUID | None, QueryParameter(description="One benefit's id")] = None,
    ) -> Response[StatsReport]:
        start, end = stats.stats_window(date_from, date_to, today=datetime.now(catalog.SHANGHAI).date())
        query = StatsQuery(date_from=start, date_to=end, district=district, domain=domain, benefit_id=benefit)
        report = await stats.operating_stats(read_conn, principal, query)
        if request.accept.best_match(["application/json", "text/csv"], default="application/json") == "text/csv":
            return Response(csv_document(_rows(report), _COLUMNS), media_type=CSV)
        return Response(report)


async def _refresh_regularly(app: Litestar) -> None:
    while True:
        await asyncio.sleep(STATS_REFRESH_SECONDS)
        try:
            async with app.state.pool.acquire() as conn, conn.transaction():
                await stats.refresh_stats(conn, reach=False)
        except Exception as exc:  # keep serving; the next round tries again
            log.warning("stats refresh failed: %s", type(exc).__name__)


@asynccontextmanager
async def stats_refresher(app: Litestar) -> AsyncIterator[None]:
    async with in_background(_refresh_regularly(app)):
        yield
