"""Inserting many rows of one model at once: PostgreSQL's COPY, ``bulk_create`` elsewhere.

``bulk_create`` sends one multi-row ``INSERT`` per batch; PostgreSQL parses and plans each and
Django builds its SQL and parameter list in Python. ``COPY … FROM STDIN`` streams the rows
(psycopg's ``Copy.write_row``), 3-5 times faster for the analytics rollups' hundreds of
thousands of cells. The values go through each field's ``get_db_prep_save``, as ``bulk_create``
does (JSON as ``Jsonb``, binary as bytes, dates as dates), and the foreign keys and constraints
are checked as for any insert. No signals are sent (neither does ``bulk_create``), and the
objects get no primary keys back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models.fields import AutoFieldMixin

__all__ = ["insert"]


def insert(model: type[models.Model], objs: Iterable[Any], batch_size: int = 2000) -> int:
    """Insert ``objs`` (unsaved instances of ``model``); how many rows."""
    using = router.db_for_write(model)
    connection = connections[using]
    rows = list(objs)
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model._default_manager.using(using).bulk_create(rows, batch_size=batch_size)
        return len(rows)
    # The columns bulk_create writes: every concrete one but the generated primary key.
    fields: Sequence[models.Field[Any, Any]] = [
        f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)
    ]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    # Errors as Django's (IntegrityError, …): the raw cursor's COPY is outside its wrapper.
    with (
        transaction.atomic(using=using),
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for obj in rows:
            # pre_save as bulk_create calls it (auto_now and the like).
            copy.write_row(
                [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
            )
    return len(rows)
