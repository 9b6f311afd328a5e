"""``GET /api/v1/analytics/nps`` against an independent computation: raw rows grouped in plain
Python (local time by ``zoneinfo``), the adjusted-Wald interval and test written out by hand,
Benjamini-Hochberg by hand."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.analytics.models import DirtyDay, NpsThresholds
from cxloop.analytics.queries import NpsQuery, nps
from cxloop.organisation.models import Branch, Employee, Touchpoint
from cxloop.surveys.models import Response

from .factories import (
    World,
    bh_flags,
    build_world,
    classify,
    p_less,
    random_responses,
    raw_rows,
    response,
    wald,
)

UTC = dt.UTC
ZONE = "Europe/Chisinau"


@pytest.fixture
def world(workspace: Workspace) -> World:
    workspace.time_zone = ZONE
    workspace.save()
    return build_world(workspace)


def _codes(world: World) -> dict[str, dict[Any, Any]]:
    ws = world.workspace
    branch = dict(Branch.objects.filter(workspace=ws).values_list("pk", "code"))
    region = dict(Branch.objects.filter(workspace=ws).values_list("pk", "region__code"))
    employee = dict(Employee.objects.filter(workspace=ws).values_list("pk", "code"))
    team = dict(Employee.objects.filter(workspace=ws).values_list("pk", "team__code"))
    touchpoint = dict(Touchpoint.objects.filter(workspace=ws).values_list("pk", "code"))
    stage = dict(Touchpoint.objects.filter(workspace=ws).values_list("pk", "stage__code"))
    product = {p.pk: p.code for p in world.products}
    return {
        "branch": branch, "region": region, "employee": employee, "team": team,
        "touchpoint": touchpoint, "stage": stage, "product": product,
    }  # fmt: skip


def expected(
    world: World,
    group_by: tuple[str, ...],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    where: Callable[[dict[str, Any]], bool] = lambda row: True,
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    zone = zoneinfo.ZoneInfo(world.workspace.time_zone)
    codes = _codes(world)
    column = {"region": "branch_id", "team": "employee_id", "stage": "touchpoint_id"}
    counts: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in raw_rows(world.workspace):
        if row["is_test"] or row["score"] is None or not where(row):
            continue
        if since is not None and row["answered_at"] < since:
            continue
        if until is not None and row["answered_at"] >= until:
            continue
        local = row["answered_at"].astimezone(zone)
        key: list[Any] = []
        for dim in group_by:
            if dim == "weekday":
                key.append(local.isoweekday())
            elif dim == "hour":
                key.append(local.hour)
            elif dim == "day":
                key.append(local.date().isoformat())
            elif dim == "week":
                year, week, _ = local.isocalendar()
                key.append(f"{year}-W{week:02d}")
            elif dim == "month":
                key.append(local.strftime("%Y-%m"))
            elif dim == "segment":
                key.append(row["segment"] or None)
            else:
                entity = row[column.get(dim, f"{dim}_id")]
                key.append(None if entity is None else codes[dim][entity])
        counts[tuple(key)][classify(row["score"])] += 1
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


def check(body: dict[str, Any], world: World, group_by: tuple[str, ...], **kw: Any) -> None:
    want = expected(world, group_by, **kw)
    p, q, d = (sum(c[i] for c in want.values()) for i in range(3))
    total = (p, q, d)
    assert body["confidence"] == 0.95 and body["method"] == "adjusted-wald"
    _same(body["overall"], wald(*total))
    got = {tuple(g["key"][d] for d in group_by): g for g in body["groups"]}
    if not group_by:
        assert body["groups"] == []
        return
    assert set(got) == set(want)
    for key, group in got.items():
        assert list(group["key"]) == list(group_by)
        _same(group, wald(*want[key]))
    tested = {k: p_less(c, (p - c[0], q - c[1], d - c[2])) for k, c in want.items()
              if sum(c) >= 30}  # fmt: skip
    for key, group in got.items():
        if key in tested:
            assert group["p_value"] == pytest.approx(tested[key], rel=1e-9, abs=1e-15)
        else:
            assert group["p_value"] is None and group["below_average"] is False
    lower = {k: wald(*want[k])["nps"] < wald(*total)["nps"] for k in tested}
    flagged = {k for k, g in got.items() if g["below_average"]}
    assert flagged == bh_flags(tested, lower)
    # ordered by key (None last)
    keys = [tuple(g["key"][d] for d in group_by) for g in body["groups"]]
    assert keys == sorted(
        keys, key=lambda k: tuple((v is None, v if v is not None else 0) for v in k)
    )


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name in ("n", "promoters", "passives", "detractors"):
        assert got[name] == want[name], name
    for name in ("nps", "ci_low", "ci_high"):
        if want[name] is None:
            assert got[name] is None
        else:
            assert got[name] == pytest.approx(want[name], abs=1e-9), name
    assert set(got) >= {"n", "promoters", "passives", "detractors", "nps", "ci_low", "ci_high"}


@pytest.fixture
def loaded(world: World) -> World:
    Response.objects.bulk_create(random_responses(world, 1500, seed=7, weak=world.branches[2]))
    return world


SINCE = dt.datetime(2025, 1, 10, 13, 17, tzinfo=UTC)  # not a local midnight
UNTIL = dt.datetime(2025, 2, 20, 5, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "group_by",
    [
        ("branch", "weekday"), ("hour",), ("branch", "hour"), ("week",), ("month",), ("day",),
        ("region",), ("team",), ("stage",), ("segment",), ("employee", "month"),
        ("branch", "product"), ("team", "hour"), (),
    ],
)  # fmt: skip
def test_groups_match_an_independent_computation(
    loaded: World, api_for: Any, group_by: Any
) -> None:
    body = api_for(loaded, group_by=",".join(group_by), survey="nps")
    check(body, loaded, group_by)
    # the same with partial days at both ends (cells for whole days, raw rows for the rest)
    body = api_for(loaded, group_by=",".join(group_by), since=SINCE.isoformat(),
                   until=UNTIL.isoformat())  # fmt: skip
    check(body, loaded, group_by, since=SINCE, until=UNTIL)
    # a whole month inside: days before it, the month's monthly cells, days after, raw ends
    since, until = dt.datetime(2024, 12, 25, 13, 17, tzinfo=UTC), UNTIL + dt.timedelta(days=5)
    body = api_for(loaded, group_by=",".join(group_by), since=since.isoformat(),
                   until=until.isoformat())  # fmt: skip
    check(body, loaded, group_by, since=since, until=until)


def test_whole_months_are_read_from_the_monthly_cells(loaded: World, monkeypatch: Any) -> None:
    from cxloop.analytics import queries

    zone = zoneinfo.ZoneInfo("Europe/Chisinau")
    read: list[tuple[Any, Any, bool]] = []
    cells = queries._cells

    def spy(*args: Any) -> Any:
        read.append((args[4], args[5], args[7] if len(args) > 7 else False))
        return cells(*args)

    monkeypatch.setattr(queries, "_cells", spy)
    since = dt.datetime(2024, 12, 20, tzinfo=zone)
    until = dt.datetime(2025, 2, 10, tzinfo=zone)
    nps(NpsQuery(loaded.workspace, since=since, until=until, group_by=("employee",)))
    assert read == [
        (dt.date(2024, 12, 20), dt.date(2025, 1, 1), False),
        (dt.date(2025, 1, 1), dt.date(2025, 2, 1), True),
        (dt.date(2025, 2, 1), dt.date(2025, 2, 10), False),
    ]
    read.clear()
    nps(NpsQuery(loaded.workspace, since=since, until=until, group_by=("week",)))
    assert read == [(dt.date(2024, 12, 20), dt.date(2025, 2, 10), False)]  # needs the days


@pytest.fixture
def api_for(make_api: Any) -> Callable[..., dict[str, Any]]:
    def get(world: World, **params: Any) -> dict[str, Any]:
        res = make_api(world.workspace, ("read",)).get("/analytics/nps", **params)
        assert res.status_code == 200, res.content
        body: dict[str, Any] = res.json()
        assert set(body) == {"confidence", "method", "overall", "groups"}
        return body

    return get


def test_incremental_changes_are_served_at_once(loaded: World, api_for: Any) -> None:
    api_for(loaded, group_by="branch")  # builds the rollups
    row = Response.objects.filter(workspace=loaded.workspace, score=10, is_test=False).first()
    assert row is not None
    row.score = 0
    row.save()
    Response.objects.filter(pk=Response.objects.filter(score=9).values("pk")[:1]).delete()
    response(loaded, 5000, dt.datetime(2025, 1, 15, 9, tzinfo=UTC), 3,
             branch=loaded.branches[0]).save()  # fmt: skip
    check(api_for(loaded, group_by="branch,weekday"), loaded, ("branch", "weekday"))


def test_filters_restrict_every_entity_dimension(loaded: World) -> None:
    ws = loaded.workspace
    codes = _codes(loaded)
    result = nps(NpsQuery(ws, filters={"employee": ["E1", "E2", "E3"]}, group_by=("branch",)))
    want = expected(loaded, ("branch",), where=lambda r: codes["employee"].get(r["employee_id"])
                    in {"E1", "E2", "E3"})  # fmt: skip
    assert {tuple(g.key.values()): (g.stats.promoters, g.stats.passives, g.stats.detractors)
            for g in result.groups} == want  # fmt: skip
    result = nps(NpsQuery(ws, filters={"region": ["R2"]}, group_by=("stage", "weekday")))
    want = expected(loaded, ("stage", "weekday"),
                    where=lambda r: codes["region"].get(r["branch_id"]) == "R2")  # fmt: skip
    assert {tuple(g.key.values()): (g.stats.promoters, g.stats.passives, g.stats.detractors)
            for g in result.groups} == want  # fmt: skip
    result = nps(NpsQuery(ws, filters={"segment": ["vip"], "stage": ["S1"]}))
    want = expected(loaded, (), where=lambda r: r["segment"] == "vip"
                    and codes["stage"].get(r["touchpoint_id"]) == "S1")  # fmt: skip
    assert (result.overall.promoters, result.overall.passives, result.overall.detractors) == want[
        ()
    ]


def test_weekday_and_hour_in_the_workspace_zone_across_dst(world: World, api_for: Any) -> None:
    # Chisinau moves from UTC+2 to UTC+3 at 02:00 local (00:00 UTC) on Sunday 30 March 2025.
    times = {
        dt.datetime(2025, 3, 29, 21, 30, tzinfo=UTC): (6, 23),  # Saturday 23:30 (+2)
        dt.datetime(2025, 3, 29, 22, 30, tzinfo=UTC): (7, 0),  # Sunday 00:30 (+2)
        dt.datetime(2025, 3, 29, 23, 59, tzinfo=UTC): (7, 1),  # 01:59 (+2)
        dt.datetime(2025, 3, 30, 0, 0, tzinfo=UTC): (7, 3),  # 03:00 (+3)
        dt.datetime(2025, 3, 30, 21, 30, tzinfo=UTC): (1, 0),  # Monday 00:30 (+3)
    }
    for i, when in enumerate(times):
        response(world, i, when, 10).save()
    body = api_for(world, group_by="weekday,hour")
    got = {(g["key"]["weekday"], g["key"]["hour"]): g["n"] for g in body["groups"]}
    assert got == {key: 1 for key in times.values()}
    days = {g["key"]["day"]: g["n"] for g in api_for(world, group_by="day")["groups"]}
    assert days == {"2025-03-29": 1, "2025-03-30": 3, "2025-03-31": 1}
    # a local day with 23 hours: since/until at its local midnights (+02:00 and +03:00)
    body = api_for(world, since="2025-03-30T00:00:00+02:00", until="2025-03-31T00:00:00+03:00")
    assert body["overall"]["n"] == 3


def test_since_inclusive_until_exclusive(world: World, api_for: Any) -> None:
    since = dt.datetime(2025, 5, 1, 7, 0, tzinfo=UTC)
    until = dt.datetime(2025, 5, 3, 21, 0, tzinfo=UTC)  # 00:00 local, a cell boundary
    for i, when in enumerate([since - dt.timedelta(microseconds=1), since, until
                              - dt.timedelta(microseconds=1), until]):  # fmt: skip
        response(world, i, when, 9 + i % 2).save()
    body = api_for(world, since=since.isoformat(), until=until.isoformat())
    assert body["overall"]["n"] == 2
    body = api_for(world, since="2025-05-01T10:00:00+03:00", until="2025-05-04T00:00:00+03:00")
    assert body["overall"]["n"] == 2


def test_below_average_flags_the_weak_branch_only(loaded: World, api_for: Any) -> None:
    groups = {g["key"]["branch"]: g for g in api_for(loaded, group_by="branch")["groups"]}
    assert {b for b, g in groups.items() if g["below_average"]} == {"B03"}


def test_uniform_data_flags_nothing(world: World, api_for: Any) -> None:
    rows = []
    for i in range(400):
        rows.append(response(world, i, dt.datetime(2025, 1, 1, tzinfo=UTC)
                             + dt.timedelta(hours=i), [10, 9, 8, 3][i // 4 % 4],
                             branch=world.branches[i % 4]))  # fmt: skip
    Response.objects.bulk_create(rows)
    groups = api_for(world, group_by="branch")["groups"]
    assert [g["n"] for g in groups] == [100] * 4
    assert not any(g["below_average"] for g in groups)
    assert all(g["p_value"] is not None for g in groups)


def test_small_groups_are_not_tested(loaded: World, api_for: Any) -> None:
    body = api_for(loaded, group_by="employee,month", min_n=60)
    small = [g for g in body["groups"] if g["n"] < 60]
    assert small and all(g["p_value"] is None and not g["below_average"] for g in small)
    assert any(g["p_value"] is not None for g in body["groups"] if g["n"] >= 60)
    check(api_for(loaded, group_by="employee,month"), loaded, ("employee", "month"))


def test_survey_thresholds(world: World, api_for: Any) -> None:
    for i, score in enumerate([10, 9, 8, 7, 6, 5]):
        response(world, i, dt.datetime(2025, 1, 2, tzinfo=UTC), score).save()
    assert api_for(world)["overall"]["promoters"] == 2
    NpsThresholds.objects.create(survey=world.survey, promoter_min=8, detractor_max=5)
    overall = api_for(world)["overall"]
    assert (overall["promoters"], overall["passives"], overall["detractors"]) == (3, 2, 1)


def test_other_workspace_never_counted(
    loaded: World, other_workspace: Workspace, api_for: Any
) -> None:
    other = build_world(other_workspace)
    Response.objects.bulk_create(random_responses(other, 300, seed=9))
    check(api_for(loaded, group_by="branch"), loaded, ("branch",))
    assert api_for(other, group_by="branch")["overall"]["n"] == len(
        [r for r in raw_rows(other_workspace) if r["score"] is not None and not r["is_test"]]
    )


def test_dirty_days_are_read_from_the_raw_answers(loaded: World, api_for: Any) -> None:
    """A request never recomputes cells: the days changed since the heartbeat's last step come
    from the raw answers, whole months holding one from their daily cells."""
    api_for(loaded)
    Response.objects.filter(workspace=loaded.workspace, score=10).first().delete()  # type: ignore[union-attr]
    changed = Response.objects.filter(workspace=loaded.workspace, score=9).last()
    assert changed is not None
    changed.score = 0
    changed.save()
    dirty = set(DirtyDay.objects.filter(workspace_id=loaded.workspace.pk).values_list("day"))
    assert dirty
    for group_by in (("region",), ("employee",), ("month",), ("week",), ()):
        check(api_for(loaded, group_by=",".join(group_by)), loaded, group_by)
    # still dirty: the requests wrote nothing
    assert (
        set(DirtyDay.objects.filter(workspace_id=loaded.workspace.pk).values_list("day")) == dirty
    )


def test_scope_and_errors(world: World, make_api: Any) -> None:
    ingest = make_api(world.workspace, ("ingest",))
    assert ingest.get("/analytics/nps").status_code == 403
    read = make_api(world.workspace, ("read",))

    def error(**params: Any) -> dict[str, Any]:
        res = read.get("/analytics/nps", **params)
        assert res.status_code == 422, res.content
        body: dict[str, Any] = res.json()
        assert "detail" in body
        return body["errors"]

    assert "survey" in error(survey="nope")
    assert "group_by" in error(group_by="branch,colour")
    assert "group_by" in error(group_by="branch,weekday,hour")
    assert "since" in error(since="2025-01-01T00:00:00")
    assert "branch" in error(branch="B01,B99")
    assert read.get("/analytics/nps", since="2025-01-01T00:00:00Z").status_code == 200
