"""Shapes of the scan and reversal endpoints, the ledger entries the scan writes, and what staff
see of the ledger (their redemptions, the daily report, the sealed monthly statement)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Input, Record

__all__ = (
    "BenefitLine",
    "BenefitRef",
    "DailyReport",
    "EnsuredPartitions",
    "ExportedPartition",
    "Holder",
    "LedgerEntry",
    "OfflineBenefit",
    "OfflineBudget",
    "OfflineBundle",
    "OfflineItemResult",
    "OfflineRecord",
    "OfflineResults",
    "OfflineScan",
    "OfflineUpload",
    "RedemptionEntry",
    "RedemptionResult",
    "RejectedScan",
    "ReversalRequest",
    "ReversalResult",
    "ScanDecision",
    "ScanRequest",
    "Seal",
    "SealedStatement",
    "Statement",
    "StoredAnswer",
    "VenueReport",
    "VenueStatement",
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
    code_expires_at: datetime
    """the code's own expiry (signed inside it): its month is the jti's partition of
    `consumed_codes`, so the same code lands in the same partition whenever it is shown (0050)"""
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
    person_version: str | None = None
    """the person's `person_version` when the rules read a cached copy of them; another one now
    → `stale_person`, nothing written (migration 0059); None: nothing to check"""


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


# --- gates that keep working offline (benefits/redemption/offline.py) ---------------------------

MAX_OFFLINE_BATCH = 200
_LOCAL_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class OfflineBudget(Record, kw_only=True):
    """What a gate may decide on its own: it stops accepting offline past any of these, and the
    upload counts the same limits again, so a cloned device cannot go past them either."""

    accepts_per_hour: int
    """accepts per device and clock hour (UTC) of the decision"""
    accepts_per_person_day: int
    """accepts of one holder (the code's `sub`) per device and Shanghai day"""
    valid_seconds: int
    """how long the bundle lets the gate decide offline; after `exp` it refuses until it is online"""
    upload_within_seconds: int
    """how old a decision may be when it is uploaded"""


class OfflineBenefit(Record, kw_only=True):
    """A benefit offered at the gate's venue, as the gate shows it offline."""

    id: UUID
    code: str
    version: int
    name_zh: str
    name_en: str
    companions_max: int
    caps: list[dict]
    rules_digest: str
    """SHA-256 (hex) of the version's canonical definition (sorted keys): the rules the gate's
    decision is reconciled against on upload are the ones in force then"""


class OfflineBundle(Record, kw_only=True):
    """The payload of the signed offline bundle (`typ` cj-offline-bundle+jwt)."""

    iss: str
    iat: int
    exp: int
    device_id: UUID
    venue_id: UUID
    venue_name: str
    code_keys: dict
    """JWKS of the keys a 崇军码 may be signed with (EdDSA and ES256 verify in WebCrypto)"""
    status_list: str
    """the Token Status List of the electronic 优待证 (a signed JWT, for presentations)"""
    benefits: list[OfflineBenefit]
    rules_digest: str
    """SHA-256 (hex) over the benefits' digests in code order"""
    budget: OfflineBudget


class OfflineScan(Input):
    """One decision a gate took offline."""

    local_id: Annotated[str, msgspec.Meta(pattern=_LOCAL_ID, description="the device's own id of this decision")]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CODE_LENGTH)]
    venue_id: UUID
    decided_at: Annotated[datetime, msgspec.Meta(tz=True)]
    benefit_id: UUID | None = None
    companions: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0


class OfflineUpload(Input):
    scans: Annotated[list[OfflineScan], msgspec.Meta(min_length=1, max_length=MAX_OFFLINE_BATCH)]


OfflineOutcome = Literal["recorded", "conflict", "rejected"]


class OfflineItemResult(Record, omit_defaults=True):
    """How one uploaded decision was reconciled; a re-upload gets the same answer."""

    local_id: str
    outcome: OfflineOutcome
    reason: str
    """`accepted` when recorded; else a reason code (replayed, quota_exhausted, offline_budget_exceeded, ...)"""
    message: str
    message_en: str
    redemption_id: UUID | None = None


class OfflineResults(Record):
    items: list[OfflineItemResult]
    recorded: int
    conflicts: int
    rejected: int


class OfflineRecord(Record, kw_only=True):
    """The `offline_scans` row of one uploaded item (the record of its reconciliation)."""

    id: UUID
    device_id: UUID
    local_id: str
    fingerprint: bytes
    outcome: OfflineOutcome
    reason: str
    redemption_id: UUID | None
    venue_id: UUID
    merchant_id: UUID
    benefit_id: UUID | None
    person_id: UUID | None
    companions: int
    decided_at: datetime
    service_day: date


# --- what staff see of the ledger (benefits/redemption/reports.py) --------------------------------

RedemptionResult = Literal["accepted", "reversed", "rejected", "conflict"]


class RedemptionEntry(Record):
    """One scan at the merchant's venues, as the merchant may see it: no person, no personal data.

    `accepted` is a redemption that stands, `reversed` one that was later reversed, `rejected` a
    refused scan with its reason code (or an offline decision refused on upload), `conflict` an
    offline acceptance that came in after the code was used or a cap was reached (not counted).
    """

    id: UUID
    at: datetime
    service_day: date
    venue_id: UUID
    benefit_id: UUID | None
    benefit_code: str | None
    result: RedemptionResult
    reason: str | None
    companions: int
    value_fen: int
    device_id: UUID | None
    staff_id: UUID | None
    reversed_at: datetime | None
    decided_at: datetime | None = None
    """decided offline at this time (the row's `at` is when it was uploaded)"""


class BenefitLine(Record):
    """Counts for one benefit at one venue: reversals are netted in the period they happen."""

    benefit_id: UUID
    benefit_code: str
    benefit_name_zh: str | None
    """The benefit's name in the catalog now (the code is what the ledger recorded)."""
    redemptions: int
    reversals: int
    net_count: int
    net_admitted: int
    """Holders and companions, net of reversals."""
    net_value_fen: int


class VenueReport(Record):
    venue_id: UUID
    venue_name_zh: str
    district: str
    lines: list[BenefitLine]
    rejected: dict[str, int]
    """Refused scans by reason code."""
    net_count: int
    net_value_fen: int


class DailyReport(Record):
    merchant_id: UUID
    date: date
    timezone: str
    venues: list[VenueReport]


class VenueStatement(Record):
    venue_id: UUID
    venue_name_zh: str
    district: str
    lines: list[BenefitLine]
    net_count: int
    net_value_fen: int


class Statement(Record):
    """A monthly settlement statement: the canonical form of this struct is what the seal signs."""

    statement_id: str
    issuer: str
    merchant_id: UUID
    merchant_name: str
    merchant_credit_code: str
    month: str
    period_start: date
    period_end: date
    timezone: str
    currency: str
    value_unit: str
    final: bool
    """False while reversals may still change the month (the month, plus the reversal window)."""
    issued_at: datetime
    venues: list[VenueStatement]
    net_count: int
    net_value_fen: int


class Seal(Record):
    """A detached JWS (RFC 7515 Appendix F) over the canonical bytes of `statement`."""

    alg: str
    kid: str
    jws: str
    jwks_url: str
    canonicalization: str


class SealedStatement(Record):
    statement: Statement
    seal: Seal


class EnsuredPartitions(Record):
    """What `ensure_partitions` did: the month partitions it created, and the months it left in
    the DEFAULT partition because rows of theirs went there already (nothing is moved)."""

    created: list[str]
    in_default: list[str]


class ExportedPartition(Record):
    """One detached partition written out for the archive: CSV with a header, and its SHA-256."""

    table: str
    partition: str
    file: str
    rows: int
    sha256: str
