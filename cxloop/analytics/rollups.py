"""Keeping the NPS cells (``models.DailyCell``/``HourlyCell``) equal to the raw responses.

* A change marks its (survey, local day) dirty: ``post_save``/``post_delete`` of ``Response``
  (``receivers.py``, the old day too when ``answered_at`` or the survey changed) and the batch
  import (``surveys.importing`` calls ``mark_responses`` after its raw INSERT). Any other writer
  that bypasses ``save()``/``delete()`` must call ``mark_responses`` or ``mark_days`` (or the
  rebuild).
* ``refresh`` recomputes dirty days from the raw responses (delete + insert the day's cells) —
  run by the Celery beat entry ``analytics-refresh`` and the embedded dispatcher's heartbeat;
  the API refreshes a few pending days itself before answering (``prepare``).
* ``rebuild`` recomputes every cell of a workspace (``cxloop analytics_rebuild``); it runs
  by itself the first time a workspace is read, and when the workspace's time zone changed.

The reason cells of the pain map and key drivers (``reasons.py``) are marked with the same
days (``ReasonDirtyDay``, also by a case's reasons, a comment's codes and a change of
thresholds, ``receivers.py``) but recomputed by the heartbeat only (``reasons.refresh``, in
``tick``), never inside a request: their readers take dirty days from the raw answers.

Only surveys whose score question is NPS get cells; test answers and answers without a score
are left out. The local day and hour are those of the workspace's time zone, computed by the
database (``AT TIME ZONE`` on PostgreSQL; Django's Python functions on SQLite).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import ExtractHour, TruncDate

from cxloop.accounts.models import Workspace
from cxloop.core import bulk, clock
from cxloop.surveys.models import Response, Survey

from . import reasons
from .models import (
    DAILY_KINDS,
    HOURLY_KINDS,
    SCORES,
    DailyCell,
    DirtyDay,
    HourlyCell,
    MonthlyCell,
    NpsThresholds,
    ReasonCell,
    ReasonDirtyDay,
    RollupState,
)

log = logging.getLogger(__name__)

# The response column of each cell kind.
KIND_COLUMN = {
    "branch": "branch_id",
    "employee": "employee_id",
    "product": "product_id",
    "channel": "channel_id",
    "touchpoint": "touchpoint_id",
    "segment": "customer__segment",
}
# A workspace never rolled up is rebuilt inline when it has at most this many responses.
INLINE_REBUILD = 50_000
CREATE_BATCH = 2000


def tz_of(workspace: Workspace) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(workspace.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def is_nps(survey: Survey) -> bool:
    from cxloop.surveys.render import definition_of

    try:
        return definition_of(survey).score_question.type == "nps"
    except Exception:  # an invalid definition has no score question to count
        return False


def thresholds(survey_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """{survey id: (promoter_min, detractor_max)}, 9 / 6 where a survey sets none."""
    ids = list(survey_ids)
    found = {
        t.survey_id: (t.promoter_min, t.detractor_max)
        for t in NpsThresholds.objects.filter(survey_id__in=ids)
    }
    return {pk: found.get(pk, (9, 6)) for pk in ids}


def nps_survey_ids(workspace: Workspace) -> list[int]:
    return [s.pk for s in Survey.objects.filter(workspace=workspace).order_by("pk") if is_nps(s)]


# --------------------------------------------------------------------------- marking


def mark_days(items: Iterable[tuple[int, int, dt.date]]) -> None:
    """Mark (workspace id, survey id, local day) triples dirty (a new token for each)."""
    now = clock.now()
    rows = {
        (survey_id, day): DirtyDay(
            workspace_id=workspace_id,
            survey_id=survey_id,
            day=day,
            token=secrets.token_hex(8),
            marked_at=now,
        )
        for workspace_id, survey_id, day in items
    }
    if rows:
        DirtyDay.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["survey_id", "day"],
            update_fields=["token", "marked_at"],
        )
        reasons.mark_days((row.workspace_id, row.survey_id, row.day) for row in rows.values())


_zone_cache: dict[int, tuple[str, zoneinfo.ZoneInfo]] = {}


def _zone(workspace_id: int) -> zoneinfo.ZoneInfo:
    name = Workspace.objects.filter(pk=workspace_id).values_list("time_zone", flat=True).first()
    cached = _zone_cache.get(workspace_id)
    if cached is None or cached[0] != name:
        try:
            zone = zoneinfo.ZoneInfo(name or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo("UTC")
        _zone_cache[workspace_id] = cached = (name or "UTC", zone)
    return cached[1]


def mark_responses(rows: Sequence[Any], workspace: Workspace | None = None) -> None:
    """Mark the days of these responses (anything with workspace_id, survey_id, answered_at);
    ``workspace``: the one they all belong to, which saves looking up its time zone."""
    zones: dict[int, zoneinfo.ZoneInfo] = {}
    if workspace is not None:
        zones[workspace.pk] = tz_of(workspace)
    items: set[tuple[int, int, dt.date]] = set()
    for row in rows:
        if row.answered_at is None or row.survey_id is None:
            continue
        zone = zones.get(row.workspace_id)
        if zone is None:
            zone = zones[row.workspace_id] = _zone(row.workspace_id)
        items.add((row.workspace_id, row.survey_id, row.answered_at.astimezone(zone).date()))
    mark_days(items)


# --------------------------------------------------------------------------- computing


def _histogram() -> dict[str, Any]:
    return {f"s{i}": Count("id", filter=Q(score=i)) for i in SCORES}


def _counted(workspace: Workspace) -> QuerySet[Response]:
    return Response.objects.filter(workspace=workspace, is_test=False, score__isnull=False)


def _cells(
    workspace: Workspace, qs: QuerySet[Response], zone: zoneinfo.ZoneInfo
) -> tuple[list[DailyCell], list[HourlyCell]]:
    """The cells of the responses in ``qs``, grouped by local day (and hour)."""
    base = qs.annotate(
        local_day=TruncDate("answered_at", tzinfo=zone),
        local_hour=ExtractHour("answered_at", tzinfo=zone),
    )
    daily: list[DailyCell] = []
    hourly: list[HourlyCell] = []
    for kind in DAILY_KINDS:
        column = KIND_COLUMN.get(kind)
        for with_hour in (False, True) if kind in HOURLY_KINDS else (False,):
            group = ["survey_id", "local_day"]
            if with_hour:
                group.append("local_hour")
            if column:
                group.append(column)
            # Keyed in Python: "no customer" and a blank segment are one cell.
            merged: dict[tuple[Any, ...], list[int]] = {}
            for row in base.values(*group).annotate(**_histogram()).order_by():
                value = row[column] if column else None
                if kind == "segment":
                    value = value or ""
                hour = row["local_hour"] if with_hour else None
                key = (row["survey_id"], row["local_day"], hour, value)
                counts = merged.setdefault(key, [0] * len(SCORES))
                for i in SCORES:
                    counts[i] += row[f"s{i}"]
            for (survey_id, day, hour, value), counts in merged.items():
                fields: dict[str, Any] = {
                    "workspace_id": workspace.pk,
                    "survey_id": survey_id,
                    "day": day,
                    "kind": kind,
                    "segment": value if kind == "segment" else "",
                    "entity_id": value if kind != "segment" else None,
                    **{f"s{i}": counts[i] for i in SCORES},
                }
                if with_hour:
                    hourly.append(HourlyCell(hour=hour, **fields))
                else:
                    daily.append(DailyCell(**fields))
    return daily, hourly


def _day_bounds(day: dt.date, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """A UTC range surely holding every instant of the local ``day`` (a day wider each side;
    the exact day is then picked by the local date the database computes)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone) - dt.timedelta(days=1)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start, end + dt.timedelta(days=1)


def day_answers(workspace: Workspace, survey_id: int, day: dt.date) -> QuerySet[Response]:
    """The counted answers of a survey on a local day."""
    zone = tz_of(workspace)
    start, end = _day_bounds(day, zone)
    return (
        _counted(workspace)
        .filter(survey_id=survey_id, answered_at__gte=start, answered_at__lt=end)
        .annotate(analytics_day=TruncDate("answered_at", tzinfo=zone))
        .filter(analytics_day=day)
    )


def claim(model: Any, mark: Any) -> bool:
    """Lock a dirty-day mark for its recomputation (inside a transaction); False when another
    process is recomputing that day now, or has done it, or the day was marked again since.

    Without it two refreshes of one day (two heartbeats: the dispatcher's and Celery beat's, or
    two workers) would both delete the old cells and both insert new ones: under PostgreSQL's READ COMMITTED the
    second DELETE does not see the first's new rows, and the day would count twice. SQLite
    has no row locks and needs none: it runs one writing transaction at a time."""
    return (
        model.objects.select_for_update(skip_locked=True)
        .filter(pk=mark.pk, token=mark.token)
        .values_list("pk", flat=True)
        .first()
        is not None
    )


def month_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """[first day, first day of the next month) of the month holding ``day``."""
    start = day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following


def _months(daily: Iterable[DailyCell]) -> list[MonthlyCell]:
    """The daily cells summed per (survey, month, kind, entity, segment)."""
    sums: dict[tuple[Any, ...], list[int]] = {}
    for cell in daily:
        key = (cell.workspace_id, cell.survey_id, cell.day.replace(day=1), cell.kind,
               cell.entity_id, cell.segment)  # fmt: skip
        counts = sums.get(key)
        if counts is None:
            counts = sums[key] = [0] * len(SCORES)
        for i in SCORES:
            counts[i] += getattr(cell, f"s{i}")
    return [
        MonthlyCell(
            workspace_id=workspace_id, survey_id=survey_id, day=month, kind=kind,
            entity_id=entity_id, segment=segment, **{f"s{i}": counts[i] for i in SCORES},
        )
        for (workspace_id, survey_id, month, kind, entity_id, segment), counts in sums.items()
    ]  # fmt: skip


def _refresh_month(survey_id: int, day: dt.date) -> None:
    """Recompute the monthly cells of the survey's month holding ``day`` from its daily cells.

    The caller holds the workspace's ``RollupState`` row: two days of one month recomputed at
    once by two processes would otherwise both insert the month (the second DELETE would not
    see the first's new rows under READ COMMITTED)."""
    start, end = month_of(day)
    MonthlyCell.objects.filter(survey_id=survey_id, day=start).delete()
    sums = (
        DailyCell.objects.filter(survey_id=survey_id, day__gte=start, day__lt=end)
        .values("workspace_id", "kind", "entity_id", "segment")
        .annotate(**{f"t{i}": Sum(f"s{i}") for i in SCORES})
        .order_by()
    )
    months = [
        MonthlyCell(
            workspace_id=row["workspace_id"], survey_id=survey_id, day=start, kind=row["kind"],
            entity_id=row["entity_id"], segment=row["segment"],
            **{f"s{i}": row[f"t{i}"] or 0 for i in SCORES},
        )
        for row in sums
    ]  # fmt: skip
    bulk.insert(MonthlyCell, months, batch_size=CREATE_BATCH)


def _refresh_day(dirty: DirtyDay, workspace: Workspace | None) -> bool:
    with transaction.atomic():
        if not claim(DirtyDay, dirty):
            return False
        # One month's recomputation at a time per workspace (``_refresh_month``); a process
        # that finds the workspace busy leaves the day for a later step (readers take dirty
        # days from the raw answers meanwhile).
        held = (
            RollupState.objects.select_for_update(skip_locked=True)
            .filter(workspace_id=dirty.workspace_id)
            .values_list("pk", flat=True)
            .first()
        )
        if held is None and RollupState.objects.filter(workspace_id=dirty.workspace_id).exists():
            return False
        DailyCell.objects.filter(survey_id=dirty.survey_id, day=dirty.day).delete()
        HourlyCell.objects.filter(survey_id=dirty.survey_id, day=dirty.day).delete()
        survey = Survey.objects.filter(pk=dirty.survey_id).first()
        if workspace is not None and survey is not None and is_nps(survey):
            zone = tz_of(workspace)
            qs = day_answers(workspace, survey.pk, dirty.day)
            daily, hourly = _cells(workspace, qs, zone)
            bulk.insert(DailyCell, daily, batch_size=CREATE_BATCH)
            bulk.insert(HourlyCell, hourly, batch_size=CREATE_BATCH)
        _refresh_month(dirty.survey_id, dirty.day)
        DirtyDay.objects.filter(pk=dirty.pk, token=dirty.token).delete()
    return True


def rebuild(workspace: Workspace, with_reasons: bool = True) -> dict[str, int]:
    """Recompute every cell of the workspace from its raw responses (one transaction).

    ``with_reasons=False`` (the inline rebuild of a request): the reason cells, a pass over
    each day's answers in Python, are left to the heartbeat (their days marked dirty)."""
    zone = tz_of(workspace)
    with transaction.atomic():
        started = clock.now()
        DirtyDay.objects.filter(workspace_id=workspace.pk, marked_at__lte=started).delete()
        DailyCell.objects.filter(workspace=workspace).delete()
        MonthlyCell.objects.filter(workspace=workspace).delete()
        HourlyCell.objects.filter(workspace=workspace).delete()
        ReasonCell.objects.filter(workspace=workspace).delete()
        qs = _counted(workspace).filter(survey_id__in=nps_survey_ids(workspace))
        daily, hourly = _cells(workspace, qs, zone)
        bulk.insert(DailyCell, daily, batch_size=CREATE_BATCH)
        bulk.insert(MonthlyCell, _months(daily), batch_size=CREATE_BATCH)
        bulk.insert(HourlyCell, hourly, batch_size=CREATE_BATCH)
        # The reason cells day by day (a day's customer sets at a time, not the workspace's).
        ReasonDirtyDay.objects.filter(workspace_id=workspace.pk, marked_at__lte=started).delete()
        reason_cells = 0
        days = [(workspace.pk, c.survey_id, c.day) for c in daily if c.kind == "all"]
        if not with_reasons:
            reasons.mark_days(days)
        for _workspace_id, survey_id, day in days if with_reasons else ():
            reason_cells += reasons.build(workspace, day_answers(workspace, survey_id, day), zone)
        RollupState.objects.update_or_create(
            workspace=workspace,
            defaults={"time_zone": workspace.time_zone or "UTC", "built_at": started},
        )
    log.info(
        "analytics rollups rebuilt: workspace=%s daily=%s hourly=%s reasons=%s",
        workspace.pk, len(daily), len(hourly), reason_cells,
    )  # fmt: skip
    return {"daily": len(daily), "hourly": len(hourly), "reasons": reason_cells}


def is_built(workspace: Workspace) -> bool:
    state = RollupState.objects.filter(workspace=workspace).first()
    return state is not None and state.time_zone == (workspace.time_zone or "UTC")


def refresh(workspace: Workspace | None = None, limit: int = 500) -> int:
    """Recompute up to ``limit`` dirty days (of one workspace, or of all); how many were.

    Workspaces never rolled up, or whose time zone changed, are rebuilt first."""
    done = 0
    workspaces = [workspace] if workspace is not None else None
    if workspaces is None:
        stale = Workspace.objects.exclude(pk__in=RollupState.objects.values("workspace_id")).only(
            "pk", "time_zone"
        )
        changed = [
            s.workspace
            for s in RollupState.objects.select_related("workspace")
            if s.time_zone != (s.workspace.time_zone or "UTC")
        ]
        workspaces = [*stale, *changed]
        for item in workspaces:
            rebuild(item)
        workspaces = None
    elif not is_built(workspace):  # type: ignore[arg-type]
        rebuild(workspace)  # type: ignore[arg-type]
    dirty = DirtyDay.objects.order_by("marked_at")
    if workspace is not None:
        dirty = dirty.filter(workspace_id=workspace.pk)
    cache: dict[int, Workspace | None] = {}
    for day in list(dirty[:limit]):
        if day.workspace_id not in cache:
            cache[day.workspace_id] = Workspace.objects.filter(pk=day.workspace_id).first()
        done += _refresh_day(day, cache[day.workspace_id])
    return done


def prepare(workspace: Workspace) -> bool:
    """Whether the workspace's cells can be read: built (a small workspace never rolled up is
    built now). ``False``: a rebuild is pending, and the caller reads raw responses.

    A request never recomputes dirty days (a write in a GET, which under a steady stream of
    answers would make requests queue behind each other and the heartbeat): the readers take
    the days of ``dirty_days`` from the raw answers until the heartbeat has recomputed them."""
    if not is_built(workspace):
        if _counted(workspace).count() > INLINE_REBUILD:
            return False
        rebuild(workspace, with_reasons=False)
    return True


def dirty_days(
    survey_ids: Sequence[int], first: dt.date | None, last: dt.date | None
) -> list[dt.date]:
    """The days of [first, last) whose NPS cells are not current (any of these surveys): the
    readers take them from the raw answers until the heartbeat recomputes them."""
    return marked_days(DirtyDay, survey_ids, first, last)


def marked_days(
    model: Any, survey_ids: Sequence[int], first: dt.date | None, last: dt.date | None
) -> list[dt.date]:
    """The days of [first, last) marked in ``model`` (``DirtyDay``/``ReasonDirtyDay``)."""
    qs = model.objects.filter(survey_id__in=list(survey_ids))
    if first is not None:
        qs = qs.filter(day__gte=first)
    if last is not None:
        qs = qs.filter(day__lt=last)
    return sorted(set(qs.values_list("day", flat=True)))


def tick(now: dt.datetime | None = None) -> dict[str, int]:
    """The heartbeat's step: mark the days of comments coded since the last step (their codes
    are bulk-created without signals), recompute dirty days (and rebuild new workspaces)."""
    coded = reasons.reconcile(now)
    if coded:
        log.info("analytics: %s comments coded since the last step, their days marked", coded)
    days = refresh()
    reason_days = reasons.refresh()
    if reason_days:
        log.info("analytics: reason cells of %s days recomputed", reason_days)
    return {"analytics_days": days}
