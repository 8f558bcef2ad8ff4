"""Errors of the people registry and the roster; none of them ever carries an ID number."""

from __future__ import annotations

import msgspec

from foundation.errors import Forbidden, Invalid, NotFound
from identity.pii import InvalidIdNumber, SealBroken

__all__ = ("CardSuspended", "InvalidIdNumber", "NotEnrolled", "PersonNotFound", "RosterRejected", "SealBroken")


class NotEnrolled(Forbidden):
    """A genuine city identity whose holder is not in our roster (not an 优抚对象 we know)."""

    type = "not-enrolled"
    title = "Not enrolled"

    def __init__(self, detail: str | None = None, **extensions) -> None:
        super().__init__(detail or "You are not in the roster of the Veterans Affairs Bureau", **extensions)


class CardSuspended(Forbidden):
    """Enrolled, but the 优待证 is suspended or revoked: no session, no benefits."""

    type = "card-suspended"
    title = "Card suspended"

    def __init__(self, detail: str | None = None, **extensions) -> None:
        super().__init__(detail or "Your preferential card is suspended or revoked", **extensions)


class PersonNotFound(NotFound):
    type = "person-not-found"
    title = "No such person"


class RosterRejected(Invalid):
    """A roster with invalid lines, imported all-or-nothing: nothing was written.

    `report` (an `ImportReport`) lists every bad line with its number and a masked ID number.
    """

    type = "roster-rejected"
    title = "The roster has invalid lines; nothing was imported"

    def __init__(self, report, detail: str | None = None) -> None:
        self.report = report
        super().__init__(
            detail or f"{report.rejected} invalid line(s); nothing was imported",
            report=msgspec.to_builtins(report),
        )
