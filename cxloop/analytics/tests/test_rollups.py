"""The rollup cells always equal a recomputation from the raw responses (plain Python, local
days in the workspace's zone), after inserts, batch imports, edits and deletes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command

from cxloop.accounts.models import Workspace
from cxloop.analytics import rollups
from cxloop.analytics.models import DailyCell, DirtyDay, RollupState
from cxloop.surveys.importing import import_responses
from cxloop.surveys.models import Response
from cxloop.surveys.tests.factories import make_survey

from .factories import build_world, expected_cells, random_responses, response, stored_cells

UTC = dt.UTC


def assert_current(workspace: Workspace) -> None:
    rollups.refresh(workspace, limit=100_000)
    assert not DirtyDay.objects.filter(workspace_id=workspace.pk).exists()
    daily, hourly = stored_cells(workspace)
    want_daily, want_hourly = expected_cells(workspace)
    assert daily == want_daily
    assert hourly == want_hourly


@pytest.fixture
def world(workspace: Workspace) -> Any:
    workspace.time_zone = "Europe/Chisinau"
    workspace.save()
    return build_world(workspace)


def test_rebuild_equals_recomputation(world: Any) -> None:
    Response.objects.bulk_create(random_responses(world, 400))
    rollups.rebuild(world.workspace)
    assert DailyCell.objects.filter(workspace=world.workspace).exists()
    assert_current(world.workspace)


def test_single_inserts_edits_and_deletes_are_rolled_up(world: Any) -> None:
    rollups.rebuild(world.workspace)  # empty, built
    rows = random_responses(world, 60, seed=2)
    for row in rows:
        row.save()
    assert DirtyDay.objects.filter(workspace_id=world.workspace.pk).exists()
    assert_current(world.workspace)

    counted = [r for r in rows if r.score is not None and not r.is_test]
    # score changed
    counted[0].score = 0 if counted[0].score != 0 else 10
    counted[0].save()
    # branch changed (and the employee dropped)
    counted[1].branch = world.branches[3] if counted[1].branch != world.branches[3] else None
    counted[1].employee = None
    counted[1].save()
    # moved to another local day (marks the old day too), fetched fresh from the database
    moved = Response.objects.get(pk=counted[2].pk)
    moved.answered_at = moved.answered_at + dt.timedelta(days=3)
    moved.save()
    # customer's segment through another customer; test flag on; score removed
    counted[3].customer = world.customers[1]
    counted[3].save()
    counted[4].is_test = True
    counted[4].save()
    counted[5].score = None
    counted[5].save()
    # deletes: one by one, and a queryset delete
    counted[6].delete()
    Response.objects.filter(pk__in=[r.pk for r in counted[7:10]]).delete()
    assert_current(world.workspace)


def test_edit_before_refresh_of_an_old_day_is_not_lost(world: Any) -> None:
    Response.objects.bulk_create(random_responses(world, 50, seed=3))
    rollups.rebuild(world.workspace)
    moved = Response.objects.filter(workspace=world.workspace, score__isnull=False, is_test=False)
    target = moved.first()
    assert target is not None
    target.answered_at = dt.datetime(2024, 6, 1, 12, tzinfo=UTC)  # a day with no cells yet
    target.save()
    assert_current(world.workspace)


def test_batch_import_marks_its_days(world: Any) -> None:
    rollups.rebuild(world.workspace)
    items = [
        {
            "external_id": f"imp-{i}",
            "survey": "nps",
            "score": i % 11,
            "answered_at": (dt.datetime(2025, 3, 30, 20, tzinfo=UTC) + dt.timedelta(hours=i))
            .isoformat(),
            "branch": f"B0{1 + i % 4}",
            "customer": "C-vip",
        }
        for i in range(40)
    ]  # fmt: skip
    result = import_responses(world.workspace, items, notify=False)
    assert result.accepted == 40, result.errors
    assert DirtyDay.objects.filter(workspace_id=world.workspace.pk).count() >= 2
    assert_current(world.workspace)


def test_deleting_the_survey_or_customer_clears_cells(world: Any) -> None:
    rollups.rebuild(world.workspace)
    for row in random_responses(world, 40, seed=4):
        row.save()
    assert_current(world.workspace)
    world.customers[0].delete()
    assert_current(world.workspace)
    world.survey.delete()
    assert_current(world.workspace)
    assert not DailyCell.objects.filter(workspace=world.workspace).exists()


def test_non_nps_surveys_and_other_workspaces_are_left_out(
    world: Any, other_workspace: Workspace
) -> None:
    from cxloop.surveys.definition import default_definition

    definition = default_definition()
    definition["questions"][0]["type"] = "csat"
    for question in definition["questions"]:
        question.pop("show_if_score_at_most", None)
        question.pop("show_if_score_at_least", None)
    csat = make_survey(world.workspace, "csat", definition=definition)
    Response.objects.create(
        workspace=world.workspace, survey=csat, external_id="x1", score=4,
        answered_at=dt.datetime(2025, 1, 2, tzinfo=UTC), source="import",
    )  # fmt: skip
    other = build_world(other_workspace)
    for row in random_responses(other, 20):
        row.save()
    rollups.rebuild(world.workspace)
    assert not DailyCell.objects.filter(workspace=world.workspace).exists()
    assert_current(other_workspace)


def test_time_zone_change_rebuilds(world: Any) -> None:
    # 22:30 UTC on 1 June is 1:30 on 2 June in Chisinau (UTC+3 in summer).
    response(world, 1, dt.datetime(2025, 6, 1, 22, 30, tzinfo=UTC), 10).save()
    rollups.refresh(world.workspace)
    assert set(DailyCell.objects.values_list("day", flat=True)) == {dt.date(2025, 6, 2)}
    world.workspace.time_zone = "UTC"
    world.workspace.save()
    rollups.refresh(world.workspace)
    assert set(DailyCell.objects.values_list("day", flat=True)) == {dt.date(2025, 6, 1)}
    assert RollupState.objects.get(workspace=world.workspace).time_zone == "UTC"
    assert_current(world.workspace)


def test_heartbeat_tick_and_rebuild_command(world: Any) -> None:
    Response.objects.bulk_create(random_responses(world, 30, seed=5))
    assert rollups.tick() == {"analytics_days": 0}  # never built: rebuilt
    assert_current(world.workspace)
    response(world, 999, dt.datetime(2025, 2, 2, 9, tzinfo=UTC), 3).save()
    assert rollups.tick() == {"analytics_days": 1}
    DailyCell.objects.all().delete()
    call_command("analytics_rebuild", "--workspace", world.workspace.slug, stdout=None)
    assert_current(world.workspace)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lock_state", [False, True])
def test_a_day_being_recomputed_elsewhere_is_left_to_that_process(
    world: Any, lock_state: bool
) -> None:
    """A request's inline refresh and the heartbeat may reach one dirty day at once: the
    second leaves it (its mark is locked) instead of inserting the day's cells a second time."""
    import threading

    from django.db import connection, transaction

    from cxloop.analytics import reasons
    from cxloop.analytics.models import ReasonDirtyDay

    if connection.vendor == "sqlite":
        pytest.skip("SQLite runs one writer at a time: there is no concurrent refresh")
    Response.objects.bulk_create(random_responses(world, 120, seed=4))
    rollups.rebuild(world.workspace)
    changed = Response.objects.filter(workspace=world.workspace, score__isnull=False).first()
    assert changed is not None
    changed.score = 0 if changed.score != 0 else 10
    changed.save()  # marks its day dirty
    before = stored_cells(world.workspace)
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_process() -> None:
        try:
            with transaction.atomic():
                if lock_state:  # recomputing another day of the same month
                    assert list(RollupState.objects.select_for_update())
                else:  # recomputing this very day
                    assert list(DirtyDay.objects.select_for_update())
                assert list(ReasonDirtyDay.objects.select_for_update())
                locked.set()
                release.wait(10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            locked.set()
        finally:
            connection.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    try:
        assert locked.wait(10)
        assert rollups.refresh(world.workspace) == 0
        assert reasons.refresh(world.workspace) == 0
        assert stored_cells(world.workspace) == before  # untouched: not counted twice
        assert DirtyDay.objects.filter(workspace_id=world.workspace.pk).exists()
    finally:
        release.set()
        thread.join()
    assert not errors
    assert_current(world.workspace)
    assert reasons.refresh(world.workspace) == 1
