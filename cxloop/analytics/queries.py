"""NPS by dimension: reads the rollup cells where they answer the question, else the raw
responses; statistics from ``stats.py`` (adjusted-Wald interval, below-average test with
Benjamini-Hochberg). The API (``api.py``) and the dashboards call ``nps``.

Where the numbers come from (``docs/analytics-api.md``):

* one entity dimension kind (branch/region, employee/team, product, channel,
  touchpoint/stage, segment) among the grouping and the filters, or none, and whole local days:
  daily cells (``hour``: hourly cells, which have no employee kind), and monthly cells for the
  whole months among those days when no time dimension needs the day (``_spans``);
* the parts of ``since``/``until`` that are not whole local days: raw responses;
* two different entity kinds (branch x product, or a filter on employees grouped by branch),
  ``hour`` with employees/teams, or rollups not current (``rollups.prepare``): raw responses,
  grouped by the database — correct, but slower on big workspaces.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import (
    ExtractHour,
    ExtractIsoWeekDay,
    ExtractIsoYear,
    ExtractMonth,
    ExtractWeek,
    ExtractYear,
    TruncDate,
)

from cxloop.accounts.models import Workspace
from cxloop.organisation.models import (
    Branch,
    Channel,
    Employee,
    Product,
    Region,
    Stage,
    Team,
    Touchpoint,
)
from cxloop.surveys.models import Response, Survey

from . import reasons, rollups
from .models import HOURLY_KINDS, SCORES, DailyCell, HourlyCell, MonthlyCell
from .stats import NpsStats, below_average, nps_interval

__all__ = [
    "DIMENSIONS",
    "ENTITY_DIMENSIONS",
    "TIME_DIMENSIONS",
    "Group",
    "NpsQuery",
    "NpsResult",
    "QueryError",
    "nps",
    "nps_many",
    "payload",
    "stats_payload",
]

DIMENSIONS: tuple[str, ...] = (
    "region", "branch", "team", "employee", "product", "channel", "touchpoint", "stage",
    "segment", "weekday", "hour", "day", "week", "month",
)  # fmt: skip
TIME_DIMENSIONS = ("weekday", "hour", "day", "week", "month")
ENTITY_DIMENSIONS = tuple(d for d in DIMENSIONS if d not in TIME_DIMENSIONS)
# The cell kind each entity dimension is read from.
BASE_KIND = {
    "region": "branch",
    "branch": "branch",
    "team": "employee",
    "employee": "employee",
    "product": "product",
    "channel": "channel",
    "touchpoint": "touchpoint",
    "stage": "touchpoint",
    "segment": "segment",
}
FDR = 0.05
METHOD = "adjusted-wald"

Key = dict[str, str | int | None]


class QueryError(ValueError):
    """A query that cannot be answered; ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class NpsQuery:
    workspace: Workspace
    survey: Survey | None = None  # None: every NPS survey of the workspace
    since: dt.datetime | None = None  # aware, inclusive
    until: dt.datetime | None = None  # aware, exclusive
    group_by: tuple[str, ...] = ()  # 0-2 of DIMENSIONS
    # {"region": ["R1"], "employee": [...]}: codes (segment: values); several dimensions AND
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    min_n: int = 30
    confidence: float = 0.95


@dataclass(frozen=True)
class Group:
    key: Key
    stats: NpsStats
    p_value: float | None
    below_average: bool


@dataclass(frozen=True)
class NpsResult:
    overall: NpsStats
    groups: list[Group]
    confidence: float
    method: str = METHOD


# --------------------------------------------------------------------------- validation


def _validate(query: NpsQuery) -> None:
    if len(query.group_by) > 2:
        raise QueryError("group_by", "group by at most two dimensions")
    for dim in query.group_by:
        if dim not in DIMENSIONS:
            raise QueryError(
                "group_by", f"unknown dimension {dim!r}; one of {', '.join(DIMENSIONS)}"
            )
    if len(set(query.group_by)) != len(query.group_by):
        raise QueryError("group_by", "a dimension is named twice")
    for dim in query.filters:
        if dim not in ENTITY_DIMENSIONS:
            raise QueryError(
                dim, f"cannot filter by {dim!r}; one of {', '.join(ENTITY_DIMENSIONS)}"
            )
    for name in ("since", "until"):
        value = getattr(query, name)
        if value is not None and value.tzinfo is None:
            raise QueryError(name, f"{name} needs a time-zone offset")
    if query.since and query.until and query.since >= query.until:
        raise QueryError("until", "until must be after since")
    if query.min_n < 0:
        raise QueryError("min_n", "min_n must not be negative")
    if not 0.0 < query.confidence < 1.0:
        raise QueryError("confidence", "confidence must lie strictly between 0 and 1")
    if query.survey is not None:
        if query.survey.workspace_id != query.workspace.pk:
            raise QueryError("survey", "no such survey in this workspace")
        if not rollups.is_nps(query.survey):
            raise QueryError("survey", f"survey {query.survey.code!r} is not an NPS survey")


# --------------------------------------------------------------------------- entities


@dataclass
class _Entities:
    """Code of each id, for the dimensions asked, and the ids a filter allows per kind."""

    codes: dict[str, dict[int, str | None]] = field(default_factory=dict)
    allowed: dict[str, set[Any]] = field(default_factory=dict)


_CODED: dict[str, Any] = {
    "region": Region,
    "branch": Branch,
    "team": Team,
    "employee": Employee,
    "product": Product,
    "channel": Channel,
    "touchpoint": Touchpoint,
    "stage": Stage,
}
# dimension -> (model of the base kind, lookup of the dimension's code from it)
_CODE_OF: dict[str, tuple[Any, str]] = {
    "region": (Branch, "region__code"),
    "branch": (Branch, "code"),
    "team": (Employee, "team__code"),
    "employee": (Employee, "code"),
    "product": (Product, "code"),
    "channel": (Channel, "code"),
    "touchpoint": (Touchpoint, "code"),
    "stage": (Touchpoint, "stage__code"),
}


def _entities(query: NpsQuery, memo: dict[Any, Any] | None = None) -> _Entities:
    """The codes and allowed ids the query needs; ``memo`` shares the lookups between the
    queries of one ``nps_many`` call (one workspace)."""
    memo = {} if memo is None else memo
    found = _Entities()
    workspace = query.workspace
    for dim in query.group_by:
        if dim in _CODE_OF:
            if ("codes", dim) not in memo:
                model, lookup = _CODE_OF[dim]
                memo[("codes", dim)] = dict(
                    model.objects.filter(workspace=workspace).values_list("pk", lookup)
                )
            found.codes[dim] = memo[("codes", dim)]
    for dim, raw_values in query.filters.items():
        values = [str(v) for v in raw_values]
        kind = BASE_KIND[dim]
        if dim == "segment":
            allowed: set[Any] = set(values)
        elif ("allowed", dim, tuple(sorted(values))) in memo:
            allowed = memo[("allowed", dim, tuple(sorted(values)))]
        else:
            known = set(
                _CODED[dim]
                .objects.filter(workspace=workspace, code__in=values)
                .values_list("code", flat=True)
            )
            unknown = sorted(set(values) - known)
            if unknown:
                raise QueryError(dim, f"no {dim} with code(s) {', '.join(map(repr, unknown))}")
            model, lookup = _CODE_OF[dim]
            allowed = set(
                model.objects.filter(workspace=workspace, **{f"{lookup}__in": values}).values_list(
                    "pk", flat=True
                )
            )
            memo[("allowed", dim, tuple(sorted(values)))] = allowed
        previous = found.allowed.get(kind)
        found.allowed[kind] = allowed if previous is None else previous & allowed
    return found


# --------------------------------------------------------------------------- reading


Row = tuple[int, tuple[Any, ...], tuple[int, ...]]  # survey id, raw key parts, histogram


def _time_columns(dim: str, source: str, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """Annotations giving the time dimension ``dim`` (``source``: the cells' ``day``/``hour``
    or the responses' ``answered_at``, converted to the workspace's zone)."""
    if source == "cells":
        day: Any = F("day")
        tz: dict[str, Any] = {}
    else:
        day = F("answered_at")
        tz = {"tzinfo": zone}
    if dim == "weekday":
        return {"g_weekday": ExtractIsoWeekDay(day, **tz)}
    if dim == "hour":
        return {"g_hour": F("hour") if source == "cells" else ExtractHour(day, **tz)}
    if dim == "day":
        return {"g_day": F("day") if source == "cells" else TruncDate(day, **tz)}
    if dim == "week":
        return {"g_wyear": ExtractIsoYear(day, **tz), "g_week": ExtractWeek(day, **tz)}
    return {"g_myear": ExtractYear(day, **tz), "g_month": ExtractMonth(day, **tz)}


def _read(
    qs: QuerySet[Any],
    query: NpsQuery,
    entity_columns: dict[str, str],
    source: str,
    zone: zoneinfo.ZoneInfo,
    histogram: dict[str, Any],
) -> Iterable[Row]:
    annotations: dict[str, Any] = {}
    for dim in query.group_by:
        if dim in TIME_DIMENSIONS:
            annotations.update(_time_columns(dim, source, zone))
    if annotations:
        qs = qs.annotate(**annotations)
    parts: list[list[str]] = []
    for dim in query.group_by:
        if dim in TIME_DIMENSIONS:
            parts.append([a for a in _time_columns(dim, source, zone)])
        else:
            parts.append([entity_columns[BASE_KIND[dim]]])
    columns = list(dict.fromkeys(c for p in parts for c in p))
    for row in qs.values("survey_id", *columns).annotate(**histogram).order_by():
        key = tuple(tuple(row[c] for c in p) for p in parts)
        yield row["survey_id"], key, tuple(row[f"h{i}"] or 0 for i in SCORES)


def _raw(
    query: NpsQuery,
    survey_ids: list[int],
    entities: _Entities,
    since: dt.datetime | None,
    until: dt.datetime | None,
    zone: zoneinfo.ZoneInfo,
) -> Iterable[Row]:
    qs = Response.objects.filter(
        workspace=query.workspace, survey_id__in=survey_ids, is_test=False, score__isnull=False
    )
    if since is not None:
        qs = qs.filter(answered_at__gte=since)
    if until is not None:
        qs = qs.filter(answered_at__lt=until)
    for kind, allowed in entities.allowed.items():
        qs = qs.filter(**{f"{rollups.KIND_COLUMN[kind]}__in": allowed})
    histogram = {f"h{i}": Count("id", filter=Q(score=i)) for i in SCORES}
    return _read(qs, query, rollups.KIND_COLUMN, "raw", zone, histogram)


def _cells(
    query: NpsQuery,
    survey_ids: list[int],
    entities: _Entities,
    kind: str,
    first: dt.date | None,
    last: dt.date | None,
    zone: zoneinfo.ZoneInfo,
    monthly: bool = False,
    skip: Sequence[dt.date] = (),
) -> Iterable[Row]:
    """``monthly``: [first, last) are whole months, read from their monthly cells; ``skip``:
    days left out (read from the raw answers)."""
    if "hour" in query.group_by:
        model: Any = HourlyCell
    elif monthly:
        model = MonthlyCell
    else:
        model = DailyCell
    qs = model.objects.filter(workspace=query.workspace, survey_id__in=survey_ids, kind=kind)
    if first is not None:
        qs = qs.filter(day__gte=first)
    if last is not None:
        qs = qs.filter(day__lt=last)
    if skip and not monthly:
        qs = qs.exclude(day__in=list(skip))
    column = "segment" if kind == "segment" else "entity_id"
    for allowed in entities.allowed.values():
        qs = qs.filter(**{f"{column}__in": allowed})
    histogram = {f"h{i}": Sum(f"s{i}") for i in SCORES}
    return _read(qs, query, dict.fromkeys(rollups.KIND_COLUMN, column), "cells", zone, histogram)


def _midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def _whole_days(
    since: dt.datetime | None, until: dt.datetime | None, zone: zoneinfo.ZoneInfo
) -> tuple[dt.date | None, dt.date | None]:
    """The local days lying wholly in [since, until): [first, last) (None: unbounded)."""
    first = last = None
    if since is not None:
        local = since.astimezone(zone)
        first = local.date()
        if _midnight(first, zone) < since:
            first += dt.timedelta(days=1)
    if until is not None:
        last = until.astimezone(zone).date()
    return first, last


# Time dimensions the monthly cells cannot answer (they need the day).
_DAILY_ONLY = ("weekday", "hour", "day", "week")


def _spans(
    query: NpsQuery, first: dt.date | None, last: dt.date | None, dirty: Sequence[dt.date] = ()
) -> list[tuple[dt.date | None, dt.date | None, bool]]:
    """[start, end) day ranges to read, and whether each is whole months (monthly cells):
    the days before the first whole month, the whole months, the days after them. A month
    holding a ``dirty`` day is read from its daily cells (which leave that day out)."""
    if any(dim in _DAILY_ONLY for dim in query.group_by):
        return [(first, last, False)]
    start = first if first is None or first.day == 1 else rollups.month_of(first)[1]
    end = last if last is None or last.day == 1 else last.replace(day=1)
    if start is not None and end is not None and start >= end:
        return [(first, last, False)]  # no whole month inside
    if (start is None or end is None) and dirty:
        return [(first, last, False)]
    spans: list[tuple[dt.date | None, dt.date | None, bool]] = []

    def add(a: dt.date | None, b: dt.date | None, monthly: bool) -> None:
        if spans and spans[-1][2] == monthly and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b, monthly)
        else:
            spans.append((a, b, monthly))

    if first is not None and start != first:
        add(first, start, False)
    if start is None or end is None:
        add(start, end, True)
    else:
        touched = {day.replace(day=1) for day in dirty}
        month = start
        while month < end:
            following = rollups.month_of(month)[1]
            add(month, following, month not in touched)
            month = following
    if last is not None and end != last:
        add(end, last, False)
    return spans


def _rows(
    query: NpsQuery, survey_ids: list[int], entities: _Entities, prepared: bool
) -> Iterable[Row]:
    """``prepared``: ``rollups.prepare`` said the cells can be read (dirty days aside)."""
    zone = rollups.tz_of(query.workspace)
    kinds = {BASE_KIND[d] for d in (*query.group_by, *query.filters) if d in BASE_KIND}
    kind = next(iter(kinds)) if kinds else "all"
    usable = len(kinds) <= 1 and ("hour" not in query.group_by or kind in HOURLY_KINDS)
    if not usable or not prepared:
        yield from _raw(query, survey_ids, entities, query.since, query.until, zone)
        return
    first, last = _whole_days(query.since, query.until, zone)
    if first is not None and last is not None and first >= last:
        yield from _raw(query, survey_ids, entities, query.since, query.until, zone)
        return
    # Days whose cells the heartbeat has not recomputed yet: from the raw answers.
    dirty = rollups.dirty_days(survey_ids, first, last)
    for start, end, monthly in _spans(query, first, last, dirty):
        yield from _cells(query, survey_ids, entities, kind, start, end, zone, monthly, dirty)
    for start, end in reasons.day_ranges(dirty, zone):
        yield from _raw(query, survey_ids, entities, start, end, zone)
    if first is not None and query.since is not None and _midnight(first, zone) > query.since:
        yield from _raw(query, survey_ids, entities, query.since, _midnight(first, zone), zone)
    if last is not None and query.until is not None and _midnight(last, zone) < query.until:
        yield from _raw(query, survey_ids, entities, _midnight(last, zone), query.until, zone)


# --------------------------------------------------------------------------- keys


def _key_value(dim: str, raw: tuple[Any, ...], entities: _Entities) -> str | int | None:
    if dim in _CODE_OF:
        entity_id = raw[0]
        return None if entity_id is None else entities.codes[dim].get(entity_id)
    if dim == "segment":
        return raw[0] or None
    if dim in ("weekday", "hour"):
        return int(raw[0])
    if dim == "day":
        value = raw[0]
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if dim == "week":
        return f"{int(raw[0]):04d}-W{int(raw[1]):02d}"
    return f"{int(raw[0]):04d}-{int(raw[1]):02d}"  # month


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, value if value is not None else 0) for value in key)


def nps(query: NpsQuery) -> NpsResult:
    """The NPS of the responses the query selects, overall and by ``group_by``."""
    return nps_many([query])[0]


def nps_many(queries: Sequence[NpsQuery]) -> list[NpsResult]:
    """``nps`` of each query, in order, sharing what they have in common: the workspace's NPS
    surveys and thresholds, whether its cells can be read (one ``rollups.prepare``) and the
    entity lookups. The queries belong to one workspace."""
    if not queries:
        return []
    workspace = queries[0].workspace
    for query in queries:
        if query.workspace.pk != workspace.pk:
            raise ValueError("nps_many: the queries belong to one workspace")
        _validate(query)
    all_ids: list[int] | None = None
    if any(query.survey is None for query in queries):
        all_ids = rollups.nps_survey_ids(workspace)
    wanted = set(all_ids or ()) | {q.survey.pk for q in queries if q.survey is not None}
    cuts = rollups.thresholds(sorted(wanted))
    prepared = rollups.prepare(workspace)
    memo: dict[Any, Any] = {}
    return [
        _answer(
            query,
            [query.survey.pk] if query.survey is not None else list(all_ids or ()),
            _entities(query, memo),
            cuts,
            prepared,
        )
        for query in queries
    ]


def _answer(
    query: NpsQuery,
    survey_ids: list[int],
    entities: _Entities,
    cuts: Mapping[int, tuple[int, int]],
    prepared: bool,
) -> NpsResult:
    totals: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for survey_id, raw_key, histogram in _rows(query, survey_ids, entities, prepared):
        promoter_min, detractor_max = cuts[survey_id]
        promoters = sum(histogram[promoter_min:])
        detractors = sum(histogram[: detractor_max + 1])
        passives = sum(histogram) - promoters - detractors
        key = tuple(
            _key_value(dim, part, entities)
            for dim, part in zip(query.group_by, raw_key, strict=True)
        )
        counts = totals[key]
        counts[0] += promoters
        counts[1] += passives
        counts[2] += detractors
    overall = [sum(c[i] for c in totals.values()) for i in range(3)]
    overall_stats = nps_interval(overall[0], overall[1], overall[2], query.confidence)
    groups: list[Group] = []
    if query.group_by:
        triples = {k: (c[0], c[1], c[2]) for k, c in totals.items() if sum(c)}
        tests = below_average(triples, min_n=query.min_n, fdr=FDR)
        for key in sorted(triples, key=_sort_key):
            test = tests[key]
            groups.append(
                Group(
                    key=dict(zip(query.group_by, key, strict=True)),
                    stats=nps_interval(*triples[key], query.confidence),
                    p_value=test.p_value,
                    below_average=test.below_average,
                )
            )
    return NpsResult(overall=overall_stats, groups=groups, confidence=query.confidence)


# --------------------------------------------------------------------------- JSON


def stats_payload(stats: NpsStats) -> dict[str, Any]:
    return {
        "n": stats.n,
        "promoters": stats.promoters,
        "passives": stats.passives,
        "detractors": stats.detractors,
        "nps": stats.nps,
        "ci_low": stats.ci_low,
        "ci_high": stats.ci_high,
    }


def payload(result: NpsResult) -> dict[str, Any]:
    """The API's JSON: STATS of each group flattened next to its key."""
    return {
        "confidence": result.confidence,
        "method": result.method,
        "overall": stats_payload(result.overall),
        "groups": [
            {
                "key": group.key,
                **stats_payload(group.stats),
                "p_value": group.p_value,
                "below_average": group.below_average,
            }
            for group in result.groups
        ],
    }
