"""Shapes of the benefits catalog: the versioned benefit definition and what is built from it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Union
from uuid import UUID

import msgspec

from foundation.structs import Input, Record
from benefits.catalog.periods import NamedDay, Period
from merchants import PublicVenue
from benefits.catalog.rules import Always, ClauseResult, Expr

__all__ = (
    "BenefitDraft",
    "BenefitSpec",
    "BenefitStatus",
    "BenefitSummary",
    "BenefitVersion",
    "BenefitView",
    "VenueList",
    "Cap",
    "Companions",
    "DateRange",
    "Decision",
    "Domain",
    "Explanation",
    "Fixed",
    "Free",
    "MatchedBenefit",
    "MyBenefits",
    "PercentOff",
    "Priority",
    "QuotaLeft",
    "StatusChange",
    "Tier",
    "TimeRange",
    "Value",
    "Voucher",
    "WindowCheck",
    "Windows",
    "YearlyRange",
)

Domain = Literal["culture", "tourism", "transit", "other"]
BenefitStatus = Literal["draft", "active", "paused", "retired"]
Confidence = Literal["statutory", "local_rule", "merchant", "invented"]
Proof = Literal[
    "SUISHEN_CODE_LOOKUP",  # 随申码 + back-end eligibility lookup (免申即享)
    "YOUDAI_CARD",  # 优待证
    "DISABLED_CERT",  # 残疾军人证
    "SERVICE_ID",  # 军官证 / 士兵证 ...
    "SURVIVOR_CARD",  # 三属 优待证
    "MARRIAGE_CERT",  # 结婚证 / 户口本 (军属 accompanying)
    "HUKOU",
    "BOOKING_QR",
]
Exclusion = Literal[
    "SUB_ATTRACTIONS",  # 园中园
    "RIDES",
    "NIGHT_TOUR",
    "GUIDE",
    "IN_PARK_TRANSPORT",
    "MAJOR_EVENTS",
    "SPECIAL_EXHIBITIONS",
    "CUSTOM_LINES",  # 定制公交 / 旅游线路
    "ONLINE_PURCHASE",
]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7, description="ISO weekday: 1 = Monday … 7 = Sunday")]
HourMinute = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", examples=["09:00"])]
MonthDay = Annotated[str, msgspec.Meta(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$", examples=["08-01"])]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Spec(Input, kw_only=True):
    """Parts of a benefit definition: strict on input (a misspelt field is an error), and frozen
    because a version, once written, is what the ledger points at forever."""


# --- value ------------------------------------------------------------------------------------


class _Value(_Spec, tag_field="kind"):
    pass


class Free(_Value, tag="free"):
    pass


class PercentOff(_Value, tag="percent_off"):
    percent: Annotated[int, msgspec.Meta(ge=1, le=99, description="50 = half price; 5 = 9.5折")]


class Fixed(_Value, tag="fixed_off"):
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=100_000_000, description="amount off in fen (¥0.01)")]


class Priority(_Value, tag="priority"):
    pass


class Voucher(_Value, tag="voucher"):
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] | None = None


Value = Union[Free, PercentOff, Fixed, Priority, Voucher]


class Tier(_Spec):
    """A value for those who satisfy `when`; tiers are tried in order, the benefit's own value
    applies when none holds (e.g. 残疾军人 1–6级 free, else 50%)."""

    when: Expr
    value: Value
    label_zh: Text = ""
    label_en: Text = ""


class Companions(_Spec):
    """How many companions may come in with the holder, and which holders may bring them."""

    max: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    rule: Expr | None = None
    """Who may bring companions (e.g. disability grade 1–4); None = every eligible holder."""
    same_value: bool = True
    """Whether companions get the holder's value (else they only pass with the holder)."""


class Cap(_Spec):
    """At most `max` redemptions per person in each `period` bucket (see `period_key`), counted
    across every venue of the benefit."""

    period: Period
    max: Annotated[int, msgspec.Meta(ge=1, le=100_000)]


# --- time windows -----------------------------------------------------------------------------


class DateRange(_Spec):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")


class YearlyRange(_Spec):
    """Every year from MM-DD to MM-DD, both included; wraps over the new year when from > to."""

    start: MonthDay = msgspec.field(name="from")
    end: MonthDay = msgspec.field(name="to")


class TimeRange(_Spec):
    """[from, to) on the Shanghai clock; on the listed weekdays only, when any are listed."""

    start: HourMinute = msgspec.field(name="from")
    end: HourMinute = msgspec.field(name="to")
    weekdays: list[Weekday] = msgspec.field(default_factory=list)


class Windows(_Spec):
    """When the benefit can be used (Asia/Shanghai). An empty list does not restrict; every
    non-empty list must match: date ranges, yearly ranges or named days, weekdays, hours."""

    date_ranges: list[DateRange] = msgspec.field(default_factory=list)
    yearly: list[YearlyRange] = msgspec.field(default_factory=list)
    named_days: list[NamedDay] = msgspec.field(default_factory=list)
    weekdays: list[Weekday] = msgspec.field(default_factory=list)
    hours: list[TimeRange] = msgspec.field(default_factory=list)


# --- the benefit definition (one version) -----------------------------------------------------


class BenefitSpec(_Spec, kw_only=True):
    """Everything that defines a benefit; each change is stored as a new immutable version."""

    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_-]{0,31}$", examples=["T1"])]
    name_zh: Name
    name_en: Name
    description_zh: Text = ""
    description_en: Text = ""
    domain: Domain
    value: Value
    rule: Expr
    tiers: Annotated[list[Tier], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)
    companions: Companions = msgspec.field(default_factory=Companions)
    caps: Annotated[list[Cap], msgspec.Meta(max_length=4)] = msgspec.field(default_factory=list)
    venue_daily_capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    """People (holders and companions) admitted per venue and Shanghai day under this benefit."""
    windows: Windows = msgspec.field(default_factory=Windows)
    exclusions: list[Exclusion] = msgspec.field(default_factory=list)
    limits_note_zh: Text = ""
    limits_note_en: Text = ""
    proof: list[Proof] = msgspec.field(default_factory=list)
    reservation_required: bool = False
    legal_basis: Text = ""
    source_url: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    confidence: Confidence = "invented"


class BenefitDraft(BenefitSpec, kw_only=True):
    """A new benefit: its definition, the status it starts in and where it can be used."""

    status: Literal["draft", "active"] = "draft"
    venue_ids: Annotated[list[UUID], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)


class VenueList(_Spec):
    venue_ids: Annotated[list[UUID], msgspec.Meta(max_length=1000)]


class StatusChange(_Spec):
    status: BenefitStatus
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class BenefitVersion(BenefitSpec, kw_only=True):
    """One immutable version of a benefit as the scan and the list see it.

    `get_benefit` returns the version in force; its compiled rule is cached in process per
    (benefit_id, version), so holding a version is cheap.
    """

    benefit_id: UUID
    version: int
    status: BenefitStatus
    created_at: datetime

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def spec(self) -> BenefitSpec:
        fields = {f: getattr(self, f) for f in BenefitSpec.__struct_fields__}
        return BenefitSpec(**fields)


# --- what evaluation answers ------------------------------------------------------------------


class Decision(Record):
    """Whether a person may use a benefit (rule only, not windows or quota) and why."""

    eligible: bool
    reason_code: Literal["eligible", "not_eligible"]
    clause: str
    """JSON path of the clause that decided, e.g. ``$.rule.all[1]``."""
    message_zh: str
    message_en: str
    value: Value | None = None
    """What the person gets (the first tier that holds, else the benefit's value); None if not eligible."""


class Explanation(Record):
    """A decision with the result of every clause of the rule."""

    decision: Decision
    clauses: list[ClauseResult]


class WindowCheck(Record):
    open: bool
    why_zh: str = ""
    why_en: str = ""

    def __bool__(self) -> bool:
        return self.open


class QuotaLeft(Record):
    period: Period
    period_key: str
    max: int
    used: int
    remaining: int
    resets_at: datetime


# --- API views --------------------------------------------------------------------------------


class _Heading(Record, kw_only=True):
    """What every view of a benefit starts with: which benefit, at which version, named how."""

    id: UUID
    code: str
    version: int
    name_zh: str
    name_en: str
    domain: Domain


class BenefitSummary(_Heading, kw_only=True):
    """A benefit in the public catalog."""

    value: Value
    tiers: list[Tier] = msgspec.field(default_factory=list)
    rule: Expr = msgspec.field(default_factory=Always)
    rule_summary_zh: str
    rule_summary_en: str
    companions: Companions = msgspec.field(default_factory=Companions)
    caps: list[Cap] = msgspec.field(default_factory=list)
    windows: Windows = msgspec.field(default_factory=Windows)
    exclusions: list[str] = msgspec.field(default_factory=list)
    reservation_required: bool = False
    proof: list[str] = msgspec.field(default_factory=list)
    legal_basis: str = ""
    source_url: str | None = None
    venues: list[PublicVenue] = msgspec.field(default_factory=list)


class BenefitView(BenefitVersion, kw_only=True):
    """A benefit as the admin console sees it: the current version and its venues."""

    venue_ids: list[UUID] = msgspec.field(default_factory=list)
    updated_at: datetime | None = None


class MatchedBenefit(_Heading, kw_only=True):
    """One active benefit as a veteran sees it: eligible or not and why, quota, where."""

    eligible: bool
    clause: str
    reason_zh: str
    reason_en: str
    value: Value | None
    companions_allowed: int
    quota: list[QuotaLeft]
    remaining: int | None
    """The smallest remaining count over the caps; None when the benefit has no per-person cap."""
    window_open_now: bool
    window_zh: str
    window_en: str
    venues: list[PublicVenue]


class MyBenefits(Record):
    person_id: UUID
    evaluated_at: datetime
    items: list[MatchedBenefit]
