"""Cap buckets and time windows on the Shanghai wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benefits.catalog import period_bounds, period_key, window_open
from tests.benefits.test_rules import version_with


@pytest.mark.parametrize(
    ("period", "key"),
    [("day", "d:2026-11-27"), ("week", "w:2026-W48"), ("month", "m:2026-11"), ("year", "y:2026")],
)
def test_period_keys(period, key):
    assert period_key(period, datetime(2026, 11, 27, 10, tzinfo=UTC)) == key


def test_the_day_turns_at_midnight_in_shanghai_not_utc():
    assert period_key("day", datetime(2026, 11, 26, 15, 59, 59, tzinfo=UTC)) == "d:2026-11-26"
    assert period_key("day", datetime(2026, 11, 26, 16, 0, tzinfo=UTC)) == "d:2026-11-27"
    assert period_key("year", datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == "y:2027"


def test_weeks_are_iso_weeks_of_the_iso_year():
    shanghai = timezone(timedelta(hours=8))
    assert period_key("week", datetime(2027, 1, 1, 12, tzinfo=shanghai)) == "w:2026-W53"
    assert period_key("week", datetime(2027, 1, 4, 0, 0, tzinfo=shanghai)) == "w:2027-W01"


def test_naive_instants_are_refused():
    with pytest.raises(ValueError):
        period_key("day", datetime(2026, 11, 27, 10))


@given(st.sampled_from(["day", "week", "month", "year"]), st.datetimes(datetime(2000, 1, 1), datetime(2099, 1, 1)))
def test_bounds_contain_the_instant_and_share_its_key(period, naive):
    at = naive.replace(tzinfo=UTC)
    start, end = period_bounds(period, at)
    assert start <= at < end
    assert period_key(period, start) == period_key(period, at)
    assert period_key(period, end) != period_key(period, at)
    assert period_key(period, end - timedelta(microseconds=1)) == period_key(period, at)


def test_windows_weekdays_hours_and_yearly_ranges():
    # Yangpu gallery: Mon–Fri 9:00–11:30 and 13:30–16:30, closed Thursday afternoon.
    version = version_with(
        {"op": "always"},
        windows={
            "weekdays": [1, 2, 3, 4, 5],
            "hours": [{"from": "09:00", "to": "11:30"}, {"from": "13:30", "to": "16:30", "weekdays": [1, 2, 3, 5]}],
        },
    )
    shanghai = timezone(timedelta(hours=8))
    assert window_open(version, datetime(2026, 11, 26, 10, 0, tzinfo=shanghai))  # Thursday morning
    closed = window_open(version, datetime(2026, 11, 26, 14, 0, tzinfo=shanghai))  # Thursday afternoon
    assert not closed and "开放时段" in closed.why_zh
    assert window_open(version, datetime(2026, 11, 27, 14, 0, tzinfo=shanghai))  # Friday afternoon
    weekend = window_open(version, datetime(2026, 11, 28, 10, 0, tzinfo=shanghai))
    assert not weekend and "周一至周五" in weekend.why_zh
    army = version_with({"op": "always"}, windows={"yearly": [{"from": "07-25", "to": "08-05"}]})
    assert window_open(army, datetime(2026, 8, 5, 23, 59, tzinfo=shanghai))
    assert not window_open(army, datetime(2026, 8, 6, 0, 0, tzinfo=shanghai))
    winter = version_with({"op": "always"}, windows={"yearly": [{"from": "12-20", "to": "01-10"}], "named_days": ["ARMY_DAY"]})
    assert window_open(winter, datetime(2027, 1, 3, tzinfo=shanghai))
    assert window_open(winter, datetime(2027, 8, 1, tzinfo=shanghai))
    assert not window_open(winter, datetime(2027, 3, 1, tzinfo=shanghai))
