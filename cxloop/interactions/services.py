"""Ingesting interactions: validate, resolve codes, insert once.

Idempotency is the database's job: the unique (workspace, source, external_id) constraint and
``INSERT … ON CONFLICT DO NOTHING RETURNING`` tell exactly which items were new, even when two
requests carry the same interaction at the same moment.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from pydantic import ValidationError

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.core.validation import BatchResult, aware, error_dict
from cxloop.customers.models import Customer
from cxloop.organisation.models import Branch, Channel, Employee, Product, Touchpoint

from .models import Interaction
from .schemas import InteractionIn

# How far ahead of the server clock an occurred_at may be (clock skew between systems).
FUTURE_TOLERANCE = dt.timedelta(hours=24)
INSERT_CHUNK = 1000

CODED: dict[str, type[Model]] = {
    "touchpoint": Touchpoint,
    "branch": Branch,
    "employee": Employee,
    "product": Product,
    "channel": Channel,
}
COLUMNS = (
    "workspace_id", "source", "external_id", "customer_id", "type", "occurred_at",
    "touchpoint_id", "branch_id", "employee_id", "product_id", "channel_id", "attributes",
    "created_at",
)  # fmt: skip


def _lookup(
    model: type[Model], workspace: Workspace, field: str, codes: set[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    values = list(codes)
    for start in range(0, len(values), 5000):
        rows = model._default_manager.filter(
            workspace=workspace, **{f"{field}__in": values[start : start + 5000]}
        ).values_list(field, "pk")
        found.update(rows)
    return found


def _resolve(
    workspace: Workspace, items: list[tuple[int, InteractionIn]], result: BatchResult
) -> list[tuple[int, InteractionIn, dict[str, int | None]]]:
    """Replace codes by ids; an unknown code rejects its item with the code named."""
    maps: dict[str, dict[str, int]] = {
        "customer": _lookup(Customer, workspace, "external_id", {i.customer for _, i in items})
    }
    for name, model in CODED.items():
        codes = {getattr(i, name) for _, i in items if getattr(i, name)}
        maps[name] = _lookup(model, workspace, "code", codes) if codes else {}
    resolved = []
    for index, item in items:
        ids: dict[str, int | None] = {}
        errors: dict[str, list[str]] = {}
        for name, mapping in maps.items():
            code = getattr(item, name)
            if code is None:
                ids[name] = None
            elif code in mapping:
                ids[name] = mapping[code]
            else:
                what = "customer external_id" if name == "customer" else f"{name} code"
                errors[name] = [f"unknown {what} {code!r}"]
        if errors:
            result.reject(index, errors)
        else:
            resolved.append((index, item, ids))
    return resolved


def validate_interaction(workspace: Workspace, raw: Any, now: dt.datetime) -> InteractionIn:
    item = InteractionIn.model_validate(raw)
    item.occurred_at = aware(item.occurred_at, workspace.time_zone)
    if item.occurred_at > now + FUTURE_TOLERANCE:
        raise ValueError("occurred_at is in the future")
    return item


def ingest_interactions(workspace: Workspace, raw_items: Sequence[Any]) -> BatchResult:
    """Each item ends up accepted, duplicate or rejected (with its index and reasons)."""
    result = BatchResult()
    now = clock.now()
    valid: list[tuple[int, InteractionIn]] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            result.reject(index, {"__all__": ["an item must be a JSON object"]})
            continue
        try:
            item = validate_interaction(workspace, raw, now)
        except ValidationError as exc:
            result.reject(index, error_dict(exc))
            continue
        except ValueError as exc:
            result.reject(index, {"occurred_at": [str(exc)]})
            continue
        key = (item.source, item.external_id)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        valid.append((index, item))
    if valid:
        rows = _resolve(workspace, valid, result)
        inserted = _insert(workspace, rows, now)
        result.accepted += inserted
        result.duplicates += len(rows) - inserted
    result.errors.sort(key=lambda e: e["index"])
    return result


def _insert(
    workspace: Workspace,
    rows: list[tuple[int, InteractionIn, dict[str, int | None]]],
    now: dt.datetime,
) -> int:
    """Insert what is new; return how many rows were new."""
    ops = connection.ops
    created = ops.adapt_datetimefield_value(now)
    json_placeholder = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    row_sql = "(" + ",".join(["%s"] * 11 + [json_placeholder, "%s"]) + ")"
    table = Interaction._meta.db_table
    inserted = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            params: list[Any] = []
            for _, item, ids in chunk:
                params += [
                    workspace.pk, item.source, item.external_id, ids["customer"], item.type,
                    ops.adapt_datetimefield_value(item.occurred_at), ids["touchpoint"],
                    ids["branch"], ids["employee"], ids["product"], ids["channel"],
                    json.dumps(item.attributes, ensure_ascii=False), created,
                ]  # fmt: skip
            cursor.execute(
                f"INSERT INTO {table} ({','.join(COLUMNS)}) VALUES "
                + ",".join([row_sql] * len(chunk))
                + " ON CONFLICT (workspace_id, source, external_id) DO NOTHING RETURNING id",
                params,
            )
            inserted += len(cursor.fetchall())
    return inserted
