"""``/api/v1/analytics/pain`` and ``/api/v1/analytics/competitors`` (key scope ``read``).

Validates and delegates to ``pain.pain_map`` and ``competitors.compare``; a query they cannot
answer is a 422 naming the parameter. Definitions in ``docs/pain-map.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from cxloop.accounts.models import Workspace
from cxloop.core.api import Invalid, check_aware, require_scope
from cxloop.surveys.models import Survey

from . import competitors, pain
from .queries import QueryError
from .schemas import NpsStatsOut

router = Router()


class PeriodParams(Schema):
    survey: str | None = Field(default=None, description="Survey code; left out: all of them.")
    since: dt.datetime | None = Field(default=None, description="Inclusive, with an offset.")
    until: dt.datetime | None = Field(default=None, description="Exclusive, with an offset.")


class PainParams(PeriodParams):
    every: Literal["week", "month"] = Field(default="week", description="Trend per week or month.")


class TrendOut(Schema):
    period: str
    start: dt.date
    detractors: int
    citing: int
    share: float | None


class AffectedOut(Schema):
    respondents: int
    of_respondents: int
    customers: int
    share: float
    estimate: int
    low: int
    high: int


class ReasonOut(Schema):
    code: str
    label: str
    source: str
    citing: int
    share: float
    share_low: float
    share_high: float
    cumulative: float
    nps_gain: float
    cumulative_gain: float
    affected: AffectedOut | None
    trend: list[TrendOut]


class PainOut(Schema):
    confidence: float
    every: str
    responses: int
    detractors: int
    nps: float | None
    citing_any: int
    respondents: int
    customers: int
    periods: list[TrendOut]
    reasons: list[ReasonOut]


class PairedOut(Schema):
    n: int
    ours: float | None
    theirs: float | None
    diff: float | None
    t: float | None
    p_value: float | None


class CompetitorOut(NpsStatsOut):
    name: str
    users: int
    diff: float | None
    z: float
    p_value: float
    paired: PairedOut


class CompetitorsOut(Schema):
    confidence: float
    method: str
    surveys: list[str]
    ours: NpsStatsOut
    competitors: list[CompetitorOut]


def _invalid(field: str, message: str) -> Invalid:
    return Invalid("the request is not valid", {field: [message]})


def _common(request: HttpRequest, params: PeriodParams) -> tuple[Workspace, Survey | None]:
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    check_aware(params)
    survey = None
    if params.survey is not None:
        survey = Survey.objects.filter(workspace=workspace, code=params.survey).first()
        if survey is None:
            raise _invalid("survey", f"no survey with code {params.survey!r}")
    return workspace, survey


@router.get("/pain", response=PainOut, summary="The pain map: detractors' reasons, ranked")
def pain_view(request: HttpRequest, params: Query[PainParams]) -> dict[str, Any]:
    """Reasons cited by detractors (call-back reason codes and ticked options, once per
    detractor), ranked by the share of detractors citing them, with the cumulative coverage,
    the NPS gain if those detractors became passives, the trend per week or month and the
    customers affected in the base (95 % Wilson interval)."""
    workspace, survey = _common(request, params)
    query = pain.PainQuery(
        workspace=workspace,
        survey=survey,
        since=params.since,
        until=params.until,
        every=params.every,
    )
    try:
        return pain.payload(pain.pain_map(query))
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None


@router.get(
    "/competitors", response=CompetitorsOut, summary="Our NPS against each competitor's NPS"
)
def competitors_view(request: HttpRequest, params: Query[PeriodParams]) -> dict[str, Any]:
    """From surveys with a competitors question: our NPS and each competitor's, with 95 %
    adjusted-Wald intervals; `diff` = ours - theirs with the independent-samples z-test
    (`z`, two-sided `p_value`), and `paired`, the test among those who scored both."""
    workspace, survey = _common(request, params)
    query = competitors.CompetitorQuery(
        workspace=workspace, survey=survey, since=params.since, until=params.until
    )
    try:
        return competitors.payload(competitors.compare(query))
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None
