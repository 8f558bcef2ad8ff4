"""Time in Asia/Shanghai: cap period buckets, named days and benefit time windows.

Every date question the benefits ask ("which day is it", "which week does this cap count in",
"is 8月1日 today") is answered on the Shanghai wall clock, whatever the server's time zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Final, Literal

__all__ = (
    "NAMED_DAYS",
    "SHANGHAI",
    "NamedDay",
    "Period",
    "local_date",
    "local_now",
    "named_day_dates",
    "period_bounds",
    "period_key",
)

try:
    from zoneinfo import ZoneInfo

    SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
except Exception:  # pragma: no cover - a system without tz data
    # Shanghai has kept UTC+8 without daylight saving since 1991: a fixed offset is exact for
    # every date this service deals with.
    SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # type: ignore[misc]

Period = Literal["day", "week", "month", "year"]

NamedDay = Literal["ARMY_DAY", "MARTYRS_DAY", "NATIONAL_DAY", "NEW_YEAR", "SPRING_FESTIVAL"]

# code -> (month-day or None for lunar days, 中文, English)
NAMED_DAYS: Final[dict[str, tuple[str | None, str, str]]] = {
    "ARMY_DAY": ("08-01", "建军节（8月1日）", "Army Day (1 August)"),
    "MARTYRS_DAY": ("09-30", "烈士纪念日（9月30日）", "Martyrs' Day (30 September)"),
    "NATIONAL_DAY": ("10-01", "国庆节（10月1日）", "National Day (1 October)"),
    "NEW_YEAR": ("01-01", "元旦（1月1日）", "New Year's Day (1 January)"),
    "SPRING_FESTIVAL": (None, "春节（农历正月初一）", "Spring Festival (lunar new year's day)"),
}

# 春节 follows the lunar calendar; these are the published Gregorian dates. Outside this table
# SPRING_FESTIVAL matches no day (extend the table, never guess).
_SPRING_FESTIVAL: Final = {
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
}


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive instant is ambiguous (server-local? UTC?); refusing it keeps buckets exact.
        raise ValueError("a timezone-aware datetime is required")
    return at.astimezone(SHANGHAI)


def local_now() -> datetime:
    return datetime.now(SHANGHAI)


def local_date(at: datetime) -> date:
    """The calendar day in Shanghai at the instant `at` (aware)."""
    return _aware(at).date()


def period_key(period: Period, at: datetime) -> str:
    """The cap bucket that the instant `at` falls in, on the Shanghai wall clock.

    - ``day``   → ``d:2026-11-27`` (the Shanghai calendar day)
    - ``week``  → ``w:2026-W48`` (ISO 8601 week, Monday to Sunday; the ISO week-year, so
      2027-01-01, a Friday, is ``w:2026-W53``)
    - ``month`` → ``m:2026-11``
    - ``year``  → ``y:2026``

    `at` must be timezone-aware (ValueError otherwise). The key is stable text, so the ledger's
    `quota_usage.period_key` and every reader agree on it; the day starts at 00:00 Shanghai time
    (16:00 UTC of the day before).
    """
    local = _aware(at)
    if period == "day":
        return f"d:{local.date().isoformat()}"
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"w:{year}-W{week:02d}"
    if period == "month":
        return f"m:{local.year:04d}-{local.month:02d}"
    if period == "year":
        return f"y:{local.year:04d}"
    raise ValueError(f"unknown period {period!r}")


def period_bounds(period: Period, at: datetime) -> tuple[datetime, datetime]:
    """The [start, end) instants, in Shanghai time, of the bucket that `at` falls in."""
    day = _aware(at).date()
    if period == "day":
        start = day
        end = day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.isoweekday() - 1)
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    elif period == "year":
        start = date(day.year, 1, 1)
        end = date(day.year + 1, 1, 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return datetime.combine(start, time(), SHANGHAI), datetime.combine(end, time(), SHANGHAI)


def named_day_dates(name: str, year: int) -> date | None:
    """The date of a named day in a year, or None when it is unknown (a lunar day off the table)."""
    month_day = NAMED_DAYS[name][0]
    if month_day is None:
        return _SPRING_FESTIVAL.get(year)
    return date(year, int(month_day[:2]), int(month_day[3:]))


def is_named_day(name: str, day: date) -> bool:
    return named_day_dates(name, day.year) == day
