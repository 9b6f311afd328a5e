"""``/api/v1/customers``: upsert by external_id, one or a batch; list; fetch one."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status
from pydantic import ValidationError

from cxloop.core.api import (
    BatchIn,
    CustomerBatchOut,
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
from cxloop.core.validation import error_dict

from .models import Customer
from .schemas import CustomerIn, CustomerOut
from .services import upsert_customer, upsert_customers, validate_customer

router = Router()

FIELDS = ("id", "external_id", "name", "email", "phone", "language", "time_zone", "segment",
          "is_b2b", "account__external_id", "consent", "attributes", "created_at", "updated_at")  # fmt: skip


def serialise(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("id", "account__external_id")}
    out["account"] = row["account__external_id"]
    out["created_at"] = iso(row["created_at"])
    out["updated_at"] = iso(row["updated_at"])
    return out


def _one(workspace: Any, external_id: str) -> dict[str, Any] | None:
    row = (
        Customer.objects.filter(workspace=workspace, external_id=external_id)
        .values(*FIELDS)
        .first()
    )
    return serialise(row) if row else None


@router.post(
    "",
    response={200: CustomerOut, 201: CustomerOut},
    summary="Create or update one customer",
    description="201 when created, 200 when it existed (given fields overwrite, consent and "
    "attributes merge).",
)
def post_customer(request: HttpRequest, payload: CustomerIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    workspace = request.workspace  # type: ignore[attr-defined]
    # Validated again with the workspace's phone region, which ninja does not know.
    try:
        item = validate_customer(workspace, payload.model_dump(exclude_unset=True))
    except ValidationError as exc:
        raise Invalid("the customer is not valid", error_dict(exc)) from None
    _, outcome = upsert_customer(workspace, item)
    answer = _one(workspace, item.external_id)
    assert answer is not None
    return Status(201 if outcome == "created" else 200, answer)


@router.post(
    "/batch",
    response=CustomerBatchOut,
    summary="Upsert up to 10,000 customers",
    openapi_extra=batch_docs("CustomerIn"),
)
def post_customers_batch(request: HttpRequest, payload: BatchIn) -> dict[str, Any]:
    require_scope(request, "ingest")
    check_batch_size(payload.items)
    result = upsert_customers(request.workspace, payload.items)  # type: ignore[attr-defined]
    return batch_answer(result, customers=True)


@router.get("", response=Page, summary="List customers by last change (updated_at)")
def list_customers(request: HttpRequest, params: Query[ListParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = request.workspace  # type: ignore[attr-defined]
    qs = Customer.objects.filter(workspace=workspace).values(*FIELDS)
    rows, cursor = list_page(qs, "updated_at", params, workspace.time_zone)
    return {"items": [serialise(r) for r in rows], "next": cursor}


@router.get("/{external_id}", response={200: CustomerOut, 404: dict[str, str]})
def get_customer(request: HttpRequest, external_id: str) -> Any:
    require_scope(request, "read")
    answer = _one(request.workspace, external_id)  # type: ignore[attr-defined]
    if answer is None:
        return Status(404, {"detail": f"no customer with external_id {external_id!r}"})
    return Status(200, answer)
