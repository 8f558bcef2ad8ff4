"""Shapes of the holder's history, 好差评 and the admins' ratings queue.

Nothing here names a person: the holder sees their own events (the route knows who they are),
and an admin sees a case by its visit (venue, benefit, day), never by its rater.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Input, Record

__all__ = (
    "LOW_STARS",
    "BenefitBrief",
    "CaseReply",
    "CaseStatus",
    "MyRedemption",
    "Rating",
    "MerchantRating",
    "RatingCase",
    "RatingCreate",
    "VenueBrief",
)

CaseStatus = Literal["open", "closed"]

# Free text goes into PostgreSQL `text`, which cannot hold NUL: control characters other than
# tab and line breaks are refused at the edge rather than failing the INSERT.
_PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

Stars = Annotated[int, msgspec.Meta(ge=1, le=5, description="1-5; 1-2 is a 差评 (opens a case)", examples=[5])]
Comment = Annotated[str, msgspec.Meta(max_length=500, pattern=_PLAIN_TEXT, examples=["讲解员很耐心"])]
ReplyText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=1000, pattern=_PLAIN_TEXT, examples=["已约谈场馆，增设入口引导"])
]

LOW_STARS = 2
"""A rating of this many stars or fewer is a 差评: it opens a case that an admin must answer."""


class RatingCreate(Input):
    stars: Stars
    comment: Comment | None = None


class CaseReply(Input):
    reply: ReplyText


class BenefitBrief(Record):
    id: UUID
    code: str
    name_zh: str
    """As the version the ledger row applied named it."""


class VenueBrief(Record):
    id: UUID
    name_zh: str | None


class Rating(Record):
    """The holder's 好差评 of one visit, with the handling of its case when it is a 差评."""

    redemption_id: UUID
    stars: int
    comment: str | None
    at: datetime
    case_status: CaseStatus | None = None
    """None for a rating that opened no case (3-5 stars)."""
    reply: str | None = None
    replied_at: datetime | None = None


class MyRedemption(Record):
    """One event of the caller's own ledger: a visit, or a venue's reversal of one."""

    id: UUID
    kind: Literal["redemption", "reversal"]
    at: datetime
    service_day: date
    benefit: BenefitBrief
    venue: VenueBrief
    companions: int
    reversed: bool
    """A visit that its venue reversed later (the reversal is its own event)."""
    reverses: UUID | None
    """The visit a reversal undoes."""
    rating: Rating | None
    """The caller's rating of this visit; always None on a reversal."""


class RatingCase(Record):
    """A 差评 as the admins handle it: the visit it is about, never the person who gave it."""

    id: UUID
    status: CaseStatus
    district: str | None
    stars: int
    comment: str | None
    at: datetime
    """When the rating was given (and the case opened)."""
    redemption_id: UUID
    service_day: date
    benefit_code: str
    venue: VenueBrief
    merchant_id: UUID
    reply: str | None
    replied_by: UUID | None
    closed_at: datetime | None
    due_at: datetime | None = None
    """When the case must be answered by (opened + `CHONGJUN_RATING_CASE_DUE_HOURS`, default 5 days)."""
    overdue: bool = False
    """Open past its due time: escalated to the city (city admins see it in `?overdue=true`)."""


class MerchantRating(Record):
    """A rating of one of the staff's venues, as the merchant reads it: never the person."""

    id: UUID
    redemption_id: UUID
    venue: VenueBrief
    stars: int
    comment: str | None
    at: datetime
    case_status: CaseStatus | None
    due_at: datetime | None
    overdue: bool
    reply: str | None
