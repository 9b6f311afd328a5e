"""The pain map against a hand computation (``docs/pain-map.md``).

The constructed data, 25 answers of the default NPS survey (reasons question: staff, waiting,
price, quality, other), all in the period: 10 promoters (P1 anonymous), 5 passives and ten
detractors, D1-D5 in the week of 2 June 2025 and D6-D10 in the week of 9 June:

    D1  ticked waiting, case coded waiting       D6  case coded rude, ticked staff
    D2  ticked waiting and price                 D7  nothing
    D3  case coded rude                          D8  nothing
    D4  ticked price                             D9  ticked other
    D5  ticked waiting (same customer as D1)     D10 case coded waiting

so waiting 4 (D1 once), price 2, rude 2, other 1, staff 1. ``waiting`` and ``rude`` are
reason codes of the taxonomy, the rest options only. The workspace has 100 customers; the
respondents are 23 customers and one anonymous answer, 24 in all.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics.pain import PainQuery, pain_map
from cxloop.cases.models import Case, CaseSource, ReasonCode
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.organisation.models import Branch, Employee, Region, Team
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

UTC = dt.UTC
WEEK_A = dt.datetime(2025, 6, 3, 12, tzinfo=UTC)  # Tuesday of ISO week 2025-W23
WEEK_B = dt.datetime(2025, 6, 10, 12, tzinfo=UTC)  # 2025-W24
SINCE = dt.datetime(2025, 6, 1, tzinfo=UTC)
UNTIL = dt.datetime(2025, 7, 1, tzinfo=UTC)
Z95 = 1.959963984540054
_ids = itertools.count()


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    customers: list[Customer]
    detractors: list[Response]
    andrei: Employee
    elena: Employee
    sofia: Employee


def save(
    world_ws: Workspace, survey: Survey, score: int, when: dt.datetime, **fields: Any
) -> Response:
    return Response.objects.create(
        workspace=world_ws,
        survey=survey,
        external_id=f"R{next(_ids)}",
        score=score,
        answered_at=when,
        source=ResponseSource.WEB,
        **fields,
    )


def coded(response: Response, *codes: ReasonCode) -> Case:
    now = clock.now()
    case = Case.objects.create(
        workspace_id=response.workspace_id,
        source=CaseSource.RESPONSE,
        response=response,
        survey=response.survey,
        due_at=now,
        warn_at=now,
    )
    case.reasons.add(*codes)
    return case


def wilson(x: int, n: int) -> tuple[float, float]:
    p = x / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return centre - half, centre + half


@pytest.fixture
def world(workspace: Workspace, make_user: Callable[..., Any]) -> World:
    ws = workspace
    survey = make_survey(ws, "nps")
    customers = [Customer.objects.create(workspace=ws, external_id=f"C{i}") for i in range(1, 101)]
    waiting = ReasonCode.objects.create(
        workspace=ws, code="waiting", labels={"en": "Queues", "ru": "Очереди"}
    )
    rude = ReasonCode.objects.create(workspace=ws, code="rude", labels={"en": "Rude staff"})
    ReasonCode.objects.create(workspace=ws, code="unused", labels={"en": "Never cited"})

    region = Region.objects.create(workspace=ws, code="R1", name="Centre")
    branch = Branch.objects.create(workspace=ws, code="B01", name="Centru", region=region)
    team = Team.objects.create(workspace=ws, code="T1", name="Front", branch=branch)
    sofia = Employee.objects.create(
        workspace=ws, code="SUP", name="Sofia", team=team,
        user=make_user(ws, Role.SUPERVISOR, username="sofia"),
    )  # fmt: skip
    andrei = Employee.objects.create(workspace=ws, code="AGT", name="Andrei", supervisor=sofia)
    elena = Employee.objects.create(workspace=ws, code="AGT2", name="Elena")

    save(ws, survey, 10, WEEK_A)  # P1, anonymous
    for i in range(2, 11):
        save(ws, survey, 10, WEEK_A, customer=customers[i - 1])
    for i in range(11, 16):
        save(ws, survey, 8, WEEK_B, customer=customers[i - 1])
    ticks: list[list[str]] = [
        ["waiting"], ["waiting", "price"], [], ["price"], ["waiting"],
        ["staff"], [], [], ["other"], [],
    ]  # fmt: skip
    detractors = []
    for k, ticked in enumerate(ticks, 1):
        customer = customers[15] if k == 5 else customers[14 + k]
        detractors.append(
            save(
                ws, survey, 3, WEEK_A if k <= 5 else WEEK_B,
                customer=customer,
                answers={"reasons": ticked} if ticked else {},
                employee=elena if k in (3, 6) else andrei,
            )
        )  # fmt: skip
    coded(detractors[0], waiting)
    coded(detractors[2], rude)
    coded(detractors[5], rude)
    coded(detractors[9], waiting)
    coded(detractors[6])  # a case without a reason cites nothing
    # Never counted: a test answer, an answer outside the period.
    save(ws, survey, 2, WEEK_A, is_test=True, answers={"reasons": ["waiting"]})
    save(ws, survey, 2, UNTIL + dt.timedelta(days=1), answers={"reasons": ["waiting"]})
    return World(ws, survey, customers, detractors, andrei, elena, sofia)


def test_shares_gains_and_extrapolation_match_a_hand_computation(world: World) -> None:
    result = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL))

    assert (result.responses, result.detractors, result.promoters) == (25, 10, 10)
    assert result.nps == 0.0
    assert (result.respondents, result.customers) == (24, 100)
    assert result.citing_any == 8
    got = {r.code: r for r in result.reasons}
    # Ranked by share; price and rude tie at 2 and are ordered by label, as other and staff.
    assert [r.code for r in result.reasons] == ["waiting", "price", "rude", "other", "staff"]
    assert [r.citing for r in result.reasons] == [4, 2, 2, 1, 1]
    assert [r.share for r in result.reasons] == [0.4, 0.2, 0.2, 0.1, 0.1]
    # Coverage of the top k: waiting {1,2,5,10}, + price {4}, + rude {3,6}, + other {9}.
    assert [r.cumulative for r in result.reasons] == [0.4, 0.5, 0.7, 0.8, 0.8]
    assert [r.nps_gain for r in result.reasons] == [16.0, 8.0, 8.0, 4.0, 4.0]
    assert result.reasons[-1].cumulative_gain == pytest.approx(32.0)
    assert got["waiting"].share_low == pytest.approx(wilson(4, 10)[0])
    assert got["waiting"].share_high == pytest.approx(wilson(4, 10)[1])

    # Labels: the taxonomy's, else the option's text.
    assert got["waiting"].label == "Queues" and got["waiting"].source == "reason_code"
    assert got["rude"].label == "Rude staff"
    assert got["price"].label == "Price" and got["price"].source == "option"
    assert got["other"].label == "Something else"

    # D1 and D5 are the same customer: 3 respondents of 24 cite waiting, of 100 customers.
    affected = got["waiting"].extrapolation
    assert affected is not None
    low, high = wilson(3, 24)
    assert (affected.successes, affected.n, affected.population) == (3, 24, 100)
    assert affected.estimate == round(100 * 3 / 24)
    assert (affected.low, affected.high) == (round(100 * low), round(100 * high))

    # The trend per ISO week: 3 of the 5 detractors of week A, 1 of the 5 of week B.
    trend = [(p.period, p.start, p.detractors, p.citing) for p in got["waiting"].trend]
    assert trend == [
        ("2025-W23", dt.date(2025, 6, 2), 5, 3),
        ("2025-W24", dt.date(2025, 6, 9), 5, 1),
    ]
    assert [p.share for p in got["rude"].trend] == [0.2, 0.2]
    months = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL, every="month"))
    assert [(p.period, p.citing) for p in months.reasons[0].trend] == [("2025-06", 4)]


def test_a_reason_coded_and_ticked_counts_once(world: World) -> None:
    # D1 carries waiting both ways; coding D2's case with waiting too changes nothing.
    coded(world.detractors[1], ReasonCode.objects.get(workspace=world.workspace, code="waiting"))

    result = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL))

    assert result.reasons[0].code == "waiting" and result.reasons[0].citing == 4


def test_labels_follow_the_language(world: World) -> None:
    with translation.override("ru"):
        result = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL))
    labels = {r.code: r.label for r in result.reasons}
    assert labels["waiting"] == "Очереди"
    assert labels["price"] == "Цена"
    assert labels["rude"] == "Rude staff"  # no Russian label: the English one


def test_another_workspace_is_never_counted(world: World, other_workspace: Workspace) -> None:
    survey = make_survey(other_workspace, "nps")
    rc = ReasonCode.objects.create(workspace=other_workspace, code="rude", labels={})
    for _ in range(5):
        r = save(other_workspace, survey, 0, WEEK_A, answers={"reasons": ["waiting"]})
        coded(r, rc)

    result = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL))
    assert (result.responses, result.detractors) == (25, 10)
    assert [r.citing for r in result.reasons] == [4, 2, 2, 1, 1]
    theirs = pain_map(PainQuery(other_workspace, since=SINCE, until=UNTIL))
    assert [(r.code, r.citing) for r in theirs.reasons] == [("rude", 5), ("waiting", 5)]


def test_no_extrapolation_with_fewer_customers_than_respondents(world: World) -> None:
    # 23 customers answered, plus one anonymous answer: 24 respondents.
    Customer.objects.filter(workspace=world.workspace, responses__isnull=True).delete()

    result = pain_map(PainQuery(world.workspace, since=SINCE, until=UNTIL))
    assert (result.customers, result.respondents) == (23, 24)
    assert result.reasons and all(r.extrapolation is None for r in result.reasons)
    assert result.reasons[0].citing == 4


# --------------------------------------------------------------------------- API


def test_api_pain_matches_the_query(world: World, make_api: Any) -> None:
    api = make_api(world.workspace, ("read",))
    res = api.get(
        "/analytics/pain", survey="nps", since="2025-06-01T00:00:00Z", until="2025-07-01T00:00:00Z"
    )

    assert res.status_code == 200, res.content
    body = res.json()
    assert (body["responses"], body["detractors"], body["nps"]) == (25, 10, 0.0)
    first = body["reasons"][0]
    assert (first["code"], first["label"], first["citing"]) == ("waiting", "Queues", 4)
    assert (first["share"], first["cumulative"], first["nps_gain"]) == (0.4, 0.4, 16.0)
    assert first["affected"]["estimate"] == 12 and first["affected"]["customers"] == 100
    assert [t["citing"] for t in first["trend"]] == [3, 1]
    assert [r["code"] for r in body["reasons"]] == ["waiting", "price", "rude", "other", "staff"]


def test_api_pain_scope_and_errors(world: World, make_api: Any) -> None:
    assert make_api(world.workspace, ("ingest",)).get("/analytics/pain").status_code == 403
    read = make_api(world.workspace, ("read",))

    def error(**params: Any) -> dict[str, Any]:
        res = read.get("/analytics/pain", **params)
        assert res.status_code == 422, res.content
        body: dict[str, Any] = res.json()
        assert "detail" in body
        return body["errors"]

    assert "survey" in error(survey="nope")
    assert "since" in error(since="2025-06-01T00:00:00")
    assert "until" in error(since="2025-06-02T00:00:00Z", until="2025-06-01T00:00:00Z")
    assert "every" in error(every="day")
    assert read.get("/analytics/pain", since="2025-06-01T00:00:00+03:00").status_code == 200


# --------------------------------------------------------------------------- the page


URL = "/analytics/pain"
PERIOD = {"since": "2025-06-01", "until": "2025-06-30"}


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_draws_the_pareto_chart_and_the_table(
    world: World, make_user: Callable[..., Any]
) -> None:
    res = logged_in(make_user(world.workspace, Role.CX_MANAGER)).get(URL, PERIOD)

    assert res.status_code == 200
    html = res.content.decode()
    assert 'id="pareto-chart"' in html and "<svg" in html
    assert '<tr data-code="waiting">' in html
    assert "40.0%" in html and "+16.0" in html
    # Customers affected: 12 of 100, with the interval.
    low, high = wilson(3, 24)
    assert f'12 <span class="interval">{round(100 * low)} … {round(100 * high)}</span>' in html


def test_new_answers_change_the_table_at_once_and_the_chart_says_it_is_older(
    world: World, make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CHART_MAX_AGE = 60
    client = logged_in(make_user(world.workspace, Role.CX_MANAGER))
    first = client.get(URL, PERIOD).content.decode()
    assert 'id="chart-stale"' not in first
    waiting = ReasonCode.objects.get(workspace=world.workspace, code="waiting")
    for i in range(3):
        coded(save(world.workspace, world.survey, 2, WEEK_B, customer=world.customers[60 + i]),
              waiting)  # fmt: skip

    again = client.get(URL, PERIOD).content.decode()
    # The table counts the new detractors; the chart is the one drawn a moment ago, and says so.
    assert '<tr data-code="waiting">' in again and again != first
    assert 'id="chart-stale"' in again and "The chart was drawn at " in again
    chart = re.search(r'id="pareto-chart".*?</figure>', first, re.S)
    assert chart is not None and chart.group(0) in again

    settings.CHART_MAX_AGE = 0
    fresh = client.get(URL, PERIOD).content.decode()
    assert 'id="chart-stale"' not in fresh and chart.group(0) not in fresh


def test_the_downloads_hold_the_table(world: World, make_user: Callable[..., Any]) -> None:
    client = logged_in(make_user(world.workspace, Role.ANALYST))
    got = client.get(URL, {**PERIOD, "format": "csv", "table": "reasons"})

    assert got["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert lines[1][:9] == ["Queues", "waiting", "4", "40.0", lines[1][4], lines[1][5], "40.0",
                            "16.0", "16.0"]  # fmt: skip
    assert lines[1][9] == "12"
    xlsx = client.get(URL, {**PERIOD, "format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_a_supervisor_sees_their_teams_detractors_only(world: World) -> None:
    html = logged_in(world.sofia.user).get(URL, PERIOD).content.decode()

    # D3 and D6 (the rude ones) are about Elena, of another team.
    assert 'id="scope-tag"' in html
    assert 'data-code="rude"' not in html
    assert '<tr data-code="waiting">' in html
    assert 'class="num affected"' not in html  # no extrapolation for a team


def test_roles(world: World, make_user: Callable[..., Any]) -> None:
    assert logged_in(make_user(world.workspace, Role.EMPLOYEE)).get(URL).status_code == 403
    lone = logged_in(make_user(world.workspace, Role.SUPERVISOR, username="lone")).get(URL)
    assert lone.status_code == 200 and 'id="no-team"' in lone.content.decode()
    for role in (Role.ADMIN, Role.ANALYST):
        assert logged_in(make_user(world.workspace, role)).get(URL, PERIOD).status_code == 200
