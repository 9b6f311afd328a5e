"""``/api/v1/analytics``: NPS by dimension (key scope ``read``). Validates and delegates to
``queries.nps``; a query it cannot answer is a 422 naming the parameter."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from cxloop.accounts.models import Workspace
from cxloop.core.api import Invalid, check_aware, require_scope
from cxloop.surveys.models import Survey

from .queries import ENTITY_DIMENSIONS, NpsQuery, QueryError, nps, payload
from .schemas import NpsOut, NpsParams

router = Router()


def _invalid(field: str, message: str) -> Invalid:
    return Invalid("the request is not valid", {field: [message]})


@router.get("/nps", response=NpsOut, summary="NPS overall and by up to two dimensions")
def nps_view(request: HttpRequest, params: Query[NpsParams]) -> dict[str, Any]:
    """`confidence` 0.95, adjusted-Wald intervals; each group with at least `min_n` answers
    is tested one-sided against the rest (`p_value`, before the Benjamini-Hochberg
    correction at FDR 0.05 that decides `below_average`)."""
    require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    check_aware(params)
    survey = None
    if params.survey is not None:
        survey = Survey.objects.filter(workspace=workspace, code=params.survey).first()
        if survey is None:
            raise _invalid("survey", f"no survey with code {params.survey!r}")
    group_by = tuple(d.strip() for d in (params.group_by or "").split(",") if d.strip())
    filters = {
        dim: [v.strip() for v in value.split(",") if v.strip()]
        for dim in ENTITY_DIMENSIONS
        if (value := getattr(params, dim)) is not None
    }
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
