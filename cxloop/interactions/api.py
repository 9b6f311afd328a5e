"""``/api/v1/interactions``: ingest one or a batch (idempotent); list; fetch one."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status

from cxloop.core.api import (
    BatchIn,
    BatchOut,
    Invalid,
    ListParams,
    Page,
    batch_answer,
    batch_docs,
    check_batch_size,
    iso,
    list_page,
    require_scope,
)

from .models import Interaction
from .schemas import InteractionIn, InteractionOut
from .services import ingest_interactions

router = Router()

FIELDS = ("id", "source", "external_id", "customer__external_id", "type", "occurred_at",
          "touchpoint__code", "branch__code", "employee__code", "product__code", "channel__code",
          "attributes", "created_at")  # fmt: skip
RENAMES = {
    "customer__external_id": "customer",
    "touchpoint__code": "touchpoint",
    "branch__code": "branch",
    "employee__code": "employee",
    "product__code": "product",
    "channel__code": "channel",
}


def serialise(row: dict[str, Any]) -> dict[str, Any]:
    out = {RENAMES.get(k, k): v for k, v in row.items() if k != "id"}
    out["occurred_at"] = iso(row["occurred_at"])
    out["created_at"] = iso(row["created_at"])
    return out


def _one(workspace: Any, source: str, external_id: str) -> dict[str, Any] | None:
    row = (
        Interaction.objects.filter(workspace=workspace, source=source, external_id=external_id)
        .values(*FIELDS)
        .first()
    )
    return serialise(row) if row else None


@router.post(
    "",
    response={200: InteractionOut, 201: InteractionOut},
    summary="Record one interaction",
    description="201 when recorded; 200 with the stored interaction when (source, external_id) "
    "was already there (nothing changes).",
)
def post_interaction(request: HttpRequest, payload: InteractionIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    workspace = request.workspace  # type: ignore[attr-defined]
    result = ingest_interactions(workspace, [payload.model_dump(exclude_unset=True)])
    if result.rejected:
        raise Invalid("the interaction is not valid", result.errors[0]["errors"])
    answer = _one(workspace, payload.source, payload.external_id)
    assert answer is not None
    return Status(201 if result.accepted else 200, answer)


@router.post(
    "/batch",
    response=BatchOut,
    summary="Record up to 10,000 interactions",
    openapi_extra=batch_docs("InteractionIn"),
    description="Each item is accepted, a duplicate (its source and external_id exist: nothing "
    "changes) or rejected; `errors` gives the index of each rejected item and its reasons.",
)
def post_interactions_batch(request: HttpRequest, payload: BatchIn) -> dict[str, Any]:
    require_scope(request, "ingest")
    check_batch_size(payload.items)
    result = ingest_interactions(request.workspace, payload.items)  # type: ignore[attr-defined]
    return batch_answer(result)


@router.get("", response=Page, summary="List interactions by occurred_at")
def list_interactions(request: HttpRequest, params: Query[ListParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = request.workspace  # type: ignore[attr-defined]
    qs = Interaction.objects.filter(workspace=workspace).values(*FIELDS)
    rows, cursor = list_page(qs, "occurred_at", params, workspace.time_zone)
    return {"items": [serialise(r) for r in rows], "next": cursor}


@router.get("/{source}/{external_id}", response={200: InteractionOut, 404: dict[str, str]})
def get_interaction(request: HttpRequest, source: str, external_id: str) -> Any:
    require_scope(request, "read")
    answer = _one(request.workspace, source, external_id)  # type: ignore[attr-defined]
    if answer is None:
        return Status(404, {"detail": f"no interaction {source}:{external_id}"})
    return Status(200, answer)
