"""好差评: the holder's own redemption history and ratings, and the admins' queue of 差评 cases."""

from benefits.ratings.errors import AlreadyRated, CaseAlreadyClosed, CaseNotFound, EmptyReply, NotRateable
from benefits.ratings.service import (
    answer_case,
    get_my_redemption,
    list_cases,
    list_my_redemptions,
    rate_redemption,
)
from benefits.ratings.types import (
    LOW_STARS,
    BenefitBrief,
    CaseReply,
    CaseStatus,
    MyRedemption,
    Rating,
    RatingCase,
    RatingCreate,
    VenueBrief,
)

__all__ = (
    "LOW_STARS",
    "AlreadyRated",
    "BenefitBrief",
    "CaseAlreadyClosed",
    "CaseNotFound",
    "CaseReply",
    "CaseStatus",
    "EmptyReply",
    "MyRedemption",
    "NotRateable",
    "Rating",
    "RatingCase",
    "RatingCreate",
    "VenueBrief",
    "answer_case",
    "get_my_redemption",
    "list_cases",
    "list_my_redemptions",
    "rate_redemption",
)
