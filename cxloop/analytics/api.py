"""``/api/v1/analytics``: NPS by dimension and the NPS trend (key scope ``read``). Validates
and delegates to ``queries.nps``; a query it cannot answer is a 422 naming the parameter."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from cxloop.accounts.models import Workspace
from cxloop.core.api import Invalid, check_aware, require_scope
from cxloop.surveys.models import Survey

from . import rollups
from .initiatives import in_period
from .queries import ENTITY_DIMENSIONS, NpsQuery, QueryError, nps, payload, stats_payload
from .schemas import NpsOut, NpsParams, TrendOut, TrendParams

router = Router()
TREND_STEPS = ("day", "week", "month")


def _invalid(field: str, message: str) -> Invalid:
    return Invalid("the request is not valid", {field: [message]})


def _survey(workspace: Workspace, code: str | None) -> Survey | None:
    if code is None:
        return None
    survey = Survey.objects.filter(workspace=workspace, code=code).first()
    if survey is None:
        raise _invalid("survey", f"no survey with code {code!r}")
    return survey


def _filters(params: NpsParams | TrendParams) -> dict[str, list[str]]:
    return {
        dim: [v.strip() for v in value.split(",") if v.strip()]
        for dim in ENTITY_DIMENSIONS
        if (value := getattr(params, dim)) is not None
    }


@router.get("/nps", response=NpsOut, summary="NPS overall and by up to two dimensions")
def nps_view(request: HttpRequest, params: Query[NpsParams]) -> dict[str, Any]:
    """`confidence` 0.95, adjusted-Wald intervals; each group with at least `min_n` answers
    is tested one-sided against the rest (`p_value`, before the Benjamini-Hochberg
    correction at FDR 0.05 that decides `below_average`)."""
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    check_aware(params)
    survey = _survey(workspace, params.survey)
    group_by = tuple(d.strip() for d in (params.group_by or "").split(",") if d.strip())
    filters = _filters(params)
    query = NpsQuery(
        workspace=workspace,
        survey=survey,
        since=params.since,
        until=params.until,
        group_by=group_by,
        filters=filters,
        min_n=params.min_n,
    )
    try:
        return payload(nps(query))
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None


def period_start(key: str) -> dt.date:
    """The first day of a period key of ``queries.nps``: "2026-04-07", "2026-W14" (its
    Monday), "2026-04" (the 1st)."""
    if "-W" in key:
        year, week = key.split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 1)
    if len(key) == 7:
        return dt.date.fromisoformat(f"{key}-01")
    return dt.date.fromisoformat(key)


@router.get("/trend", response=TrendOut, summary="NPS per day, week or month")
def trend_view(request: HttpRequest, params: Query[TrendParams]) -> dict[str, Any]:
    """One point per local day, ISO week or month with answers (the numbers of `/nps` with
    `group_by` set to `every`), each with its 95 % adjusted-Wald interval, and the
    initiatives dated in the period whose scope meets the filters."""
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    check_aware(params)
    if params.every not in TREND_STEPS:
        raise _invalid("every", f"every must be one of {', '.join(TREND_STEPS)}")
    survey = _survey(workspace, params.survey)
    filters = _filters(params)
    query = NpsQuery(
        workspace=workspace,
        survey=survey,
        since=params.since,
        until=params.until,
        group_by=(params.every,),
        filters=filters,
    )
    try:
        result = nps(query)
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None
    points = [
        {
            "period": str(group.key[params.every]),
            "start": period_start(str(group.key[params.every])),
            **stats_payload(group.stats),
        }
        for group in result.groups
    ]
    zone = rollups.tz_of(workspace)
    first = params.since.astimezone(zone).date() if params.since else dt.date.min
    # until is exclusive: its local day counts only when it does not start exactly then.
    last = (
        (params.until - dt.timedelta(microseconds=1)).astimezone(zone).date()
        if params.until
        else dt.date.max
    )
    marks = in_period(
        workspace,
        first,
        last,
        branches=filters.get("branch", ()),
        regions=filters.get("region", ()),
        survey=survey,
    )
    return {
        "confidence": result.confidence,
        "method": result.method,
        "every": params.every,
        "points": points,
        "initiatives": [
            {
                "id": item.pk,
                "name": item.name,
                "description": item.description,
                "date": item.date,
                "branches": sorted(b.code for b in item.branches.all()),
                "products": sorted(p.code for p in item.products.all()),
                "survey": item.survey.code if item.survey is not None else None,
            }
            for item in marks
        ],
    }
