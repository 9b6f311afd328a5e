"""Time: the customer's time zone and the next moment inside a send window (DST-safe)."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from .definition import SendWindow


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def local_zone(*names: str | None) -> zoneinfo.ZoneInfo:
    """The first valid zone of ``names`` (customer's, branch's, workspace's), else UTC."""
    for name in names:
        found = zone(name or "")
        if found is not None:
            return found
    return zoneinfo.ZoneInfo("UTC")


def next_send_time(
    at: dt.datetime, window: SendWindow | None, tz: zoneinfo.ZoneInfo
) -> dt.datetime:
    """``at`` if it falls inside the window in ``tz``, else the window's next start (in UTC).

    Local wall-clock times are turned into instants by zoneinfo, so a window start on the day
    clocks change is the right instant; a start that does not exist that day (inside the
    spring-forward gap) moves to the first valid moment after the gap.
    """
    if window is None:
        return at
    local = at.astimezone(tz)
    now_local = local.time().replace(tzinfo=None)
    if window.start <= now_local < window.end:
        return at
    day = local.date() if now_local < window.start else local.date() + dt.timedelta(days=1)
    start = dt.datetime.combine(day, window.start, tzinfo=tz)
    # Round-trip through UTC: a non-existent local time comes back as the valid one after it.
    utc = start.astimezone(dt.UTC)
    if utc.astimezone(tz).replace(tzinfo=None) < start.replace(tzinfo=None):
        utc = start.replace(fold=1).astimezone(dt.UTC)
    return utc


def local_day(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.date:
    return at.astimezone(tz).date()


def day_bounds(day: dt.date, tz: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where local ``day`` starts and ends (23 or 25 hours on DST days)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
    return start, end
