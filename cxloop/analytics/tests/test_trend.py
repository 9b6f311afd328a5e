"""``GET /api/v1/analytics/trend``: its points against an independent computation (raw rows
grouped by local day/ISO week/month in plain Python, the adjusted-Wald interval by hand), the
same numbers as ``/nps?group_by=…``, the initiatives in the period, bad inputs, scope and
workspace isolation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.analytics.models import Initiative
from cxloop.surveys.models import Response

from .factories import World, build_world, random_responses, wald
from .test_api import UNTIL, ZONE, _same, expected

SINCE = dt.datetime(2025, 1, 10, 13, 17, tzinfo=dt.UTC)  # not a local midnight
STATS = ("n", "promoters", "passives", "detractors", "nps", "ci_low", "ci_high")


@pytest.fixture
def world(workspace: Workspace) -> World:
    workspace.time_zone = ZONE
    workspace.save()
    world = build_world(workspace)
    Response.objects.bulk_create(random_responses(world, 900, seed=11, weak=world.branches[1]))
    return world


def _get(api: Any, **params: Any) -> Any:
    return api.get("/analytics/trend", **params)


def _trend(make_api: Any, world: World, **params: Any) -> dict[str, Any]:
    res = _get(make_api(world.workspace, ("read",)), **params)
    assert res.status_code == 200, res.content
    body: dict[str, Any] = res.json()
    assert set(body) == {"confidence", "method", "every", "points", "initiatives"}
    return body


def _start(every: str, key: str) -> str:
    if every == "week":
        year, week = key.split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 1).isoformat()
    if every == "month":
        return f"{key}-01"
    return key


@pytest.mark.parametrize("every", ["day", "week", "month"])
def test_points_match_an_independent_computation(world: World, make_api: Any, every: str) -> None:
    bounds: tuple[dt.datetime | None, dt.datetime | None]
    for bounds in ((None, None), (SINCE, UNTIL)):
        since, until = bounds
        params = {} if since is None or until is None else {
            "since": since.isoformat(), "until": until.isoformat()
        }  # fmt: skip
        body = _trend(make_api, world, survey="nps", every=every, **params)
        assert body["confidence"] == 0.95 and body["method"] == "adjusted-wald"
        assert body["every"] == every
        want = expected(world, (every,), since=since, until=until)
        assert [p["period"] for p in body["points"]] == sorted(k[0] for k in want)
        for point in body["points"]:
            assert list(point) == ["period", "start", *STATS]
            assert point["start"] == _start(every, point["period"])
            _same(point, wald(*want[(point["period"],)]))


@pytest.mark.parametrize("every", ["day", "week", "month"])
def test_the_same_numbers_as_nps_grouped_by_the_period(
    world: World, make_api: Any, every: str
) -> None:
    api = make_api(world.workspace, ("read",))
    params = {"since": SINCE.isoformat(), "until": UNTIL.isoformat(), "branch": "B01,B02"}
    trend = _get(api, every=every, **params).json()
    grouped = api.get("/analytics/nps", group_by=every, **params).json()
    assert len(trend["points"]) == len(grouped["groups"]) >= 2
    for point, group in zip(trend["points"], grouped["groups"], strict=True):
        assert point["period"] == group["key"][every]
        assert {k: point[k] for k in STATS} == {k: group[k] for k in STATS}


def test_filters_restrict_the_points(world: World, make_api: Any) -> None:
    body = _trend(make_api, world, every="month", branch="B02")
    branch = world.branches[1].pk
    want = expected(world, ("month",), where=lambda row: row["branch_id"] == branch)
    assert {p["period"]: p["n"] for p in body["points"]} == {k[0]: sum(v) for k, v in want.items()}


def test_the_initiatives_in_the_period_whose_scope_meets_the_filters(
    world: World, make_api: Any, other_workspace: Workspace
) -> None:
    everywhere = Initiative.objects.create(
        workspace=world.workspace,
        name="New queue",
        description="Tickets",
        date=dt.date(2025, 1, 20),
    )
    b01 = Initiative.objects.create(workspace=world.workspace, name="B01 training",
                                    date=dt.date(2025, 2, 1))  # fmt: skip
    b01.branches.set([world.branches[0]])
    b01.products.set([world.products[1]])
    # until is 07:03 local on 20 February: that day counts, the next does not.
    last = Initiative.objects.create(workspace=world.workspace, name="Last day",
                                     date=dt.date(2025, 2, 20))  # fmt: skip
    Initiative.objects.create(workspace=world.workspace, name="Too late", date=dt.date(2025, 2, 21))
    Initiative.objects.create(workspace=world.workspace, name="Too early", date=dt.date(2025, 1, 9))
    Initiative.objects.create(workspace=other_workspace, name="Theirs", date=dt.date(2025, 1, 20))
    params = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    body = _trend(make_api, world, **params)
    assert body["initiatives"] == [
        {"id": everywhere.pk, "name": "New queue", "description": "Tickets", "date": "2025-01-20",
         "branches": [], "products": [], "survey": None},
        {"id": b01.pk, "name": "B01 training", "description": "", "date": "2025-02-01",
         "branches": ["B01"], "products": ["P2"], "survey": None},
        {"id": last.pk, "name": "Last day", "description": "", "date": "2025-02-20",
         "branches": [], "products": [], "survey": None},
    ]  # fmt: skip
    other_branch = _trend(make_api, world, branch="B03", **params)
    assert [i["name"] for i in other_branch["initiatives"]] == ["New queue", "Last day"]


def test_bad_inputs_are_422_naming_the_parameter(world: World, make_api: Any) -> None:
    api = make_api(world.workspace, ("read",))

    def error(**params: Any) -> dict[str, Any]:
        res = _get(api, **params)
        assert res.status_code == 422, res.content
        body: dict[str, Any] = res.json()
        assert body["detail"]
        return body["errors"]

    assert "every" in error(every="year")
    assert "every" in error(every="")
    assert "survey" in error(survey="nope")
    assert "since" in error(since="2025-01-01T00:00:00")
    assert "since" in error(since="yesterday")
    assert "until" in error(since=UNTIL.isoformat(), until=SINCE.isoformat())
    assert "branch" in error(branch="B01,B99")
    assert "segment" not in error(segment="vip", branch="B99")


def test_scope_and_workspace_isolation(
    world: World, make_api: Any, other_workspace: Workspace
) -> None:
    assert _get(make_api(world.workspace, ("ingest",)), every="week").status_code == 403
    other = build_world(other_workspace)
    Response.objects.bulk_create(random_responses(other, 120, seed=3))
    ours = _trend(make_api, world, every="month")
    theirs = _trend(make_api, other, every="month")
    mine = expected(world, ("month",))
    assert sum(p["n"] for p in ours["points"]) == sum(sum(v) for v in mine.values())
    assert sum(p["n"] for p in theirs["points"]) == sum(
        sum(v) for v in expected(other, ("month",)).values()
    )
    # Their survey code is not ours to ask for.
    their_survey = other.survey.code
    other.survey.code = "theirs"
    other.survey.save()
    res = _get(make_api(world.workspace, ("read",)), survey="theirs")
    assert res.status_code == 422 and "survey" in res.json()["errors"]
    other.survey.code = their_survey
