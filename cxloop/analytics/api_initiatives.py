"""``GET /api/v1/analytics/initiatives`` (key scope ``read``): the workspace's initiatives with
their NPS before and after (``initiatives.effect``, without the reason shares; the web page has
those). Definitions in ``docs/initiatives.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import Field

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.core.api import Invalid, require_scope

from . import rollups
from .initiatives import DEFAULT_WINDOW, WINDOWS, effects
from .models import Initiative
from .queries import stats_payload
from .schemas import NpsStatsOut

router = Router()
LIMIT = 200


class InitiativeParams(Schema):
    window: int = Field(
        default=DEFAULT_WINDOW,
        description="Days in each window, before and after: 14, 30, 60 or 90.",
    )


class InitiativeOut(Schema):
    id: int
    name: str
    description: str
    date: dt.date
    branches: list[str]
    products: list[str]
    survey: str | None
    window_days: int = Field(description="The windows' length, cut so 'after' ends by today.")
    before: NpsStatsOut
    after: NpsStatsOut
    diff: float | None
    z: float
    p_value: float
    verdict: str = Field(description="improved, worsened, no_change, insufficient_data or not_yet.")


@router.get(
    "/initiatives",
    response=list[InitiativeOut],
    summary="Initiatives with their NPS before and after",
)
def initiatives_view(request: HttpRequest, params: Query[InitiativeParams]) -> list[dict[str, Any]]:
    """The newest initiatives first (at most 200), each with the NPS of the ``window`` days
    before its date and after it (95 % adjusted-Wald intervals) and the two-sided test of the
    difference (after minus before)."""
    require_scope(request, "read")
    if params.window not in WINDOWS:
        raise Invalid(
            "the request is not valid",
            {"window": [f"window must be one of {', '.join(map(str, WINDOWS))}"]},
        )
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    today = timezone.localtime(clock.now(), rollups.tz_of(workspace)).date()
    found = (
        Initiative.objects.filter(workspace=workspace)
        .select_related("survey")
        .prefetch_related("branches", "products")
        .order_by("-date", "-pk")[:LIMIT]
    )
    items = list(found)
    for item in items:
        item.workspace = workspace  # known: no query each
    rows = []
    for item, result in zip(items, effects(items, today=today, window=params.window), strict=True):
        rows.append(
            {
                "id": item.pk,
                "name": item.name,
                "description": item.description,
                "date": item.date,
                "branches": sorted(b.code for b in item.branches.all()),
                "products": sorted(p.code for p in item.products.all()),
                "survey": item.survey.code if item.survey is not None else None,
                "window_days": result.windows.days,
                "before": stats_payload(result.before),
                "after": stats_payload(result.after),
                "diff": result.diff,
                "z": result.z,
                "p_value": result.p_value,
                "verdict": result.verdict,
            }
        )
    return rows
