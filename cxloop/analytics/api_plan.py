"""``/api/v1/analytics/drivers`` and ``/api/v1/analytics/planner`` (key scope ``read``):
key drivers by Johnson's relative weights and the sample-size planner
(``docs/drivers-and-planner.md``). A parameter it cannot use is a 422 naming it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from cxloop.accounts.models import Workspace
from cxloop.core.api import Invalid, check_aware, require_scope
from cxloop.surveys.models import Survey

from . import drivers, planner, rollups

router = Router()


def _invalid(field: str, message: str) -> Invalid:
    return Invalid("the request is not valid", {field: [message]})


def _surveys(workspace: Workspace, code: str | None) -> list[Survey]:
    """The survey named, or every NPS survey of the workspace."""
    if code is None:
        ids = rollups.nps_survey_ids(workspace)
        return list(Survey.objects.filter(pk__in=ids).order_by("pk"))
    survey = Survey.objects.filter(workspace=workspace, code=code).first()
    if survey is None:
        raise _invalid("survey", f"no survey with code {code!r}")
    return [survey]


class DriversParams(Schema):
    survey: str | None = Field(
        default=None, description="Survey code; left out: every NPS survey of the workspace."
    )
    since: dt.datetime | None = Field(default=None, description="Inclusive, with an offset.")
    until: dt.datetime | None = Field(default=None, description="Exclusive, with an offset.")
    kind: str = Field(
        default="reasons",
        description="reasons: options of multiple-choice questions and the cases' reason "
        "codes; attributes: options of single-choice questions.",
    )


class DriverOut(Schema):
    code: str
    label: str
    weight: float
    share: float
    n_with: int
    mean_with: float
    mean_without: float
    effect: float
    sign: int
    readout: str


class CodeLabel(Schema):
    code: str
    label: str


class DriversOut(Schema):
    n: int
    kind: str
    min_n: int
    method: str
    r2: float | None
    summary: str
    messages: list[str]
    dropped: list[CodeLabel]
    drivers: list[DriverOut]


class PlannerParams(Schema):
    survey: str | None = Field(
        default=None, description="Survey code; left out: every NPS survey of the workspace."
    )
    by: str = Field(default="branch", description=", ".join(planner.DIMENSIONS))
    margin: float = Field(default=5.0, description="± NPS points at 95 %; more than 0, at most 50.")
    per: str = Field(default="month", description="day, week or month")


class PlanRowOut(Schema):
    code: str
    label: str
    responses: int
    nps: float | None
    variance: float
    variance_known: bool
    needed: int
    current: float
    sent: int
    answered: int
    response_rate: float | None
    invitations: int | None
    short: bool


class PlanOut(Schema):
    by: str
    per: str
    margin: float
    confidence: float
    z: float
    window_days: int
    since: dt.datetime
    until: dt.datetime
    short: int
    rows: list[PlanRowOut]


@router.get("/drivers", response=DriversOut, summary="Key drivers of the score")
def drivers_view(request: HttpRequest, params: Query[DriversParams]) -> dict[str, Any]:
    """Johnson's relative weights of each reason for the score: `share` of the model's `r2`
    in %, `effect` = mean score citing it - mean score not citing it. Needs at least `min_n`
    scored responses; reasons every response (or none) cites are listed in `dropped`."""
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    check_aware(params)
    if params.since and params.until and params.since >= params.until:
        raise _invalid("until", "until must be after since")
    if params.kind not in drivers.KINDS:
        raise _invalid("kind", f"one of {', '.join(drivers.KINDS)}")
    surveys = _surveys(workspace, params.survey)
    result = drivers.key_drivers(
        workspace, surveys, since=params.since, until=params.until, kind=params.kind
    )
    return drivers.payload(result)


@router.get("/planner", response=PlanOut, summary="Answers needed per segment")
def planner_view(request: HttpRequest, params: Query[PlannerParams]) -> dict[str, Any]:
    """For each segment of `by`: the answers `needed` per `per` for an NPS within ± `margin`
    points (95 %, adjusted Wald, the segment's variance over the last 90 days), the `current`
    answers per period, the response rate and the `invitations` to send per period."""
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    if params.by not in planner.DIMENSIONS:
        raise _invalid(
            "by", f"unknown dimension {params.by!r}; one of {', '.join(planner.DIMENSIONS)}"
        )
    if params.per not in planner.PERIODS:
        raise _invalid("per", f"one of {', '.join(planner.PERIODS)}")
    if not 0 < params.margin <= planner.MAX_MARGIN:
        raise _invalid("margin", "more than 0 and at most 50 NPS points")
    surveys = _surveys(workspace, params.survey)
    if params.survey is not None and not rollups.is_nps(surveys[0]):
        raise _invalid("survey", f"survey {params.survey!r} is not an NPS survey")
    result = planner.plan(workspace, surveys, by=params.by, margin=params.margin, per=params.per)
    return planner.payload(result)
