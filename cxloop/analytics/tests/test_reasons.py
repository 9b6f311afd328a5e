"""The reason cells (``reasons.py``) always equal a recomputation from the raw answers (plain
Python here), and the pain map and key drivers read from them give the numbers the raw
answers give, with filters, a supervisor's scope and days cut in two."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import zoneinfo
from collections import defaultdict
from typing import Any

import pytest
from django.utils import timezone

from cxloop.accounts.models import Workspace
from cxloop.analytics import drivers, pain, reasons, rollups
from cxloop.analytics.models import DirtyDay, NpsThresholds, ReasonCell, ReasonDirtyDay
from cxloop.cases.models import Case, CaseSource, ReasonCode
from cxloop.core import clock
from cxloop.surveys.models import Response
from cxloop.text.models import Comment, CommentReason, CommentSource, LabelSource

from .factories import World, build_world, random_responses

UTC = dt.UTC
OPTIONS = ("staff", "waiting", "price", "quality", "other")


@pytest.fixture
def world(workspace: Workspace) -> World:
    workspace.time_zone = "Europe/Chisinau"
    workspace.save()
    return build_world(workspace)


def codes(world: World) -> dict[str, ReasonCode]:
    return {
        code: ReasonCode.objects.get_or_create(
            workspace=world.workspace, code=code, defaults={"labels": {"en": code.title()}}
        )[0]
        for code in ("waiting", "rude", "billing")
    }


def ticked(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.35:
        return {}
    if roll < 0.45:
        return {"reasons": "waiting"}  # a single value where a list is expected
    return {"reasons": rng.sample(OPTIONS, rng.randint(1, 3)) + (["bogus"] if roll > 0.9 else [])}


def populate(world: World, count: int, seed: int) -> list[Response]:
    """Answers with ticked reasons, some cases with reason codes, some coded comments."""
    rng = random.Random(seed)
    rows = random_responses(world, count, seed=seed, offset=seed * 10_000)
    for row in rows:
        row.answers = ticked(rng)
    Response.objects.bulk_create(rows)
    taxonomy = codes(world)
    for row in rows:
        if row.score is not None and row.score <= 6 and rng.random() < 0.5:
            case = open_case(row)
            case.reasons.add(*rng.sample(list(taxonomy.values()), rng.randint(0, 2)))
        if rng.random() < 0.3:
            comment = Comment.objects.create(
                workspace=world.workspace,
                response=row,
                source=CommentSource.RESPONSE,
                text="slow",
                written_at=row.answered_at,
            )
            CommentReason.objects.create(
                comment=comment,
                reason=rng.choice(list(taxonomy.values())),
                source=LabelSource.MODEL,
            )
    return rows


def open_case(row: Response) -> Case:
    now = clock.now()
    return Case.objects.create(
        workspace_id=row.workspace_id, source=CaseSource.RESPONSE, response=row,
        survey_id=row.survey_id, due_at=now, warn_at=now,
    )  # fmt: skip


Cells = dict[tuple[Any, ...], tuple[Any, ...]]


def expected(workspace: Workspace) -> Cells:
    """The cells recomputed in plain Python from the raw rows."""
    zone = zoneinfo.ZoneInfo(workspace.time_zone)
    cut = defaultdict(
        lambda: 6, {t.survey_id: t.detractor_max for t in NpsThresholds.objects.all()}
    )
    case_codes: dict[int | None, set[str]] = defaultdict(set)
    for case in Case.objects.filter(workspace=workspace).prefetch_related("reasons"):
        for reason in case.reasons.all():
            case_codes[case.response_id].add(reason.code)
    text_codes: dict[int | None, set[str]] = defaultdict(set)
    for code in CommentReason.objects.select_related("comment", "reason"):
        text_codes[code.comment.response_id].add(code.reason.code)
    cells: dict[tuple[Any, ...], list[Any]] = {}
    for r in Response.objects.filter(workspace=workspace, is_test=False, score__isnull=False):
        answer = (r.answers or {}).get("reasons")
        values = [answer] if isinstance(answer, str) else answer or []
        tokens = {f"o\treasons\t{v}" for v in values}
        tokens |= {f"c\t{c}" for c in case_codes[r.pk]} | {f"t\t{c}" for c in text_codes[r.pk]}
        day = r.answered_at.astimezone(zone).date()
        score = int(r.score or 0)
        for kind, entity in (
            ("all", None), ("branch", r.branch_id), ("employee", r.employee_id),
            ("product", r.product_id),
        ):  # fmt: skip
            who = cells.setdefault((kind, entity, r.survey_id, day, None, ""), [[0] * 11, 0, set()])
            who[0][score] += 1
            keys = [who]
            if kind == "all" or score <= cut[r.survey_id]:
                key = (kind, entity, r.survey_id, day, score, "\n".join(sorted(tokens)))
                keys.append(cells.setdefault(key, [0, 0, set()]))
            for cell in keys:
                if cell is not who:
                    cell[0] += 1
                if r.customer_id is None:
                    cell[1] += 1
                else:
                    cell[2].add(r.customer_id)
    return {k: (n, a, tuple(sorted(c))) for k, (n, a, c) in cells.items()}


def stored(workspace: Workspace) -> Cells:
    found: Cells = {}
    for c in ReasonCell.objects.filter(workspace=workspace):
        key = (c.kind, c.entity_id, c.survey_id, c.day, c.score, c.tokens)
        assert key not in found
        if c.score is None:
            assert c.n == sum(c.histogram or ())
        found[key] = (
            c.histogram if c.score is None else c.n,
            c.anonymous,
            tuple(int(i) for i in reasons.unpack(c.customers)),
        )
    return found


def assert_current(workspace: Workspace) -> None:
    rollups.tick()
    rollups.refresh(workspace, limit=100_000)
    reasons.refresh(workspace, limit=100_000)
    assert not DirtyDay.objects.filter(workspace_id=workspace.pk).exists()
    assert not ReasonDirtyDay.objects.filter(workspace_id=workspace.pk).exists()
    assert stored(workspace) == expected(workspace)


def test_pack_and_count_distinct() -> None:
    assert reasons.unpack(reasons.pack([])).size == 0
    assert list(reasons.unpack(reasons.pack([5, 3, 5, 2**40, 1]))) == [1, 3, 5, 2**40]
    a = reasons.unpack(reasons.pack([1, 2, 3]))
    b = reasons.unpack(reasons.pack([3, 4, 2**40]))
    assert reasons.count_distinct([a, b]) == 5  # a range too wide for the bitmap
    assert reasons.count_distinct([a, reasons.unpack(reasons.pack([2, 9]))]) == 4


def test_reason_cells_follow_every_change(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    rows = populate(world, 300, seed=1)
    rollups.rebuild(world.workspace)
    assert ReasonCell.objects.filter(workspace=world.workspace, kind="all").exists()
    assert_current(world.workspace)

    counted = [r for r in rows if r.score is not None and not r.is_test]
    taxonomy = codes(world)
    # inserts, edits (score, answers, branch, day moved), deletes
    extra = random_responses(world, 20, seed=9, offset=90_000)
    for row in extra:
        row.answers = {"reasons": ["price"]}
        row.save()
    counted[0].score = 0 if counted[0].score != 0 else 10
    counted[0].save()
    counted[1].answers = {"reasons": ["other", "staff"]}
    counted[1].branch = world.branches[2]
    counted[1].save()
    counted[2].answered_at -= dt.timedelta(days=3)
    counted[2].save()
    counted[3].delete()
    assert_current(world.workspace)

    # a call-back records a case's reasons days later; a reason removed, a case deleted
    case = open_case(counted[4])
    assert_current(world.workspace)
    case.reasons.add(taxonomy["rude"])
    assert ReasonDirtyDay.objects.filter(workspace_id=world.workspace.pk).exists()
    assert_current(world.workspace)
    case.reasons.set([taxonomy["billing"]])
    assert_current(world.workspace)
    taxonomy["billing"].cases.clear()  # from the reason code's side
    assert_current(world.workspace)
    taxonomy["waiting"].cases.add(case)
    assert_current(world.workspace)
    case.delete()
    assert_current(world.workspace)

    # a comment coded one by one (signals) and in bulk by the model (the heartbeat's check)
    quiet = next(r for r in counted[5:] if not Comment.objects.filter(response=r).exists())
    comment = Comment.objects.create(
        workspace=world.workspace, response=quiet, source=CommentSource.RESPONSE,
        text="queue", written_at=quiet.answered_at,
    )  # fmt: skip
    rollups.tick()
    with capture(execute=True):  # marked when the transaction commits
        code = CommentReason.objects.create(
            comment=comment, reason=taxonomy["waiting"], source=LabelSource.ANALYST
        )
    assert_current(world.workspace)
    with capture(execute=True):
        code.delete()
    assert_current(world.workspace)
    CommentReason.objects.bulk_create(
        [CommentReason(comment=comment, reason=taxonomy["rude"], source=LabelSource.MODEL)]
    )
    Comment.objects.filter(pk=comment.pk).update(analysed_at=timezone.now())
    assert stored(world.workspace) != expected(world.workspace)  # no signal: not yet
    assert_current(world.workspace)  # the heartbeat marks the comment's day
    with capture(execute=True):  # a queryset delete: one mark for all its rows
        CommentReason.objects.filter(comment=comment).delete()
    assert_current(world.workspace)

    # other thresholds: every day of the survey is recomputed (more detractor scores kept)
    NpsThresholds.objects.create(survey=world.survey, promoter_min=10, detractor_max=8)
    assert ReasonDirtyDay.objects.filter(workspace_id=world.workspace.pk).count() > 30
    assert_current(world.workspace)

    # the rebuild (``cxloop analytics_rebuild``) gives the same cells
    ReasonCell.objects.all().delete()
    rollups.rebuild(world.workspace)
    assert stored(world.workspace) == expected(world.workspace)


def same(a: Any, b: Any) -> None:
    """Equal pain maps or driver results (floats to rounding)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    else:
        assert a == b


@pytest.fixture
def loaded(world: World) -> World:
    populate(world, 400, seed=3)
    rollups.rebuild(world.workspace)
    rollups.refresh(world.workspace, limit=100_000)
    return world


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"region": ["R1"]},
        {"branch": ["B02", "B03"]},
        {"region": ["R1"], "branch": ["B02", "B03"]},
        {"employee": ["E1", "E2"]},  # a supervisor's scope
        {"product": ["P2"]},
        {"employee": ["E3"], "branch": ["B02"]},  # two dimensions: raw answers
        {"branch": []},
    ],
)
@pytest.mark.parametrize("every", ["week", "month"])
def test_pain_map_from_cells_equals_the_raw_answers(
    loaded: World, filters: dict[str, list[str]], every: str
) -> None:
    zone = zoneinfo.ZoneInfo("Europe/Chisinau")
    for since, until in (
        (None, None),
        (dt.datetime(2025, 1, 5, tzinfo=zone), dt.datetime(2025, 2, 20, tzinfo=zone)),
        # days cut in two at each end
        (dt.datetime(2025, 1, 5, 13, tzinfo=UTC), dt.datetime(2025, 2, 20, 7, 30, tzinfo=UTC)),
        (dt.datetime(2025, 1, 9, 13, tzinfo=UTC), dt.datetime(2025, 1, 9, 19, tzinfo=UTC)),
    ):
        query = pain.PainQuery(
            workspace=loaded.workspace, since=since, until=until, filters=filters, every=every,
            extrapolate=not filters,
        )  # fmt: skip
        from_cells = pain.pain_map(query)
        same(from_cells, pain.pain_map(query, cells=False))
    assert from_cells is not None


def test_dirty_days_are_read_from_the_answers(loaded: World) -> None:
    """Before the heartbeat recomputes them, changed days come from the raw answers."""
    taxonomy = codes(loaded)
    detractor = Response.objects.filter(
        workspace=loaded.workspace, score__lte=6, is_test=False, cases__isnull=True
    ).first()
    assert detractor is not None
    open_case(detractor).reasons.add(taxonomy["billing"])
    NpsThresholds.objects.create(survey=loaded.survey, promoter_min=9, detractor_max=7)
    assert ReasonDirtyDay.objects.exists()
    query = pain.PainQuery(workspace=loaded.workspace, filters={"branch": ["B01"]})
    same(pain.pain_map(query), pain.pain_map(query, cells=False))
    query = pain.PainQuery(workspace=loaded.workspace)
    same(pain.pain_map(query), pain.pain_map(query, cells=False))
    for kind in drivers.KINDS:
        got, want = (
            drivers.key_drivers(loaded.workspace, [loaded.survey], kind=kind, cells=cells)
            for cells in (True, False)
        )
        same(got, want)


def test_pain_map_reads_cells_not_answers(loaded: World, monkeypatch: Any) -> None:
    zone = zoneinfo.ZoneInfo("Europe/Chisinau")
    query = pain.PainQuery(
        workspace=loaded.workspace,
        since=dt.datetime(2025, 1, 1, tzinfo=zone),
        until=dt.datetime(2025, 3, 1, tzinfo=zone),
    )
    want = pain.pain_map(query, cells=False)
    assert want.detractors > 20 and len(want.reasons) >= 5
    raw: list[Any] = []

    def groups(*args: Any, **kwargs: Any) -> tuple[list[Any], list[Any]]:
        raw.append(args)
        return [], []

    monkeypatch.setattr(reasons, "groups", groups)
    same(pain.pain_map(query), want)
    assert raw == []
    assert want.respondents == len(
        {
            r.customer_id or f"r{r.pk}"
            for r in Response.objects.filter(
                workspace=loaded.workspace, is_test=False, score__isnull=False,
                answered_at__gte=query.since, answered_at__lt=query.until,
            )
        }
    )  # fmt: skip


def test_customer_sets_are_kept_and_never_stale(loaded: World) -> None:
    """The decoded sets are read once per process; a recomputed day's cells are new rows, so
    the map never counts from the sets of cells that are gone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    query = pain.PainQuery(workspace=loaded.workspace)
    first = pain.pain_map(query)
    with CaptureQueriesContext(connection) as captured:
        same(pain.pain_map(query), first)
    blobs = [q["sql"] for q in captured.captured_queries if '"customers"' in q["sql"]]
    assert blobs == [], "kept sets read again"
    # A detractor's case gets a reason: its day is recomputed and the map moves with it.
    taxonomy = codes(loaded)
    detractor = Response.objects.filter(
        workspace=loaded.workspace, score__lte=6, is_test=False, cases__isnull=True,
        customer__isnull=False,
    ).first()  # fmt: skip
    assert detractor is not None
    open_case(detractor).reasons.add(taxonomy["billing"])
    reasons.refresh(loaded.workspace, limit=1000)
    assert not ReasonDirtyDay.objects.exists()
    after = pain.pain_map(query)
    same(after, pain.pain_map(query, cells=False))
    billing = {r.code: r for r in after.reasons}["billing"]
    before = {r.code: r for r in first.reasons}.get("billing")
    assert billing.citing == (before.citing if before else 0) + 1


def test_customer_sets_cache_is_bounded(monkeypatch: Any) -> None:
    import numpy as np

    reasons.forget_sets()
    monkeypatch.setattr(reasons, "REASON_SETS_BYTES", 3 * 8 * 100)
    for pk in range(1, 6):
        reasons._remember((pk, 100, 0), np.arange(100, dtype=np.int64))
    assert [key[0] for key in reasons._decoded] == [3, 4, 5]  # the oldest went first
    assert reasons._decoded_bytes == 3 * 8 * 100
    reasons.forget_sets()


@pytest.mark.parametrize("kind", ["reasons", "attributes"])
def test_drivers_from_cells_equal_the_raw_answers(loaded: World, kind: str) -> None:
    zone = zoneinfo.ZoneInfo("Europe/Chisinau")
    for since, until in (
        (None, None),
        (dt.datetime(2025, 1, 3, tzinfo=zone), dt.datetime(2025, 2, 25, tzinfo=zone)),
        (dt.datetime(2025, 1, 3, 13, tzinfo=UTC), dt.datetime(2025, 2, 25, 7, tzinfo=UTC)),
    ):
        got, want = (
            drivers.key_drivers(
                loaded.workspace,
                [loaded.survey],
                since=since,
                until=until,
                kind=kind,
                min_n=10,
                cells=cells,
            )
            for cells in (True, False)
        )
        same(got, want)
    if kind == "reasons":
        assert got.enough and {d.code for d in got.drivers} >= {"waiting", "rude"}
