"""Shapes of the scan and reversal endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = (
    "BenefitRef",
    "Holder",
    "ReversalRequest",
    "ReversalResult",
    "ScanDecision",
    "ScanRequest",
)

MAX_CODE_LENGTH = 2048
# PostgreSQL text cannot hold NUL: control characters other than tab and line breaks are refused.
_PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class ScanRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a scanner sends: the code it read and where it stands."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CODE_LENGTH)]
    venue_id: UUID
    benefit_id: UUID | None = None
    companions: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0


class Holder(msgspec.Struct, frozen=True):
    """All a merchant ever learns about the person (invariant 6)."""

    name_masked: str
    category_label: str


class BenefitRef(msgspec.Struct, frozen=True):
    id: UUID
    code: str
    name_zh: str
    name_en: str


class ScanDecision(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to a scan. `reason` is a stable code from `reasons.MESSAGES`."""

    decision: Literal["accepted", "rejected"]
    reason: str
    message: str
    message_en: str
    companions_allowed: int = 0
    companions: int = 0
    priority: bool = False
    redemption_id: UUID | None = None
    holder: Holder | None = None
    benefit: BenefitRef | None = None
    choices: list[BenefitRef] | None = None


class ReversalRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=_PLAIN_TEXT)]


class ReversalResult(msgspec.Struct, frozen=True):
    reversal_id: UUID
    redemption_id: UUID
    reversed_at: datetime
