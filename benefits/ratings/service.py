"""Rules of 好差评: a holder reads and rates only their own visits; admins answer 差评 in scope.

Scope, decided here:
- a veteran sees only the ledger events whose `person_id` is theirs; another's event and an
  unknown id get the same 404, so ids cannot be probed;
- only a visit (`kind = redemption`) is rated, once (the UNIQUE key on `redemption_id` decides
  races); a visit that its venue reversed may still be rated (the holder may well complain
  about it); a reversal row itself answers 409 `not-rateable`;
- a rating of `LOW_STARS` or fewer opens a case for the venue's district in the same transaction;
- city admins and auditors see every case, a district admin only their district's; city admins
  and district admins (their district only) answer a case, which closes it; another district's
  case answers 404 like an unknown one.
"""

from __future__ import annotations

import uuid
from hashlib import sha256
from uuid import UUID

import asyncpg

from foundation.audit import write_audit
from foundation.outbox import write_event
from benefits.ratings import db
from benefits.ratings.errors import (
    AlreadyRated,
    CaseAlreadyClosed,
    CaseNotFound,
    EmptyReply,
    NotRateable,
    RedemptionNotFound,
)
from benefits.ratings.types import (
    LOW_STARS,
    BenefitBrief,
    CaseStatus,
    MerchantRating,
    MyRedemption,
    Rating,
    RatingCase,
    RatingCreate,
    VenueBrief,
)
from foundation.errors import Forbidden
from foundation.paging import Page, decode_cursor, fetch_size, page_of
from identity import ADMIN_ROLES, Principal

__all__ = (
    "DEFAULT_DUE_HOURS", "answer_case", "get_my_redemption", "list_cases", "list_merchant_ratings", "list_my_redemptions",
    "overdue_cases", "rate_redemption",
)


def _rating(row: asyncpg.Record) -> Rating | None:
    if row["rating_id"] is None:
        return None
    return Rating(
        redemption_id=row["id"], stars=row["stars"], comment=row["comment"], at=row["rated_at"],
        case_status=row["case_status"], reply=row["reply"], replied_at=row["closed_at"],
    )


def _event(row: asyncpg.Record) -> MyRedemption:
    return MyRedemption(
        id=row["id"], kind=row["kind"], at=row["at"], service_day=row["service_day"],
        benefit=BenefitBrief(id=row["benefit_id"], code=row["benefit_code"], name_zh=row["benefit_name_zh"]),
        venue=VenueBrief(id=row["venue_id"], name_zh=row["venue_name_zh"]),
        companions=row["companions"], reversed=row["reversed"], reverses=row["reverses"], rating=_rating(row),
    )


def _case(row: asyncpg.Record) -> RatingCase:
    return RatingCase(
        id=row["id"], status=row["status"], district=row["district"], stars=row["stars"],
        comment=row["comment"], at=row["rated_at"], redemption_id=row["redemption_id"],
        service_day=row["service_day"], benefit_code=row["benefit_code"],
        venue=VenueBrief(id=row["venue_id"], name_zh=row["venue_name_zh"]), merchant_id=row["merchant_id"],
        reply=row["reply"], replied_by=row["replied_by"], closed_at=row["closed_at"],
        due_at=row["due_at"], overdue=row["overdue"],
    )


# --- the holder ----------------------------------------------------------------------------------


async def list_my_redemptions(
    conn: asyncpg.Connection, person_id: UUID, *, limit: int, cursor: str | None
) -> Page[MyRedemption]:
    """The person's own ledger events, newest first, with their ratings."""
    rows = await db.list_person_events(conn, person_id, before=decode_cursor(cursor), limit=fetch_size(limit))
    return page_of(rows, limit, _event, sort_key="at")


async def get_my_redemption(conn: asyncpg.Connection, person_id: UUID, redemption_id: UUID) -> MyRedemption:
    row = await db.get_person_event(conn, person_id, redemption_id)
    if row is None:
        raise RedemptionNotFound()
    return _event(row)


DEFAULT_DUE_HOURS = 5 * 24
"""How long a 差评 case may stay open (CHONGJUN_RATING_CASE_DUE_HOURS overrides it)."""


async def rate_redemption(
    conn: asyncpg.Connection, person_id: UUID, redemption_id: UUID, data: RatingCreate, *,
    due_hours: int = DEFAULT_DUE_HOURS,
) -> Rating:
    """Rate one of the person's own visits; a 差评 opens a case in the same transaction."""
    comment = (data.comment or "").strip() or None
    async with conn.transaction():
        event = await db.get_person_event(conn, person_id, redemption_id)
        if event is None:
            raise RedemptionNotFound()
        if event["kind"] != "redemption":
            raise NotRateable()
        rating = await db.insert_rating(
            conn, rating_id=uuid.uuid4(), redemption_id=redemption_id, person_id=person_id,
            venue_id=event["venue_id"], merchant_id=event["merchant_id"], stars=data.stars, comment=comment,
        )
        if rating is None:
            raise AlreadyRated()
        case_status: CaseStatus | None = None
        if data.stars <= LOW_STARS:
            await db.insert_case(
                conn, case_id=uuid.uuid4(), rating_id=rating["id"], district=event["district"], due_hours=due_hours,
            )
            case_status = "open"
        # Issue 13: the data center hears of it; free text (the comment) never leaves.
        await write_event(
            conn, "rating.created",
            {"rating_id": rating["id"], "redemption_id": redemption_id, "venue_id": event["venue_id"],
             "merchant_id": event["merchant_id"], "stars": data.stars, "has_comment": comment is not None,
             "case_opened": case_status == "open"},
            subject=person_id,
        )
    return Rating(
        redemption_id=redemption_id, stars=data.stars, comment=comment, at=rating["created_at"],
        case_status=case_status,
    )


# --- admins --------------------------------------------------------------------------------------


def _district_of(caller: Principal) -> str | None:
    """The district an admin is confined to; None for city admins and (city-wide) auditors."""
    if caller.kind != "admin" or caller.role not in ADMIN_ROLES:
        raise Forbidden("The ratings queue is for admins")
    if caller.role != "district":
        return None
    if not caller.district:
        raise Forbidden("A district admin without a district sees no cases")
    return caller.district


async def list_cases(
    conn: asyncpg.Connection, caller: Principal, *, status: CaseStatus, limit: int, cursor: str | None,
    overdue: bool | None = None,
) -> Page[RatingCase]:
    """Open cases oldest first (the queue), closed ones most recently answered first; `overdue`
    True: only open cases past their due time (the city's escalation queue), False: only others."""
    district, after = _district_of(caller), decode_cursor(cursor)
    rows = await db.list_cases(
        conn, status=status, district=district, after=after, limit=fetch_size(limit), overdue=overdue
    )
    return page_of(rows, limit, _case, sort_key="sort_at")


async def answer_case(conn: asyncpg.Connection, caller: Principal, case_id: UUID, reply: str) -> RatingCase:
    """Store the reply and close the case (city admins; district admins in their district)."""
    district = _district_of(caller)
    if caller.role == "auditor":
        raise Forbidden("Auditors read the ratings queue; they do not answer cases")
    text = reply.strip()
    if not text:
        raise EmptyReply()
    async with conn.transaction():
        if not await db.close_case(conn, case_id, reply=text, replied_by=caller.subject, district=district):
            row = await db.get_case(conn, case_id)
            if row is None or (district is not None and row["district"] != district):
                raise CaseNotFound()
            raise CaseAlreadyClosed()
        case = _case(await db.get_case(conn, case_id))
        await write_audit(
            conn, actor_kind=caller.kind, actor_id=str(caller.subject), actor_role=caller.role,
            actor_district=caller.district, action="rating_case.reply",
            object_kind="rating_case", object_id=str(case.id), district=case.district,
            # The reply is free text that may name people: the archive keeps its length and digest.
            detail={"redemption_id": str(case.redemption_id), "stars": case.stars, "reply_chars": len(text),
                    "reply_sha256": sha256(text.encode()).hexdigest()},
        )
        await write_event(
            conn, "rating_case.replied",
            {"case_id": case.id, "redemption_id": case.redemption_id, "district": case.district,
             "stars": case.stars, "replied_by_kind": caller.kind},
        )
    return case


# --- merchants -----------------------------------------------------------------------------------


async def list_merchant_ratings(
    conn: asyncpg.Connection, caller: Principal, *, venue_id: UUID | None, limit: int, cursor: str | None
) -> Page[MerchantRating]:
    """Staff read the ratings of their own merchant's venues, newest first (another merchant's
    venue_id simply matches nothing)."""
    if caller.kind != "staff" or caller.merchant_id is None:
        raise Forbidden("Ratings of a venue are for its merchant's staff")
    rows = await db.merchant_ratings(
        conn, merchant_id=caller.merchant_id, venue_id=venue_id, before=decode_cursor(cursor), limit=fetch_size(limit)
    )
    return page_of(rows, limit, _merchant_rating, sort_key="at")


def _merchant_rating(row: asyncpg.Record) -> MerchantRating:
    return MerchantRating(
        id=row["id"], redemption_id=row["redemption_id"], venue=VenueBrief(id=row["venue_id"], name_zh=row["venue_name_zh"]),
        stars=row["stars"], comment=row["comment"], at=row["at"], case_status=row["case_status"], due_at=row["due_at"],
        overdue=bool(row["overdue"]), reply=row["reply"],
    )


async def overdue_cases(conn: asyncpg.Connection) -> dict[str, int]:
    """Open cases past due, per district ("" for a venue without one): for /metrics and stats."""
    return {row["district"]: row["overdue"] for row in await db.overdue_by_district(conn)}
