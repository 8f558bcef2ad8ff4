"""Shapes of the scan and reversal endpoints, and the ledger entries the scan writes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Record

__all__ = (
    "BenefitRef",
    "Holder",
    "LedgerEntry",
    "RejectedScan",
    "ReversalRequest",
    "ReversalResult",
    "ScanDecision",
    "ScanRequest",
    "StoredAnswer",
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


# --- what the scan writes (benefits/redemption/db.py) -------------------------------------------


class StoredAnswer(Record, kw_only=True):
    """The answer a scan gives, stored under its Idempotency-Key by the same statement that
    writes its ledger row, so the row and the answer commit together or not at all."""

    caller: str
    """``device:<id>`` or ``staff:<id>``: keys are per caller"""
    key: str | None
    """the Idempotency-Key; None: the request sent none and nothing is stored"""
    fingerprint: bytes
    """SHA-256 of the decoded request re-encoded: a key reused with another body is refused"""
    response: bytes
    """the JSON answer"""


class LedgerEntry(Record, kw_only=True):
    """An accepted scan, as `record_redemption` (migrations 0042/0043) takes it: the statement
    re-checks the benefit and the venue, consumes the code, counts every cap and the venue's day,
    and stores the answer, or refuses and writes nothing."""

    id: UUID
    jti: str
    code_source: Literal["cj", "suishen"]
    service_day: date
    person_id: UUID
    benefit_id: UUID
    benefit_version: int
    """the version the rules were evaluated with; another one in force → `stale_benefit`"""
    benefit_code: str
    venue_id: UUID
    merchant_id: UUID
    device_id: UUID | None
    staff_id: UUID | None
    companions: int
    value_kind: str
    value_fen: int
    priority: bool
    period_keys: list[str]
    period_caps: list[int]
    """the cap of each period key, in the same order"""
    venue_capacity: int | None
    """the benefit's own per-venue daily capacity; the statement applies the venue's too"""
    answer: StoredAnswer


class RejectedScan(Record, kw_only=True):
    """A refused scan, for `rejected_scans`: the reason, where, who scanned, whom and which
    benefit it was about when that is known."""

    id: UUID
    service_day: date
    reason: str
    venue_id: UUID
    merchant_id: UUID
    device_id: UUID | None
    staff_id: UUID | None
    person_id: UUID | None
    benefit_id: UUID | None
    answer: StoredAnswer
