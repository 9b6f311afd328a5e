"""Deadlines in business time: days off, holidays, hours, time zones and DST."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from cxloop.cases import sla

CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")


def cal(**kwargs: object) -> sla.Calendar:
    return sla.Calendar(tz=CHISINAU, **kwargs)  # type: ignore[arg-type]


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CHISINAU)


def test_same_day_closes_at_the_end_of_the_business_day() -> None:
    # Thursday 2026-11-26, 11:00 local.
    due = sla.same_business_day(local(2026, 11, 26, 11), cal(), dt.timedelta(hours=1))
    assert due == local(2026, 11, 26, 18)


def test_late_in_the_day_or_after_hours_is_due_the_next_working_day() -> None:
    one_hour = dt.timedelta(hours=1)
    # 17:30 on Thursday: half an hour left, less than the minimum → Friday's close.
    assert sla.same_business_day(local(2026, 11, 26, 17, 30), cal(), one_hour) == local(
        2026, 11, 27, 18
    )
    # Friday 19:00 → Monday (the weekend does not count).
    assert sla.same_business_day(local(2026, 11, 27, 19), cal(), one_hour) == local(
        2026, 11, 30, 18
    )
    # Before opening on a working day: that day's close.
    assert sla.same_business_day(local(2026, 11, 26, 7), cal(), one_hour) == local(2026, 11, 26, 18)


def test_holidays_are_skipped() -> None:
    holidays = frozenset({dt.date(2026, 11, 30), dt.date(2026, 12, 1)})
    due = sla.same_business_day(
        local(2026, 11, 27, 19), cal(holidays=holidays), dt.timedelta(hours=1)
    )
    assert due == local(2026, 12, 2, 18)


def test_business_hours_carry_over_nights_and_weekends() -> None:
    # Friday 16:00 + 4 business hours: 2 on Friday, 2 on Monday from 09:00.
    assert sla.add_business_hours(local(2026, 11, 27, 16), cal(), 4) == local(2026, 11, 30, 11)
    # Saturday counts from Monday's opening.
    assert sla.add_business_hours(local(2026, 11, 28, 12), cal(), 3) == local(2026, 11, 30, 12)
    # Exactly the rest of the day ends at the close, not the next morning.
    assert sla.add_business_hours(local(2026, 11, 26, 14), cal(), 4) == local(2026, 11, 26, 18)


def test_the_branch_time_zone_decides_the_day() -> None:
    # 22:30 UTC on Thursday is already 00:30 Friday in Chișinău: Friday's close, in Chișinău.
    utc = dt.datetime(2026, 11, 26, 22, 30, tzinfo=dt.UTC)
    due = sla.same_business_day(utc, cal(), dt.timedelta(hours=1))
    assert due == local(2026, 11, 27, 18)
    assert due.astimezone(dt.UTC) == dt.datetime(2026, 11, 27, 16, tzinfo=dt.UTC)


def test_business_hours_across_a_dst_change() -> None:
    # Moldova moves clocks back on Sunday 2026-10-25 (UTC+3 → UTC+2): Friday 17:00 + 2 h is
    # Monday 10:00 on the wall clock, 08:00 UTC (it would be 07:00 UTC in summer time).
    opened = local(2026, 10, 23, 17)
    assert opened.astimezone(dt.UTC).hour == 14
    due = sla.add_business_hours(opened, cal(), 2)
    assert due == local(2026, 10, 26, 10)
    assert due.astimezone(dt.UTC).hour == 8


def test_custom_workdays() -> None:
    # A shop open Tuesday to Saturday: Monday's case is due on Tuesday.
    shop = cal(workdays=frozenset({2, 3, 4, 5, 6}))
    assert sla.same_business_day(local(2026, 11, 30, 10), shop, dt.timedelta(hours=1)) == local(
        2026, 12, 1, 18
    )


def test_a_calendar_without_working_days_still_gives_a_deadline() -> None:
    closed = cal(workdays=frozenset())
    due = sla.same_business_day(local(2026, 11, 26, 10), closed, dt.timedelta(hours=1))
    assert due > local(2026, 11, 26, 10)
