"""The sample-size planner against a hand computation.

The constructed data, answered 10 days ago unless said otherwise::

    B01  60 promoters, 20 passives, 20 detractors (n 100); 200 invitations sent, 100 answered
    B01  40 more detractors 120 days ago, and 5 test answers: outside the plan
    B02  no answers, 40 invitations sent, none answered
    B03  all 30 answers promoters
    another workspace: a branch B01 with 500 answers, never counted

Needed at ± 10 points: n = ⌈1.96²·Var/0.1² - 3⌉ with the adjusted-Wald variance (1 for B02).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics.planner import PERIOD_DAYS, plan
from cxloop.core import clock
from cxloop.organisation.models import Branch, Region
from cxloop.surveys.models import Invitation, Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

Z = 1.959963984540054
_ids = itertools.count()


def answers(
    workspace: Workspace, survey: Survey, branch: Branch, scores: list[int], days_ago: int = 10,
    is_test: bool = False,
) -> None:  # fmt: skip
    at = clock.now() - dt.timedelta(days=days_ago)
    Response.objects.bulk_create(
        Response(
            workspace=workspace, survey=survey, external_id=f"P{next(_ids)}", score=score,
            answered_at=at, source=ResponseSource.WEB, branch=branch, is_test=is_test,
        )
        for score in scores
    )  # fmt: skip


def invitations(
    workspace: Workspace, survey: Survey, branch: Branch, sent: int, answered: int
) -> None:
    at = clock.now() - dt.timedelta(days=10)
    Invitation.objects.bulk_create(
        Invitation(
            workspace=workspace, survey=survey, delivery_channel="email", language="en",
            branch=branch, status="sent", scheduled_for=at, expires_at=at + dt.timedelta(days=14),
            sent_at=at, answered_at=at if i < answered else None,
        )
        for i in range(sent)
    )  # fmt: skip


def hand_needed(p: int, q: int, d: int, margin: float) -> int:
    n_adj = p + q + d + 3
    pa, da = (p + 0.75) / n_adj, (d + 0.75) / n_adj
    var = pa + da - (pa - da) ** 2
    return max(0, math.ceil(Z**2 * var / (margin / 100) ** 2 - 3))


@pytest.fixture
def world(workspace: Workspace, other_workspace: Workspace) -> dict[str, Any]:
    survey = make_survey(workspace)
    region = Region.objects.create(workspace=workspace, code="R1", name="R1")
    b = {
        c: Branch.objects.create(workspace=workspace, code=c, name=f"Branch {c}", region=region)
        for c in ("B01", "B02", "B03")
    }
    answers(workspace, survey, b["B01"], [10] * 60 + [8] * 20 + [3] * 20)
    answers(workspace, survey, b["B01"], [0] * 40, days_ago=120)
    answers(workspace, survey, b["B01"], [0] * 5, is_test=True)
    answers(workspace, survey, b["B03"], [9] * 30)
    invitations(workspace, survey, b["B01"], 200, 100)
    invitations(workspace, survey, b["B02"], 40, 0)
    other_survey = make_survey(other_workspace)
    other_region = Region.objects.create(workspace=other_workspace, code="R1", name="R1")
    other_b01 = Branch.objects.create(
        workspace=other_workspace, code="B01", name="Theirs", region=other_region
    )
    answers(other_workspace, other_survey, other_b01, [0] * 500)
    invitations(other_workspace, other_survey, other_b01, 50, 50)
    return {"survey": survey, "workspace": workspace}


def test_needed_current_rate_and_invitations_match_a_hand_computation(
    world: dict[str, Any],
) -> None:
    result = plan(world["workspace"], [world["survey"]], by="branch", margin=10, per="month")

    rows = {r.code: r for r in result.rows}
    assert set(rows) == {"B01", "B02", "B03"}
    b01 = rows["B01"]
    assert b01.responses == 100 and b01.nps == 40.0
    assert b01.needed == hand_needed(60, 20, 20, 10)
    assert b01.current == pytest.approx(100 * (365.25 / 12) / 90)
    assert (b01.sent, b01.answered, b01.response_rate) == (200, 100, 0.5)
    assert b01.invitations == math.ceil(b01.needed / 0.5)
    assert b01.short == (b01.current < b01.needed)

    b02 = rows["B02"]
    # No answers: the worst-case variance 1.
    assert not b02.variance_known and b02.variance == 1.0
    assert b02.needed == math.ceil(Z**2 / 0.01 - 3) == 382
    assert b02.current == 0 and b02.short
    assert b02.response_rate == 0.0 and b02.invitations is None

    b03 = rows["B03"]
    assert b03.needed == hand_needed(30, 0, 0, 10)
    assert b03.response_rate is None and b03.invitations is None


def test_per_day_and_week_scale_the_current_volume(world: dict[str, Any]) -> None:
    for per in ("day", "week"):
        result = plan(world["workspace"], [world["survey"]], by="branch", margin=5, per=per)
        b01 = next(r for r in result.rows if r.code == "B01")
        assert b01.current == pytest.approx(100 * PERIOD_DAYS[per] / 90)
        assert b01.needed == hand_needed(60, 20, 20, 5)
        assert b01.short


def test_a_wide_margin_needs_few_answers_and_nothing_is_short(world: dict[str, Any]) -> None:
    result = plan(world["workspace"], [world["survey"]], by="branch", margin=50, per="month")
    b01 = next(r for r in result.rows if r.code == "B01")
    assert b01.needed == hand_needed(60, 20, 20, 50) and not b01.short


@pytest.mark.parametrize("margin", [0, -1, 50.5])
def test_bad_margins_are_refused(world: dict[str, Any], margin: float) -> None:
    with pytest.raises(ValueError, match="margin"):
        plan(world["workspace"], [world["survey"]], margin=margin)


def test_the_api_answers_and_counts_only_its_workspace(world: dict[str, Any], api: Any) -> None:
    response = api.get("/analytics/planner", by="branch", margin="10", per="month")

    assert response.status_code == 200, response.content
    body = response.json()
    rows = {r["code"]: r for r in body["rows"]}
    assert rows["B01"]["responses"] == 100 and rows["B01"]["sent"] == 200
    assert rows["B01"]["needed"] == hand_needed(60, 20, 20, 10)
    assert body["short"] == sum(1 for r in body["rows"] if r["short"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"survey": "nope"}, "survey"),
        ({"by": "planet"}, "by"),
        ({"margin": "0"}, "margin"),
        ({"margin": "51"}, "margin"),
        ({"margin": "-3"}, "margin"),
        ({"per": "year"}, "per"),
    ],
)
def test_the_api_refuses_what_it_cannot_use(
    world: dict[str, Any], api: Any, params: dict[str, str], field: str
) -> None:
    response = api.get("/analytics/planner", **params)

    assert response.status_code == 422
    assert field in response.json()["errors"]


def test_the_page_shows_the_table_and_the_chart(
    world: dict[str, Any], make_user: Callable[..., Any]
) -> None:
    client = Client()
    client.force_login(make_user(world["workspace"], Role.CX_MANAGER))

    response = client.get("/analytics/planner", {"by": "branch", "margin": "10", "per": "month"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="planner-chart"' in html and "<svg" in html
    assert 'data-code="B02" class="short"' in html
    assert "Theirs" not in html


def test_a_bad_margin_on_the_page_is_a_form_error(
    world: dict[str, Any], make_user: Callable[..., Any]
) -> None:
    client = Client()
    client.force_login(make_user(world["workspace"], Role.ADMIN))

    response = client.get("/analytics/planner", {"margin": "80"})

    assert response.status_code == 200
    assert 'id="planner-table"' not in response.content.decode()


def test_supervisors_are_refused(world: dict[str, Any], make_user: Callable[..., Any]) -> None:
    client = Client()
    client.force_login(make_user(world["workspace"], Role.SUPERVISOR))
    assert client.get("/analytics/planner").status_code == 403


def test_the_window_is_the_90_whole_local_days_before_today(workspace: Workspace) -> None:
    """Today's answers wait for tomorrow; the first day counts from its local midnight; two
    requests on the same day plan with the same numbers (so the page's chart is drawn once)."""
    from cxloop.analytics import rollups

    survey = make_survey(workspace)
    region = Region.objects.create(workspace=workspace, code="R1", name="R1")
    branch = Branch.objects.create(workspace=workspace, code="B01", name="B01", region=region)
    tz = rollups.tz_of(workspace)
    now = clock.now()
    today = now.astimezone(tz).date()
    first = dt.datetime.combine(today - dt.timedelta(days=90), dt.time.min, tzinfo=tz)
    midnight = dt.datetime.combine(today, dt.time.min, tzinfo=tz)
    for at, score in [
        (midnight + dt.timedelta(minutes=1), 0),  # today: not yet
        (midnight - dt.timedelta(minutes=1), 10),  # yesterday's last minute
        (first, 10),  # the first day's first second
        (first - dt.timedelta(seconds=1), 0),  # the day before the window
    ]:
        Response.objects.create(
            workspace=workspace, survey=survey, external_id=f"W{next(_ids)}", score=score,
            answered_at=at, source=ResponseSource.WEB, branch=branch,
        )  # fmt: skip
    early = plan(workspace, [survey], by="branch", now=midnight + dt.timedelta(minutes=2))
    late = plan(workspace, [survey], by="branch", now=midnight + dt.timedelta(hours=23))
    assert (early.start, early.end) == (first, midnight) == (late.start, late.end)
    row = next(r for r in early.rows if r.code == "B01")
    assert (row.responses, row.nps) == (2, 100.0)
    assert early.rows == late.rows
