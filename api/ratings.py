"""好差评 over HTTP: a veteran's own redemption history and ratings, and the admins' ratings queue.

Guards say which kind of caller may enter; whose events and which district's cases they reach is
decided in `benefits.ratings` (another's object answers 404).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from litestar import Litestar, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from prometheus_client import Gauge

from api.deps import AppSettings, Conn, CurrentPrincipal, ReadConn
from api.guards import AdminRoutes, MerchantRoutes, VeteranRoutes, requires_admin_role
from api.lifespan import in_background
from api.paging import Page, Paging
from benefits import ratings
from benefits.ratings import CaseReply, CaseStatus, MerchantRating, MyRedemption, Rating, RatingCase, RatingCreate

__all__ = ("AdminRatingController", "MerchantRatingController", "MyRedemptionController", "overdue_gauge", "sample_overdue")

log = logging.getLogger("chongjun.ratings")
# One value per district, the same in every worker: "livemax" shows it once however many run.
_overdue = Gauge(
    "chongjun_rating_cases_overdue", "Open 差评 cases past their due time", ["district"], multiprocess_mode="livemax"
)
OVERDUE_SAMPLE_SECONDS = 30.0

Status = Annotated[
    CaseStatus, QueryParameter(description="open: the queue, oldest first; closed: latest answered first")
]


class MyRedemptionController(VeteranRoutes):
    path = "/v1/me/redemptions"

    @get(
        "", operation_id="ListMyRedemptions",
        summary="My redemptions and reversals, newest first, with my ratings (paged)",
    )
    async def list_mine(self, read_conn: ReadConn, principal: CurrentPrincipal, paging: Paging) -> Page[MyRedemption]:
        return await ratings.list_my_redemptions(read_conn, principal.subject, limit=paging.limit, cursor=paging.cursor)

    @get(
        "/{redemption_id:uuid}", operation_id="GetMyRedemption",
        summary="One of my redemptions (another's answers 404)",
    )
    async def get_mine(
        self, redemption_id: FromPath[UUID], read_conn: ReadConn,
        principal: CurrentPrincipal,
    ) -> MyRedemption:
        return await ratings.get_my_redemption(read_conn, principal.subject, redemption_id)

    @post(
        "/{redemption_id:uuid}/rating", operation_id="RateMyRedemption", status_code=HTTP_201_CREATED,
        summary="好差评 of one of my visits: once; 1-2 stars opens a case for the venue's district",
        description="409 already-rated on a second rating, 409 not-rateable for a reversal row, 404 for an "
        "event that is not mine.",
    )
    async def rate(
        self, redemption_id: FromPath[UUID], data: JSONBody[RatingCreate],
        conn: Conn, principal: CurrentPrincipal, settings: AppSettings,
    ) -> Rating:
        return await ratings.rate_redemption(
            conn, principal.subject, redemption_id, data, due_hours=settings.rating_case_due_hours
        )


class AdminRatingController(AdminRoutes):
    """Every admin role reads the queue (district admins their district's); auditors never answer."""

    path = "/v1/admin/ratings"

    @get("", operation_id="AdminListRatingCases", summary="差评 cases in the admin's scope (paged; no personal data)")
    async def list_cases(
        self, conn: Conn, principal: CurrentPrincipal, *, status: Status = "open", paging: Paging,
        overdue: Annotated[bool | None, QueryParameter(description="true: open cases past due (escalated to the city)")] = None,
    ) -> Page[RatingCase]:
        return await ratings.list_cases(conn, principal, status=status, limit=paging.limit, cursor=paging.cursor, overdue=overdue)

    @post(
        "/{case_id:uuid}/reply", operation_id="AdminAnswerRatingCase", status_code=HTTP_200_OK,
        guards=[requires_admin_role("city", "district")],
        summary="Answer a 差评 case, which closes it (409 rating-case-closed if it was answered)",
    )
    async def reply(
        self, case_id: FromPath[UUID], data: JSONBody[CaseReply], conn: Conn,
        principal: CurrentPrincipal,
    ) -> RatingCase:
        return await ratings.answer_case(conn, principal, case_id, data.reply)


class MerchantRatingController(MerchantRoutes):
    path = "/v1/merchant/ratings"

    @get(
        "", operation_id="MerchantListRatings",
        summary="Ratings of my merchant's venues, newest first, with the handling of 差评 (paged; no person)",
    )
    async def list_ratings(
        self, conn: Conn, principal: CurrentPrincipal, *, venue_id: FromQuery[UUID | None] = None, paging: Paging,
    ) -> Page[MerchantRating]:
        return await ratings.list_merchant_ratings(conn, principal, venue_id=venue_id, limit=paging.limit, cursor=paging.cursor)


async def sample_overdue(conn) -> None:
    """Set `chongjun_rating_cases_overdue{district}` from PostgreSQL now."""
    counts = await ratings.overdue_cases(conn)
    _overdue.clear()
    for district, count in counts.items():
        _overdue.labels(district=district or "none").set(count)


async def _sample_overdue(app: Litestar) -> None:
    while True:
        try:
            async with app.state.pool.acquire() as conn:
                await sample_overdue(conn)
        except Exception as exc:  # keep serving; the next sample tries again
            log.warning("overdue sample failed: %s", type(exc).__name__)
        await asyncio.sleep(OVERDUE_SAMPLE_SECONDS)


@asynccontextmanager
async def overdue_gauge(app: Litestar) -> AsyncIterator[None]:
    """`chongjun_rating_cases_overdue{district}` in /metrics, sampled every 30 s."""
    async with in_background(_sample_overdue(app)):
        yield
