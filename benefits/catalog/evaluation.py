"""Pure evaluation of a benefit version: eligibility, value, companions, windows, quota left.

No I/O here: the scan's hot path calls these with a version it already holds. Each version's
rules are compiled once and cached in process by (benefit_id, version); versions never change,
so the cache never needs invalidating, only bounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Final
from uuid import UUID

from foundation.cache import LocalCache
from benefits.catalog.periods import NAMED_DAYS, SHANGHAI, is_named_day, period_bounds, period_key
from benefits.catalog.rules import CompiledRule, PersonLike, compile_rule
from benefits.catalog.types import (
    BenefitSpec,
    BenefitVersion,
    Decision,
    Explanation,
    QuotaLeft,
    Value,
    WindowCheck,
    Windows,
)

__all__ = (
    "Compiled",
    "companions_allowed",
    "compiled",
    "evaluate",
    "explain",
    "remaining_quota",
    "value_for",
    "window_open",
    "window_text",
)

_CACHE_SIZE: Final = 4096
_WEEKDAYS_ZH: Final = "一二三四五六日"
_WEEKDAYS_EN: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Compiled:
    """The compiled rules of one version: eligibility, tiers and the companion rule."""

    __slots__ = ("companions", "rule", "tiers", "window_text")

    def __init__(self, spec: BenefitSpec) -> None:
        self.rule: CompiledRule = compile_rule(spec.rule, "$.rule")
        self.tiers = tuple(
            (compile_rule(tier.when, f"$.tiers[{i}].when"), tier.value) for i, tier in enumerate(spec.tiers)
        )
        self.companions = (
            compile_rule(spec.companions.rule, "$.companions.rule") if spec.companions.rule is not None else None
        )
        self.window_text: tuple[str, str] = describe_windows(spec.windows)


_compiled: LocalCache[tuple[UUID, int], Compiled] = LocalCache(maxsize=_CACHE_SIZE, ttl=None)


def compiled(version: BenefitVersion) -> Compiled:
    """The compiled rules of a version, built on first use and cached by (benefit_id, version)."""
    key = (version.benefit_id, version.version)
    found = _compiled.get(key)
    if found is None:
        found = Compiled(version)
        _compiled.put(key, found)
    return found


def _day(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return at.astimezone(SHANGHAI).date()


def evaluate(version: BenefitVersion, person: PersonLike, at: datetime) -> Decision:
    """Whether `person` satisfies the version's eligibility rule on the Shanghai day of `at`.

    Only the rule: the benefit's status, time window, quota and venue are the caller's other
    checks (`window_open`, `remaining_quota`, the ledger). The clause is the JSON path of the
    node that decided; the messages say what it requires.
    """
    code = compiled(version)
    day = _day(at)
    held, clause = code.rule.check(person, day)
    if held:
        return Decision(
            True,
            "eligible",
            clause.path,
            f"符合条件：{clause.text_zh}",
            f"Eligible: {clause.text_en}",
            _value(version, code, person, day),
        )
    return Decision(
        False,
        "not_eligible",
        clause.path,
        f"不符合条件：需{clause.text_zh}",
        f"Not eligible: requires {clause.text_en}",
        None,
    )


def explain(version: BenefitVersion, person: PersonLike, at: datetime) -> Explanation:
    """`evaluate` plus the result of every clause; its verdict is always `evaluate`'s."""
    decision = evaluate(version, person, at)
    return Explanation(decision, compiled(version).rule.explain(person, _day(at)))


def _value(version: BenefitVersion, code: Compiled, person: PersonLike, day: date) -> Value:
    for rule, value in code.tiers:
        if rule.check(person, day)[0]:
            return value
    return version.value


def value_for(version: BenefitVersion, person: PersonLike, at: datetime) -> Value:
    """What an eligible person gets: the first tier whose rule holds, else the benefit's value."""
    return _value(version, compiled(version), person, _day(at))


def companions_allowed(version: BenefitVersion, person: PersonLike, at: datetime | None = None) -> int:
    """How many companions this holder may bring (0 when the companion rule does not hold)."""
    rule = version.companions
    if rule.max == 0:
        return 0
    code = compiled(version).companions
    if code is None:
        return rule.max
    day = _day(at) if at is not None else datetime.now(SHANGHAI).date()
    return rule.max if code.check(person, day)[0] else 0


# --- windows ----------------------------------------------------------------------------------


def _weekdays_text(days: list[int]) -> tuple[str, str]:
    ordered = sorted(set(days))
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return (
            f"周{_WEEKDAYS_ZH[ordered[0] - 1]}至周{_WEEKDAYS_ZH[ordered[-1] - 1]}",
            f"{_WEEKDAYS_EN[ordered[0] - 1]}–{_WEEKDAYS_EN[ordered[-1] - 1]}",
        )
    return (
        "、".join(f"周{_WEEKDAYS_ZH[d - 1]}" for d in ordered),
        ", ".join(_WEEKDAYS_EN[d - 1] for d in ordered),
    )


def _in_yearly(start: str, end: str, day: date) -> bool:
    md = f"{day.month:02d}-{day.day:02d}"
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end  # wraps over the new year


def describe_windows(windows: Windows) -> tuple[str, str]:
    """The whole window as one line (中文, English); empty strings when it never restricts."""
    zh: list[str] = []
    en: list[str] = []
    if windows.date_ranges:
        zh.append("、".join(f"{r.start}至{r.end}" for r in windows.date_ranges))
        en.append(", ".join(f"{r.start} to {r.end}" for r in windows.date_ranges))
    days_zh = [f"每年{int(r.start[:2])}月{int(r.start[3:])}日至{int(r.end[:2])}月{int(r.end[3:])}日" for r in windows.yearly]
    days_en = [f"every year {r.start} to {r.end}" for r in windows.yearly]
    days_zh += [NAMED_DAYS[n][1] for n in windows.named_days]
    days_en += [NAMED_DAYS[n][2] for n in windows.named_days]
    if days_zh:
        zh.append("或".join(days_zh))
        en.append(" or ".join(days_en))
    if windows.weekdays:
        w_zh, w_en = _weekdays_text(windows.weekdays)
        zh.append(w_zh)
        en.append(w_en)
    if windows.hours:
        zh.append(
            "、".join(
                f"{h.start}–{h.end}" + (f"（{_weekdays_text(h.weekdays)[0]}）" if h.weekdays else "")
                for h in windows.hours
            )
        )
        en.append(
            ", ".join(
                f"{h.start}–{h.end}" + (f" ({_weekdays_text(h.weekdays)[1]})" if h.weekdays else "")
                for h in windows.hours
            )
        )
    return "；".join(zh), "; ".join(en)


def window_text(version: BenefitVersion) -> tuple[str, str]:
    """`describe_windows` of the version, computed once per version."""
    return compiled(version).window_text


def window_open(version: BenefitVersion | BenefitSpec, at: datetime) -> WindowCheck:
    """Whether the benefit can be used at the instant `at` (Shanghai wall clock), and if not why.

    Truthy when open. Every non-empty part of the window must match: one of the date ranges,
    one of the yearly ranges or named days, one of the weekdays, one of the hour ranges that
    apply on that weekday. Venue opening hours are the venue's, not checked here.
    """
    windows = version.windows
    if at.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    local = at.astimezone(SHANGHAI)
    day = local.date()
    weekday = day.isoweekday()
    if windows.date_ranges and not any(r.start <= day <= r.end for r in windows.date_ranges):
        zh, en = describe_windows(Windows(date_ranges=windows.date_ranges))
        return WindowCheck(False, f"不在优待日期内（{zh}）", f"outside the dates of the offer ({en})")
    if (windows.yearly or windows.named_days) and not (
        any(_in_yearly(r.start, r.end, day) for r in windows.yearly)
        or any(is_named_day(n, day) for n in windows.named_days)
    ):
        zh, en = describe_windows(Windows(yearly=windows.yearly, named_days=windows.named_days))
        return WindowCheck(False, f"仅限{zh}", f"only {en}")
    if windows.weekdays and weekday not in windows.weekdays:
        zh, en = _weekdays_text(windows.weekdays)
        return WindowCheck(False, f"仅限{zh}", f"only on {en}")
    if windows.hours:
        clock = f"{local.hour:02d}:{local.minute:02d}"
        if not any(
            h.start <= clock < h.end and (not h.weekdays or weekday in h.weekdays) for h in windows.hours
        ):
            zh, en = describe_windows(Windows(hours=windows.hours))
            return WindowCheck(False, f"不在开放时段内（{zh}）", f"outside the hours ({en})")
    return WindowCheck(True)


# --- quota ------------------------------------------------------------------------------------


def remaining_quota(
    version: BenefitVersion | BenefitSpec, used: Mapping[str, int], at: datetime
) -> list[QuotaLeft]:
    """What is left of each per-person cap in the periods that `at` falls in.

    Args:
        version: the benefit version (its `caps`).
        used: redemptions already counted per period key, i.e. the person's rows of
            `quota_usage` for this benefit (`{"d:2026-11-27": 1, "m:2026-11": 3}`); a missing
            key counts as 0.
        at: the instant (aware); buckets follow `period_key`.

    Returns one entry per cap, in the version's order; an empty list means no per-person cap.
    """
    out = []
    for cap in version.caps:
        key = period_key(cap.period, at)
        count = max(0, int(used.get(key, 0)))
        out.append(
            QuotaLeft(
                period=cap.period,
                period_key=key,
                max=cap.max,
                used=count,
                remaining=max(0, cap.max - count),
                resets_at=period_bounds(cap.period, at)[1],
            )
        )
    return out
