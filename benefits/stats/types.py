"""Shapes of the operating statistics (第二十三条)."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from foundation.structs import Record

__all__ = (
    "BenefitStats", "CaseCounts", "DayCount", "Flow", "KeyCount", "LedgerTotals", "OfflineStats", "RatingStats", "ReasonCount",
    "RefreshResult",
    "StatsQuery", "StatsReport",
)


class StatsQuery(Record, kw_only=True):
    date_from: date
    date_to: date                  # inclusive (service days, Asia/Shanghai)
    district: str | None = None
    domain: str | None = None
    benefit_id: UUID | None = None


class Flow(Record, kw_only=True):
    """What one slice of the ledger counted: redemptions, and reversals (on their own service day)."""

    redemptions: int
    reversals: int


class LedgerTotals(Flow, kw_only=True):
    net: int
    companions: int
    priority: int                  # 绿色通道 (priority entry) among the redemptions
    priority_share: float | None
    people: int                    # distinct holders with a redemption in the window


class DayCount(Flow, kw_only=True):
    day: date


class KeyCount(Record, kw_only=True):
    key: str
    redemptions: int
    reversals: int = 0             # none for a count that has no reversals (holder categories)


class BenefitStats(Flow, kw_only=True):
    benefit_id: UUID
    code: str
    name_zh: str
    eligible: int | None           # 免申即享 reach: people eligible now (as of reach_computed_at)
    used: int                      # people who used it in the window
    reach_share: float | None      # used / eligible


class ReasonCount(Record, kw_only=True):
    reason: str
    count: int


class OfflineStats(Record, kw_only=True):
    """Decisions gates took offline, by how the upload reconciled them (live, from `offline_scans`):
    recorded ones are also in the ledger totals above; conflicts and rejections never are."""

    recorded: int
    conflicts: int
    rejected: int
    conflict_reasons: list[ReasonCount]
    rejected_reasons: list[ReasonCount]


class CaseCounts(Record, kw_only=True):
    district: str
    open: int
    overdue: int


class RatingStats(Record, kw_only=True):
    count: int
    average: float | None
    low: int                       # 差评 (1-2 stars)
    low_share: float | None
    open_cases: int
    overdue_cases: int
    by_district: list[CaseCounts]


class StatsReport(Record, kw_only=True):
    query: StatsQuery
    as_of: datetime | None         # when the daily rollups were last refreshed
    reach_computed_at: datetime | None
    totals: LedgerTotals
    by_day: list[DayCount]
    by_district: list[KeyCount]    # the venue's district
    by_domain: list[KeyCount]
    by_benefit: list[BenefitStats]
    by_category: list[KeyCount]    # the holder's categories (a holder in two counts in both)
    refusals: list[ReasonCount]
    venues_active: int
    devices_active: int
    ratings: RatingStats
    offline: OfflineStats


class RefreshResult(Record, kw_only=True):
    refreshed_at: datetime
    rollup_seconds: float
    reach_seconds: float
    people: int
