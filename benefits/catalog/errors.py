"""Errors of the benefits catalog and matching."""

from __future__ import annotations

from foundation.errors import Conflict, Invalid, NotFound
from foundation.structs import Record

__all__ = (
    "BenefitNotFound",
    "CodeTaken",
    "InvalidBenefit",
    "InvalidRule",
    "RuleProblem",
    "StatusChangeRefused",
    "VersionConflict",
)


class RuleProblem(Record):
    """One thing wrong with a submitted benefit: the JSON path of the bad node and why."""

    path: str
    message: str


class InvalidBenefit(Invalid):
    """The benefit (or its rule) does not validate; `errors` names each bad node's JSON path."""

    type = "invalid-benefit"
    title = "Invalid benefit"

    def __init__(self, problems: list[RuleProblem]) -> None:
        first = problems[0]
        super().__init__(
            f"{first.path}: {first.message}",
            errors=[{"path": p.path, "message": p.message} for p in problems],
        )
        self.problems = problems


class InvalidRule(InvalidBenefit):
    type = "invalid-rule"
    title = "Invalid eligibility rule"


class BenefitNotFound(NotFound):
    type = "benefit-not-found"
    title = "Benefit not found"


class CodeTaken(Conflict):
    type = "benefit-code-taken"
    title = "Benefit code already in use"


class VersionConflict(Conflict):
    type = "benefit-version-conflict"
    title = "The benefit changed meanwhile"


class StatusChangeRefused(Conflict):
    type = "benefit-status-change-refused"
    title = "Status change not allowed"
