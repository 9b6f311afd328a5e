"""Our NPS against the competitors' (``docs/pain-map.md``), against a hand computation.

The constructed data, 20 answers of a relationship survey with a competitors question
(Orange, Moldcell, Unite), in June 2025:

    our scores        10 x 10, 5 x 8, 5 x 3                    P 10  Q 5  D 5   NPS  25
    Orange            scored by answers 1-12: 2 x 10, 4 x 7, 6 x 2
                                                               P 2   Q 4  D 6   NPS -33.3
    Moldcell          scored by answers 13-16: 3 x 9, 1 x 6     P 3   Q 0  D 1   NPS  50
    Unite             used by answer 17, never scored          n 0

Orange is used by answers 1-14 (13 and 14 did not score it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from scipy.stats import t as student_t

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics.competitors import CompetitorQuery, compare
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Response, ResponseSource, Survey, SurveyKind
from cxloop.surveys.tests.factories import make_survey

from .factories import normal_cdf, wald

UTC = dt.UTC
WHEN = dt.datetime(2025, 6, 10, 12, tzinfo=UTC)
SINCE = dt.datetime(2025, 6, 1, tzinfo=UTC)
UNTIL = dt.datetime(2025, 7, 1, tzinfo=UTC)
NAMES = ["Orange", "Moldcell", "Unite"]
OURS = [10] * 10 + [8] * 5 + [3] * 5
ORANGE = {i: s for i, s in enumerate([10, 10, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2])}
MOLDCELL = {12: 9, 13: 9, 14: 9, 15: 6}
_ids = itertools.count()


def relationship_definition() -> dict[str, Any]:
    definition = default_definition("Acme")
    definition["questions"].insert(
        2,
        {
            "code": "competitors",
            "type": "competitors",
            "competitors": NAMES,
            "text": {"en": "Others?", "ru": "Другие?", "ro": "Alții?"},
        },
    )
    return definition


def save(workspace: Workspace, survey: Survey, score: int, **fields: Any) -> Response:
    values: dict[str, Any] = {"answered_at": WHEN, "source": ResponseSource.WEB}
    values.update(fields)
    return Response.objects.create(
        workspace=workspace, survey=survey, external_id=f"R{next(_ids)}", score=score, **values
    )


def fill(workspace: Workspace, survey: Survey) -> None:
    for i, score in enumerate(OURS):
        uses = [n for n, used in (("Orange", i < 14), ("Unite", i == 16)) if used]
        if i in MOLDCELL:
            uses.append("Moldcell")
        scores = {}
        if i in ORANGE:
            scores["Orange"] = ORANGE[i]
        if i in MOLDCELL:
            scores["Moldcell"] = MOLDCELL[i]
        answers = {"competitors": {"uses": uses, "scores": scores}} if uses else {}
        save(workspace, survey, score, answers=answers)


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    found = make_survey(
        workspace, "relationship", kind=SurveyKind.RELATIONSHIP,
        definition=relationship_definition(),
    )  # fmt: skip
    fill(workspace, found)
    # Never counted: a test answer, an answer after the period.
    bad = {"competitors": {"uses": ["Orange"], "scores": {"Orange": 0}}}
    save(workspace, found, 0, is_test=True, answers=bad)
    save(workspace, found, 0, answered_at=UNTIL, answers=bad)
    return found


def category(score: int) -> int:
    return 1 if score >= 9 else -1 if score <= 6 else 0


def test_nps_and_independent_difference_match_a_hand_computation(
    survey: Survey, workspace: Workspace
) -> None:
    result = compare(CompetitorQuery(workspace, since=SINCE, until=UNTIL))

    assert result.surveys == ["relationship"]
    ours = wald(10, 5, 5)
    assert (result.ours.n, result.ours.nps) == (20, 25.0)
    assert result.ours.ci_low == pytest.approx(ours["ci_low"])
    assert result.ours.ci_high == pytest.approx(ours["ci_high"])
    assert [c.name for c in result.competitors] == NAMES
    orange, moldcell, unite = result.competitors
    assert (orange.stats.promoters, orange.stats.passives, orange.stats.detractors) == (2, 4, 6)
    assert orange.stats.nps == pytest.approx(100 * (2 - 6) / 12)
    assert orange.stats.ci_low == pytest.approx(wald(2, 4, 6)["ci_low"])
    assert (moldcell.stats.n, moldcell.stats.nps) == (4, 50.0)
    assert (orange.users, moldcell.users, unite.users) == (14, 4, 1)

    # z of the adjusted scores, independent samples (docs/analytics-statistics.md).
    for competitor, counts in ((orange, (2, 4, 6)), (moldcell, (3, 0, 1))):
        (a, var_a), (b, var_b) = ours["_adj"], wald(*counts)["_adj"]
        z = (a - b) / math.sqrt(var_a + var_b)
        assert competitor.difference.z == pytest.approx(z)
        assert competitor.difference.p_two_sided == pytest.approx(2 * (1 - normal_cdf(abs(z))))
        assert competitor.difference.diff == pytest.approx(25.0 - wald(*counts)["nps"])
    # 25 against -33 from 12 raters: not significant for the independent test (n' = 15)...
    assert 0.05 < orange.difference.p_two_sided < 0.07
    # ...but significant for the paired one, which uses that the same people scored both.
    assert orange.paired.p_two_sided is not None and orange.paired.p_two_sided < 0.001
    assert unite.stats.n == 0 and unite.stats.nps is None and unite.difference.diff is None


def test_the_paired_test_matches_a_hand_computation(survey: Survey, workspace: Workspace) -> None:
    query = CompetitorQuery(workspace, survey=survey, since=SINCE, until=UNTIL)
    orange = compare(query).competitors[0]

    diffs = [category(OURS[i]) - category(s) for i, s in ORANGE.items()]
    mean = statistics.fmean(diffs)
    t = mean / (statistics.stdev(diffs) / math.sqrt(len(diffs)))
    assert orange.paired.n == 12
    # Our NPS among Orange's raters: answers 1-10 promoters, 11-12 passives.
    assert orange.paired.ours == pytest.approx(100 * 10 / 12)
    assert orange.paired.theirs == pytest.approx(100 * (2 - 6) / 12)
    assert orange.paired.diff == pytest.approx(100 * mean)
    assert orange.paired.t == pytest.approx(t)
    assert orange.paired.p_two_sided == pytest.approx(2 * student_t.sf(abs(t), len(diffs) - 1))
    # Four raters of Moldcell: diffs -1, -1, -1, 0; t = -3 on 3 degrees of freedom.
    moldcell = compare(query).competitors[1].paired
    assert (moldcell.n, moldcell.t) == (4, pytest.approx(-3.0))
    assert moldcell.p_two_sided == pytest.approx(2 * student_t.sf(3.0, 3))
    assert moldcell.p_two_sided is not None and moldcell.p_two_sided > 0.05


def test_other_workspaces_and_surveys_are_never_counted(
    survey: Survey, workspace: Workspace, other_workspace: Workspace
) -> None:
    theirs = make_survey(
        other_workspace, "relationship", kind=SurveyKind.RELATIONSHIP,
        definition=relationship_definition(),
    )  # fmt: skip
    for _ in range(7):
        save(other_workspace, theirs, 0, answers={"competitors": {"uses": ["Orange"],
             "scores": {"Orange": 10}}})  # fmt: skip
    # A transactional survey without a competitors question is not read.
    plain = make_survey(workspace, "after-visit")
    save(workspace, plain, 0)

    result = compare(CompetitorQuery(workspace, since=SINCE, until=UNTIL))
    assert result.ours.n == 20 and result.competitors[0].stats.n == 12
    other = compare(CompetitorQuery(other_workspace))
    assert (other.ours.n, other.ours.nps, other.competitors[0].stats.nps) == (7, -100.0, 100.0)


# --------------------------------------------------------------------------- API


def test_api_competitors(survey: Survey, workspace: Workspace, make_api: Any) -> None:
    read = make_api(workspace, ("read",))
    res = read.get(
        "/analytics/competitors",
        since="2025-06-01T00:00:00+03:00",
        until="2025-07-01T00:00:00Z",
    )

    assert res.status_code == 200, res.content
    body = res.json()
    assert body["ours"]["n"] == 20 and body["ours"]["nps"] == 25.0
    orange = body["competitors"][0]
    assert orange["name"] == "Orange" and orange["n"] == 12 and orange["users"] == 14
    assert orange["diff"] == pytest.approx(25.0 + 100 * 4 / 12)
    assert orange["paired"]["n"] == 12
    assert body["competitors"][2]["nps"] is None


def test_api_competitors_scope_and_errors(
    survey: Survey, workspace: Workspace, make_api: Any
) -> None:
    assert make_api(workspace, ("ingest",)).get("/analytics/competitors").status_code == 403
    make_survey(workspace, "after-visit")
    read = make_api(workspace, ("read",))

    def error(**params: Any) -> dict[str, Any]:
        res = read.get("/analytics/competitors", **params)
        assert res.status_code == 422, res.content
        return dict(res.json()["errors"])

    assert "survey" in error(survey="nope")
    assert "survey" in error(survey="after-visit")  # no competitors question
    assert "since" in error(since="2025-06-01T00:00:00")


# --------------------------------------------------------------------------- the page


URL = "/analytics/competitors"
PERIOD = {"since": "2025-06-01", "until": "2025-06-30"}


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_draws_the_chart_and_the_table(
    survey: Survey, workspace: Workspace, make_user: Callable[..., Any]
) -> None:
    client = logged_in(make_user(workspace, Role.ANALYST))
    res = client.get(URL, PERIOD)

    assert res.status_code == 200
    html = res.content.decode()
    assert 'id="competitors-chart"' in html and "<svg" in html
    assert 'data-name="Orange"' in html and "+58.3" in html and "within chance" in html
    got = client.get(URL, {**PERIOD, "format": "csv"})
    assert got["Content-Type"].startswith("text/csv")
    lines = got.content.decode("utf-8-sig").splitlines()
    assert lines[1].startswith("Us,20,,25.0,") and lines[2].startswith("Orange,12,14,-33.3,")


def test_roles_and_no_survey(workspace: Workspace, make_user: Callable[..., Any]) -> None:
    assert logged_in(make_user(workspace, Role.SUPERVISOR)).get(URL).status_code == 403
    assert logged_in(make_user(workspace, Role.EMPLOYEE)).get(URL).status_code == 403
    res = logged_in(make_user(workspace, Role.CX_MANAGER)).get(URL)
    assert res.status_code == 200 and 'id="no-survey"' in res.content.decode()
