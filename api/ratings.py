"""好差评 over HTTP: a veteran's own redemption history and ratings, and the admins' ratings queue.

Guards say which kind of caller may enter; whose events and which district's cases they reach is
decided in `benefits.ratings` (another's object answers 404).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import Conn, CurrentPrincipal
from api.guards import requires_admin, requires_admin_role, requires_veteran
from api.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from benefits import ratings
from benefits.ratings import CaseReply, CaseStatus, MyRedemption, Rating, RatingCase, RatingCreate

__all__ = ("AdminRatingController", "MyRedemptionController")

Status = Annotated[
    CaseStatus, QueryParameter(description="open: the queue, oldest first; closed: latest answered first")
]


class MyRedemptionController(Controller):
    path = "/v1/me/redemptions"
    tags = ["veteran"]
    guards = [requires_veteran]

    @get(
        "", operation_id="ListMyRedemptions",
        summary="My redemptions and reversals, newest first, with my ratings (paged)",
    )
    async def list_mine(
        self, conn: Conn, principal: CurrentPrincipal,
        limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    ) -> Page[MyRedemption]:
        return await ratings.list_my_redemptions(conn, principal.subject, limit=limit, cursor=cursor)

    @get(
        "/{redemption_id:uuid}", operation_id="GetMyRedemption",
        summary="One of my redemptions (another's answers 404)",
    )
    async def get_mine(
        self, redemption_id: FromPath[UUID], conn: Conn,
        principal: CurrentPrincipal,
    ) -> MyRedemption:
        return await ratings.get_my_redemption(conn, principal.subject, redemption_id)

    @post(
        "/{redemption_id:uuid}/rating", operation_id="RateMyRedemption", status_code=HTTP_201_CREATED,
        summary="好差评 of one of my visits: once; 1-2 stars opens a case for the venue's district",
        description="409 already-rated on a second rating, 409 not-rateable for a reversal row, 404 for an "
        "event that is not mine.",
    )
    async def rate(
        self, redemption_id: FromPath[UUID], data: JSONBody[RatingCreate],
        conn: Conn, principal: CurrentPrincipal,
    ) -> Rating:
        return await ratings.rate_redemption(conn, principal.subject, redemption_id, data)


class AdminRatingController(Controller):
    """Every admin role reads the queue (district admins their district's); auditors never answer."""

    path = "/v1/admin/ratings"
    tags = ["admin"]
    guards = [requires_admin]

    @get(
        "", operation_id="AdminListRatingCases",
        summary="差评 cases in the admin's scope (paged; no personal data)",
    )
    async def list_cases(
        self, conn: Conn, principal: CurrentPrincipal,
        status: Status = "open", limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    ) -> Page[RatingCase]:
        return await ratings.list_cases(conn, principal, status=status, limit=limit, cursor=cursor)

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
