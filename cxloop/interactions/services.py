"""Ingesting interactions: validate, resolve codes, insert once.

Idempotency is the database's job: the unique (workspace, source, external_id) constraint and
``INSERT … ON CONFLICT DO NOTHING`` (its row count) tell exactly how many items were new, even when two
requests carry the same interaction at the same moment.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
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


# (index in the request, the validated item, ids of its references)
Rows = list[tuple[int, InteractionIn, dict[str, int | None]]]


def _lookup(
    model: type[Model], workspace: Workspace, field: str, codes: set[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    values = list(codes)
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of placeholders for the driver to parse.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {field}, id FROM {model._meta.db_table} "
                f"WHERE workspace_id = %s AND {field} = ANY(%s)",
                [workspace.pk, values],
            )
            return dict(cursor.fetchall())
    for start in range(0, len(values), 5000):
        rows = model._default_manager.filter(
            workspace=workspace, **{f"{field}__in": values[start : start + 5000]}
        ).values_list(field, "pk")
        found.update(rows)
    return found


def _resolve(
    workspace: Workspace, items: list[tuple[int, InteractionIn]], result: BatchResult
) -> Rows:
    """Replace codes by ids; an unknown code rejects its item with the code named."""
    maps: dict[str, dict[str, int]] = {
        "customer": _lookup(Customer, workspace, "external_id", {i.customer for _, i in items})
    }
    for name, model in CODED.items():
        codes = {code for _, i in items if (code := getattr(i, name))}
        maps[name] = _lookup(model, workspace, "code", codes) if codes else {}
    resolved = []
    for index, item in items:
        ids: dict[str, int | None] = {}
        errors: dict[str, list[str]] = {}
        for name, mapping in maps.items():
            code = getattr(item, name)
            if not code:
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


@dataclass
class PreparedBatch:
    """A batch checked and resolved, waiting to be written."""

    result: BatchResult  # the rejected items and the duplicates inside the batch so far
    rows: Rows
    now: dt.datetime
    # PostgreSQL: the rows in COPY text format, built ahead by ``with_copy_payload`` so that a
    # writer thread only does I/O (and never waits for the GIL between network round trips).
    payload: bytes | None = None


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def with_copy_payload(workspace: Workspace, batch: PreparedBatch) -> PreparedBatch:
    """Add the COPY text of the batch's rows (PostgreSQL only; elsewhere unchanged)."""
    if connection.vendor != "postgresql" or len(batch.rows) < PG_STAGE_MIN_ROWS:
        return batch
    # The same values as _row_values, in COLUMNS order, built with the least work per row:
    # only the free-text fields can hold characters COPY must escape.
    workspace_id, now = str(workspace.pk), batch.now.isoformat()

    def text(value: str) -> str:
        return value.translate(_COPY_ESCAPES)

    def ref(value: int | None) -> str:
        return "\\N" if value is None else str(value)

    lines = [
        "\t".join(
            (
                workspace_id,
                text(item.source),
                text(item.external_id),
                str(ids["customer"]),
                text(item.type),
                item.occurred_at.isoformat(),
                ref(ids["touchpoint"]),
                ref(ids["branch"]),
                ref(ids["employee"]),
                ref(ids["product"]),
                ref(ids["channel"]),
                text(json.dumps(item.attributes, ensure_ascii=False)) if item.attributes else "{}",
                now,
            )
        )
        for _, item, ids in batch.rows
    ]
    batch.payload = ("\n".join(lines) + "\n").encode()
    return batch


def _row_values(
    workspace: Workspace, item: InteractionIn, ids: dict[str, int | None], now: dt.datetime
) -> tuple[Any, ...]:
    """The values of one row, in COLUMNS order."""
    return (
        workspace.pk, item.source, item.external_id, ids["customer"], item.type,
        item.occurred_at, ids["touchpoint"], ids["branch"], ids["employee"], ids["product"],
        ids["channel"], json.dumps(item.attributes, ensure_ascii=False), now,
    )  # fmt: skip


def ingest_interactions(workspace: Workspace, raw_items: Sequence[Any]) -> BatchResult:
    """Each item ends up accepted, duplicate or rejected (with its index and reasons)."""
    return write_interactions(workspace, prepare_interactions(workspace, raw_items))


def prepare_interactions(workspace: Workspace, raw_items: Sequence[Any]) -> PreparedBatch:
    """Validate and resolve codes: the CPU half of ingestion, which writes nothing."""
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
    rows = _resolve(workspace, valid, result) if valid else []
    return PreparedBatch(result, rows, now)


def write_interactions(workspace: Workspace, batch: PreparedBatch) -> BatchResult:
    """Insert the new rows of a prepared batch; the database half of ingestion."""
    result = batch.result
    if batch.rows:
        inserted = _insert(workspace, batch.rows, batch.now, batch.payload)
        result.accepted += inserted
        result.duplicates += len(batch.rows) - inserted
    result.errors.sort(key=lambda e: e["index"])
    return result


# PostgreSQL: rows are COPied into a session's temporary table, then moved with one
# INSERT … SELECT … ON CONFLICT DO NOTHING: the driver never parses a statement with thousands of
# placeholders, and the database checks the unique key and foreign keys set-wise.
PG_STAGE_TABLE = "cx_ingest_interaction"
PG_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {PG_STAGE_TABLE} (
    workspace_id bigint, source varchar(64), external_id varchar(128), customer_id bigint,
    type varchar(64), occurred_at timestamptz, touchpoint_id bigint, branch_id bigint,
    employee_id bigint, product_id bigint, channel_id bigint, attributes jsonb,
    created_at timestamptz
) ON COMMIT DELETE ROWS
"""
# Below this many rows the plain VALUES statement is cheaper than staging.
PG_STAGE_MIN_ROWS = 50


def _insert(workspace: Workspace, rows: Rows, now: dt.datetime, payload: bytes | None) -> int:
    """Insert what is new; return how many rows were new."""
    if connection.vendor == "postgresql" and len(rows) >= PG_STAGE_MIN_ROWS:
        return _insert_postgres_copy(workspace, rows, now, payload)
    return _insert_values(workspace, rows, now)


def _insert_postgres_copy(
    workspace: Workspace, rows: Rows, now: dt.datetime, payload: bytes | None
) -> int:
    columns = ",".join(COLUMNS)
    table = Interaction._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PG_STAGE)
        cursor.execute(f"TRUNCATE {PG_STAGE_TABLE}")
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        with raw.copy(f"COPY {PG_STAGE_TABLE} ({columns}) FROM STDIN") as copy:
            if payload is not None:
                copy.write(payload)
            else:
                for _, item, ids in rows:
                    copy.write_row(_row_values(workspace, item, ids, now))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {PG_STAGE_TABLE} "
            "ON CONFLICT (workspace_id, source, external_id) DO NOTHING"
        )
        inserted: int = cursor.rowcount
        cursor.execute(f"TRUNCATE {PG_STAGE_TABLE}")
    return inserted


def _insert_values(workspace: Workspace, rows: Rows, now: dt.datetime) -> int:
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
                values = list(_row_values(workspace, item, ids, now))
                values[5] = ops.adapt_datetimefield_value(item.occurred_at)
                values[12] = created
                params += values
            cursor.execute(
                f"INSERT INTO {table} ({','.join(COLUMNS)}) VALUES "
                + ",".join([row_sql] * len(chunk))
                + " ON CONFLICT (workspace_id, source, external_id) DO NOTHING",
                params,
            )
            # rowcount counts the rows inserted, not those skipped by ON CONFLICT
            inserted += cursor.rowcount
    return inserted
