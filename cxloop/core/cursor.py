"""Opaque keyset cursors for list endpoints: ``{"items": [...], "next": CURSOR_OR_NULL}``."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from django.db.models import Q, QuerySet


class InvalidCursor(ValueError):
    pass


def encode(value: dt.datetime, pk: int) -> str:
    raw = json.dumps([value.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, pk = json.loads(raw)
        moment = dt.datetime.fromisoformat(value)
        if not isinstance(pk, int) or moment.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None
    return moment, pk


def page(
    qs: QuerySet[Any], field: str, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One page of ``qs`` ordered by (``field``, id), and the cursor of the next page."""
    if cursor:
        value, pk = decode(cursor)
        qs = qs.filter(Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": pk}))
    rows = list(qs.order_by(field, "pk")[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    if isinstance(last, dict):
        return rows, encode(last[field], last["id"])
    return rows, encode(getattr(last, field), last.pk)
