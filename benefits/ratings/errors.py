"""Errors of 好差评 and the ratings queue (HTTP mapping lives in api/errors.py by category)."""

from __future__ import annotations

from benefits.redemption.errors import RedemptionNotFound
from foundation.errors import Conflict, Invalid, NotFound

__all__ = (
    "AlreadyRated",
    "CaseAlreadyClosed",
    "CaseNotFound",
    "EmptyReply",
    "NotRateable",
    "RedemptionNotFound",
)


class AlreadyRated(Conflict):
    type = "already-rated"
    title = "This redemption was already rated"


class NotRateable(Conflict):
    """A reversal row is the holder's own event but not a visit: there is nothing to rate."""

    type = "not-rateable"
    title = "Only an accepted redemption can be rated, not a reversal"


class CaseNotFound(NotFound):
    """One answer for an unknown case and another district's case, so ids cannot be probed."""

    type = "rating-case-not-found"
    title = "No such rating case"


class CaseAlreadyClosed(Conflict):
    type = "rating-case-closed"
    title = "This rating case was already answered and closed"


class EmptyReply(Invalid):
    type = "empty-reply"
    title = "The reply has no text"

