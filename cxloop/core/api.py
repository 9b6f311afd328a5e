"""Pieces every list and batch endpoint shares."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from ninja import Schema
from ninja.errors import HttpError
from pydantic import Field

from cxloop.core import cursor as cursors
from cxloop.core.validation import BatchResult, aware


class Invalid(Exception):
    """A request whose content is wrong: answered 422 with ``{"detail", "errors"}``."""

    def __init__(self, detail: str, errors: dict[str, list[str]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


NOT_VALID = "the request is not valid"
M = TypeVar("M", bound=Model)


def by_code(model: type[M], workspace: Any, field: str, code: str) -> M:
    """The workspace's row of ``model`` with this code; 422 naming ``field`` when there is
    none (a typo in a filter must not look like "no data")."""
    found = model._default_manager.filter(workspace=workspace, code=code).first()
    if found is None:
        raise Invalid(NOT_VALID, {field: [f"no {field} with code {code!r}"]})
    return found


def check_aware(params: Any) -> None:
    """``since``/``until`` of a read must carry an offset: a list or a figure read by another
    system must not depend on the workspace's time zone setting (unlike ingestion, there is no
    CRM convention to follow). 422 naming each field that lacks one."""
    errors = {
        name: [f"{name} needs a time-zone offset, e.g. 2026-10-01T00:00:00Z or +03:00"]
        for name in ("since", "until")
        if (value := getattr(params, name, None)) is not None and value.tzinfo is None
    }
    if errors:
        raise Invalid("the request is not valid", errors)


def require_scope(request: HttpRequest, scope: str) -> None:
    key = request.api_key  # type: ignore[attr-defined]
    if not key.has_scope(scope):
        raise HttpError(403, f"this API key lacks the {scope!r} scope")


class ListParams(Schema):
    since: dt.datetime | None = Field(default=None, description="Inclusive.")
    until: dt.datetime | None = Field(default=None, description="Exclusive.")
    cursor: str | None = Field(default=None, description="The `next` of the previous page.")
    limit: int = Field(default=100, ge=1, le=1000)


class Page(Schema):
    items: list[dict[str, Any]]
    next: str | None


class BatchIn(Schema):
    # Items are taken as any JSON and checked one by one, so that a bad item is reported by its
    # index instead of failing the whole request; ``batch_docs`` shows what an item is.
    items: list[Any] = Field(description="Up to 10,000 items.")


def batch_docs(item_schema: str) -> dict[str, Any]:
    """``openapi_extra`` for a batch endpoint: its body documented with the item's schema."""
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "maxItems": 10_000,
                "items": {"$ref": f"#/components/schemas/{item_schema}"},
            }
        },
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class BatchOut(Schema):
    accepted: int
    duplicates: int
    rejected: int
    errors: list[dict[str, Any]]


class CustomerBatchOut(BatchOut):
    created: int
    updated: int
    unchanged: int


def check_batch_size(items: list[Any]) -> None:
    limit = settings.API_MAX_BATCH_ITEMS
    if len(items) > limit:
        raise HttpError(413, f"a batch holds at most {limit:,} items; this one has {len(items):,}")


def batch_answer(result: BatchResult, *, customers: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "errors": result.errors,
    }
    if customers:
        answer |= {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
        }
    return answer


def list_page(
    qs: QuerySet[Any], field: str, params: ListParams, tz: str
) -> tuple[list[Any], str | None]:
    if params.since is not None:
        qs = qs.filter(**{f"{field}__gte": aware(params.since, tz)})
    if params.until is not None:
        qs = qs.filter(**{f"{field}__lt": aware(params.until, tz)})
    return cursors.page(qs, field, params.cursor, params.limit)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
