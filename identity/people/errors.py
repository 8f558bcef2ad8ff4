"""Errors of the people registry and the roster; none of them ever carries an ID number."""

from __future__ import annotations

import msgspec

from foundation.errors import BadRequest, Forbidden, Invalid, NotFound

__all__ = (
    "CardSuspended",
    "NotEnrolled",
    "PersonNotFound",
    "RosterEncoding",
    "RosterRejected",
)


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


class RosterEncoding(BadRequest):
    """A roster whose bytes are not text we read: not UTF-8, not UTF-16 with a byte-order mark,
    not GB 18030 (or text with NUL and other control characters, which is what UTF-16 without
    a BOM, a spreadsheet file or random bytes decode to). Nothing was imported."""

    type = "roster-encoding"
    title = "The roster is not readable text"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "save the roster as CSV in UTF-8 (“CSV UTF-8” in Excel), GB 18030 or UTF-16 with a BOM; "
            "nothing was imported"
        )
