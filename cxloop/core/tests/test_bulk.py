"""``core.bulk.insert``: COPY on PostgreSQL writes what ``bulk_create`` writes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from cxloop.accounts.models import Workspace
from cxloop.analytics.models import ReasonCell
from cxloop.core import bulk
from cxloop.surveys.tests.factories import make_survey


def _cells(workspace: Workspace, survey_id: int, kind: str) -> list[ReasonCell]:
    day = dt.date(2026, 3, 1)
    return [
        ReasonCell(
            workspace_id=workspace.pk, survey_id=survey_id, day=day, kind=kind, entity_id=None,
            score=None, n=3, anonymous=1, customers=b"\x00\x01\xff\\\n\t", histogram=[0, 1, 2],
        ),
        ReasonCell(
            workspace_id=workspace.pk, survey_id=survey_id, day=day + dt.timedelta(days=1),
            kind=kind, entity_id=2**40, score=4, tokens="r:PRICE\tq:x=\"ă, ț\"\\n", n=1,
        ),
    ]  # fmt: skip


def _read(kind: str) -> list[tuple[object, ...]]:
    fields = ("day", "entity_id", "score", "tokens", "n", "anonymous", "customers", "histogram")
    return [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in ReasonCell.objects.filter(kind=kind).order_by("day").values_list(*fields)
    ]


def test_insert_writes_what_bulk_create_writes(workspace: Workspace) -> None:
    survey = make_survey(workspace)
    assert bulk.insert(ReasonCell, _cells(workspace, survey.pk, "all")) == 2
    ReasonCell.objects.bulk_create(_cells(workspace, survey.pk, "branch"))
    copied, created = _read("all"), _read("branch")
    assert copied == created
    assert copied[0][6] == b"\x00\x01\xff\\\n\t" and copied[0][7] == [0, 1, 2]
    assert copied[1][3] == 'r:PRICE\tq:x="ă, ț"\\n' and copied[1][5] == 0  # the default
    assert bulk.insert(ReasonCell, []) == 0


def test_a_bad_row_inserts_nothing(workspace: Workspace) -> None:
    survey = make_survey(workspace)
    rows = _cells(workspace, survey.pk, "all")
    rows[1].day = None  # type: ignore[assignment]  # NOT NULL
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert(ReasonCell, rows)
    assert not ReasonCell.objects.exists()
