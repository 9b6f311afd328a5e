"""Deadlines in business time: working days and hours in a branch's time zone, less holidays.

Pure functions of a ``Calendar``; ``calendar_for`` builds one from the workspace's
``CaseSettings``, the branch's time zone and the holidays that apply to it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q

# A deadline search that finds no working day in this many days gives up (a calendar with
# every day a holiday): the deadline is then this far ahead rather than never.
HORIZON_DAYS = 400


@dataclass(frozen=True)
class Calendar:
    tz: zoneinfo.ZoneInfo
    day_start: dt.time = dt.time(9)
    day_end: dt.time = dt.time(18)
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holidays: frozenset[dt.date] = field(default_factory=frozenset)

    def is_working_day(self, day: dt.date) -> bool:
        return day.isoweekday() in self.workdays and day not in self.holidays

    def opens(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.day_start, tzinfo=self.tz)

    def closes(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.day_end, tzinfo=self.tz)

    def next_working_day(self, after: dt.date) -> dt.date:
        day = after
        for _ in range(HORIZON_DAYS):
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                return day
        return day


def same_business_day(opened: dt.datetime, cal: Calendar, min_left: dt.timedelta) -> dt.datetime:
    """The close of the business day the case opens in; of the next working day when it
    opens on a day off, after hours, or with less than ``min_left`` of the day to go."""
    local = opened.astimezone(cal.tz)
    day = local.date()
    if cal.is_working_day(day):
        start = max(local, cal.opens(day))
        if cal.closes(day) - start >= min_left:
            return cal.closes(day)
    return cal.closes(cal.next_working_day(day))


def add_business_hours(opened: dt.datetime, cal: Calendar, hours: float) -> dt.datetime:
    """``opened`` plus ``hours`` of working time (time outside hours, days off and holidays
    does not count)."""
    remaining = dt.timedelta(hours=hours)
    local = opened.astimezone(cal.tz)
    day = local.date()
    cursor = local
    for _ in range(HORIZON_DAYS * 2):
        if cal.is_working_day(day) and cursor < cal.closes(day):
            cursor = max(cursor, cal.opens(day))
            left_today = cal.closes(day) - cursor
            if remaining <= left_today:
                return cursor + remaining
            remaining -= left_today
        day = cal.next_working_day(day)
        cursor = cal.opens(day)
    return cursor


def due_at(
    opened: dt.datetime, cal: Calendar, *, mode: str, hours: int, min_left_minutes: int
) -> dt.datetime:
    if mode == "hours":
        return add_business_hours(opened, cal, hours)
    return same_business_day(opened, cal, dt.timedelta(minutes=min_left_minutes))


def time_zone(name: str | None, fallback: str) -> zoneinfo.ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return zoneinfo.ZoneInfo(candidate)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def calendar_for(workspace_id: int, branch: object | None, settings: object) -> Calendar:
    """The calendar a case at ``branch`` (or at none) runs on."""
    from cxloop.accounts.models import Workspace

    from .models import Holiday

    workspace_tz = Workspace.objects.values_list("time_zone", flat=True).get(pk=workspace_id)
    branch_id = getattr(branch, "pk", None)
    tz = time_zone(getattr(branch, "time_zone", "") or None, workspace_tz)
    holidays = Holiday.objects.filter(workspace_id=workspace_id).filter(
        Q(branch__isnull=True) | Q(branch_id=branch_id)
    )
    return Calendar(
        tz=tz,
        day_start=settings.day_start,  # type: ignore[attr-defined]
        day_end=settings.day_end,  # type: ignore[attr-defined]
        workdays=frozenset(settings.working_days()),  # type: ignore[attr-defined]
        holidays=frozenset(holidays.values_list("date", flat=True)),
    )


def days(values: Iterable[str]) -> frozenset[dt.date]:
    return frozenset(dt.date.fromisoformat(v) for v in values)
