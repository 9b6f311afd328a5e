"""The NPS dashboard: the numbers it shows against a hand computation, who sees what, the
downloads and the form's errors.

The constructed data, all in the last 30 days (the period the tests ask for)::

    branch B01 "Centru"   20 promoters, 10 passives, 10 detractors   NPS  25
    branch B02 "Botanica"  4 promoters,  6 passives, 30 detractors   NPS -65  (the weak one)
    branch B03 "Bălți"    30 promoters,  8 passives,  2 detractors   NPS  70
    company               54 promoters, 24 passives, 42 detractors   NPS  10, n 120

B01's answers are about Andrei (team T1, reports to the supervisor Sofia); the others about
Elena (team T2, another supervisor).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openpyxl
import pytest
from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics import rollups
from cxloop.core import clock
from cxloop.organisation.models import Branch, Employee, Region, Team
from cxloop.surveys.models import Invitation, Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

URL = "/analytics/"
_ids = itertools.count()


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    branches: dict[str, Branch]
    andrei: Employee
    elena: Employee
    sofia: Employee
    today: dt.date


def answer(
    world: World,
    scores: list[int],
    *,
    branch: str,
    employee: Employee,
    days_ago: int = 3,
    invited: int = 0,
) -> None:
    """Save answers with these scores at noon ``days_ago`` (UTC, the workspace's zone); with
    ``invited``, also that many invitations sent the same day, the first len(scores) answered."""
    at = dt.datetime.combine(world.today - dt.timedelta(days=days_ago), dt.time(12), tzinfo=dt.UTC)
    rows = [
        Response(
            workspace=world.workspace,
            survey=world.survey,
            external_id=f"R{next(_ids)}",
            score=score,
            answered_at=at,
            source=ResponseSource.WEB,
            branch=world.branches[branch],
            employee=employee,
        )
        for score in scores
    ]
    Response.objects.bulk_create(rows)
    rollups.mark_responses(rows)  # bulk_create sends no post_save
    Invitation.objects.bulk_create(
        Invitation(
            workspace=world.workspace,
            survey=world.survey,
            delivery_channel="email",
            language="ro",
            branch=world.branches[branch],
            employee=employee,
            status="sent",
            scheduled_for=at,
            expires_at=at + dt.timedelta(days=14),
            sent_at=at,
            answered_at=at if n < len(scores) else None,
        )
        for n in range(invited)
    )


def scores(promoters: int, passives: int, detractors: int) -> list[int]:
    return [10] * promoters + [8] * passives + [3] * detractors


@pytest.fixture
def world(workspace: Workspace, make_user: Callable[..., Any]) -> World:
    region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
    branches = {
        code: Branch.objects.create(workspace=workspace, code=code, name=name, region=region)
        for code, name in (("B01", "Centru"), ("B02", "Botanica"), ("B03", "Bălți"))
    }
    t1 = Team.objects.create(workspace=workspace, code="T1", name="Front", branch=branches["B01"])
    t2 = Team.objects.create(workspace=workspace, code="T2", name="Back", branch=branches["B02"])
    sofia_user = make_user(workspace, Role.SUPERVISOR, username="sofia")
    sofia = Employee.objects.create(
        workspace=workspace, code="SUP", name="Sofia", team=t1, user=sofia_user
    )
    other = Employee.objects.create(workspace=workspace, code="SUP2", name="Oleg", team=t2)
    andrei = Employee.objects.create(
        workspace=workspace, code="AGT", name="Andrei", team=t1, supervisor=sofia
    )
    elena = Employee.objects.create(
        workspace=workspace, code="AGT2", name="Elena", team=t2, supervisor=other
    )
    w = World(workspace, make_survey(workspace), branches, andrei, elena, sofia, clock.now().date())
    answer(w, scores(20, 10, 10), branch="B01", employee=andrei, invited=80)
    answer(w, scores(4, 6, 30), branch="B02", employee=elena, invited=50)
    answer(w, scores(30, 8, 2), branch="B03", employee=elena)
    return w


def period(world: World, **extra: str) -> dict[str, str]:
    since = world.today - dt.timedelta(days=29)
    return {"since": since.isoformat(), "until": world.today.isoformat(), **extra}


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def hand_interval(p: int, q: int, d: int) -> tuple[float, float, float]:
    """NPS and its 95 % adjusted-Wald interval, written out (docs/analytics-statistics.md)."""
    n = p + q + d
    n_adj = n + 3
    p_adj, d_adj = (p + 0.75) / n_adj, (d + 0.75) / n_adj
    variance = p_adj + d_adj - (p_adj - d_adj) ** 2
    half = 1.959963984540054 * math.sqrt(variance / n_adj)
    return 100 * (p - d) / n, 100 * (p_adj - d_adj - half), 100 * (p_adj - d_adj + half)


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</div>\s*</div>', html, re.S)
    assert match, element_id
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def group_rows(html: str) -> dict[str, list[str]]:
    """{code: [cell texts]} of the page's table by group."""
    table = re.search(r'id="groups-table">(.*?)</table>', html, re.S)
    assert table
    rows = {}
    for code, body in re.findall(r'<tr data-code="([^"]*)"[^>]*>(.*?)</tr>', table.group(1), re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", body, re.S)
        rows[code] = [re.sub(r"<[^>]+>", "", c).strip() for c in cells]
    return rows


def test_it_shows_the_company_nps_and_interval_of_a_hand_computation(
    world: World, make_user: Callable[..., Any]
) -> None:
    response = logged_in(make_user(world.workspace, Role.CX_MANAGER)).get(URL, period(world))

    assert response.status_code == 200
    html = response.content.decode()
    nps, low, high = hand_interval(54, 24, 42)
    assert nps == 10.0
    card = text_of(html, "company-nps")
    assert card.startswith("10.0 Company NPS")
    assert f"95% interval {low:.1f} to {high:.1f}" in card
    assert text_of(html, "company-n").startswith("120 answers")


def test_a_weak_branch_is_flagged_below_average(
    world: World, make_user: Callable[..., Any]
) -> None:
    response = logged_in(make_user(world.workspace, Role.ANALYST)).get(
        URL, period(world, by="branch")
    )

    rows = group_rows(response.content.decode())
    assert set(rows) == {"B01", "B02", "B03"}
    label, n, nps, interval, _p, flag, sent, rate = rows["B02"]
    assert (label, n, nps, flag) == ("Botanica", "40", "-65.0", "below average")
    _nps, low, high = hand_interval(4, 6, 30)
    assert interval == f"{low:.1f} … {high:.1f}"
    # 40 of 50 invitations answered.
    assert (sent, rate) == ("50", "80.0%")
    assert rows["B01"][5] == "" and rows["B03"][5] == ""
    assert rows["B01"][6:] == ["80", "50.0%"]
    assert rows["B03"][6:] == ["0", "—"]


def test_a_supervisor_sees_only_the_answers_about_their_teams(
    world: World, make_user: Callable[..., Any]
) -> None:
    sofia = logged_in(world.sofia.user)
    before = sofia.get(URL, period(world, by="employee")).content.decode()
    # More answers about Elena (another supervisor's team) change nothing on Sofia's page.
    answer(world, scores(0, 0, 25), branch="B02", employee=world.elena)
    after = sofia.get(URL, period(world, by="employee")).content.decode()

    for html in (before, after):
        assert text_of(html, "company-nps").startswith("25.0 NPS of your teams")
        assert text_of(html, "company-n").startswith("40 answers")
        assert set(group_rows(html)) == {"AGT"}
    manager = logged_in(make_user(world.workspace, Role.CX_MANAGER))
    assert text_of(manager.get(URL, period(world)).content.decode(), "company-n").startswith(
        "145 answers"
    )


def test_a_supervisor_without_an_employee_record_sees_no_numbers(
    world: World, make_user: Callable[..., Any]
) -> None:
    response = logged_in(make_user(world.workspace, Role.SUPERVISOR)).get(URL, period(world))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="no-team"' in html
    assert 'id="company-nps"' not in html


def test_the_employee_role_is_refused(world: World, make_user: Callable[..., Any]) -> None:
    client = logged_in(make_user(world.workspace, Role.EMPLOYEE))

    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403


def test_csv_and_xlsx_hold_the_numbers_of_the_table(
    world: World, make_user: Callable[..., Any]
) -> None:
    client = logged_in(make_user(world.workspace, Role.ANALYST))
    page = group_rows(client.get(URL, period(world, by="branch")).content.decode())

    got_csv = client.get(URL, period(world, by="branch", format="csv", table="groups"))
    assert got_csv["Content-Type"].startswith("text/csv")
    assert "attachment" in got_csv["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(got_csv.content.decode("utf-8-sig"))))
    got_xlsx = client.get(URL, period(world, by="branch", format="xlsx", table="groups"))
    book = openpyxl.load_workbook(io.BytesIO(got_xlsx.content))
    sheet = [list(row) for row in book.active.iter_rows(values_only=True)]

    assert lines[0] == [str(h) for h in sheet[0]]
    assert lines[0][:4] == ["Branch", "Code", "n", "NPS"]
    assert len(lines) == len(sheet) == 4
    for text_row, cell_row in zip(lines[1:], sheet[1:], strict=True):
        code = text_row[1]
        assert cell_row[1] == code
        label, n, nps, interval, _p, flag, sent, _rate = page[code]
        assert (text_row[0], text_row[2], text_row[3]) == (label, n, nps)
        assert (cell_row[0], cell_row[2], cell_row[3]) == (label, int(n), float(nps))
        assert f"{cell_row[4]:.1f} … {cell_row[5]:.1f}" == interval
        assert cell_row[7] is (flag == "below average")
        assert cell_row[8] == int(sent)
    b02 = next(row for row in sheet if row[1] == "B02")
    assert b02[2:4] == [40, -65.0]
    assert b02[-3:] == [50, 40, 80.0]


@pytest.mark.parametrize("table", ["trend", "heatmap"])
def test_the_other_tables_download_too(
    world: World, make_user: Callable[..., Any], table: str
) -> None:
    client = logged_in(make_user(world.workspace, Role.ANALYST))

    got = client.get(URL, period(world, format="xlsx", table=table))

    sheet = list(openpyxl.load_workbook(io.BytesIO(got.content)).active.iter_rows(values_only=True))
    # Every answer was given at noon, three days ago: one period, one cell.
    assert len(sheet) == 2
    assert 120 in sheet[1]
    assert 10.0 in sheet[1]


def test_the_previous_period_is_compared(world: World, make_user: Callable[..., Any]) -> None:
    # The 30 days before the period: NPS -50 on 60 answers.
    answer(world, scores(10, 10, 40), branch="B01", employee=world.andrei, days_ago=45)
    client = logged_in(make_user(world.workspace, Role.CX_MANAGER))

    html = client.get(URL, period(world)).content.decode()

    previous = text_of(html, "previous")
    assert previous.startswith("-50.0 previous period")
    assert "n 60" in previous
    assert text_of(html, "change").startswith("+60.0 change, points")
    assert "significant" in text_of(html, "change")
    assert re.search(r'class="value up" id="change-value"', html)


def test_a_small_change_is_within_chance(world: World, make_user: Callable[..., Any]) -> None:
    answer(world, scores(5, 3, 4), branch="B01", employee=world.andrei, days_ago=40)
    client = logged_in(make_user(world.workspace, Role.CX_MANAGER))

    change = text_of(client.get(URL, period(world)).content.decode(), "change")

    assert change.startswith("+1.7 change, points")
    assert "within chance" in change


@pytest.mark.parametrize(
    "params, message",
    [
        ({"since": "2025-13-01"}, "Enter a valid date."),
        ({"since": "2025-03-01", "until": "2025-02-01"}, "The start date is after the end date."),
        ({"since": "2001-01-01", "until": "2025-01-01"}, "at most three years"),
    ],
)
def test_bad_dates_are_a_form_error(
    world: World, make_user: Callable[..., Any], params: dict[str, str], message: str
) -> None:
    response = logged_in(make_user(world.workspace, Role.CX_MANAGER)).get(URL, params)

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'id="company-nps"' not in html


def test_only_nps_surveys_are_offered(world: World, make_user: Callable[..., Any]) -> None:
    from cxloop.surveys.definition import default_definition

    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2  # within the 1-5 scale
    make_survey(world.workspace, "csat-check", definition=definition)
    client = logged_in(make_user(world.workspace, Role.CX_MANAGER))

    html = client.get(URL, period(world)).content.decode()

    assert f'<option value="{world.survey.code}"' in html
    assert '<option value="csat-check"' not in html


def test_the_page_stands_when_a_chart_fails(
    world: World, make_user: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxloop.analytics import charts

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("vl-convert fell over")

    monkeypatch.setattr(charts, "groups_svg", broken)
    response = logged_in(make_user(world.workspace, Role.CX_MANAGER)).get(URL, period(world))

    assert response.status_code == 200
    html = response.content.decode()
    assert "The chart could not be drawn this time" in html
    assert set(group_rows(html)) == {"B01", "B02", "B03"}
    assert 'id="trend-chart"' in html


def test_many_groups_chart_the_highest_and_lowest_and_the_table_lists_all(
    world: World, make_user: Callable[..., Any]
) -> None:
    from cxloop.analytics.charts import MAX_BARS, chart_groups

    team = Team.objects.get(workspace=world.workspace, code="T2")
    people = Employee.objects.bulk_create(
        Employee(workspace=world.workspace, code=f"E{i:02d}", name=f"Person {i:02d}", team=team)
        for i in range(MAX_BARS + 5)
    )
    for i, person in enumerate(people):  # Person 00 the lowest NPS, Person 44 the highest
        answer(world, [3] * (len(people) - i) + [10] * i, branch="B02", employee=person)
    response = logged_in(make_user(world.workspace, Role.CX_MANAGER)).get(
        URL, period(world, by="employee")
    )

    html = response.content.decode()
    codes = {"AGT", "AGT2"} | {p.code for p in people}
    assert set(group_rows(html)) == codes  # the table: every group
    chart = re.search(r'id="groups-chart"[^>]*>(.*?)</figure>', html, re.S)
    assert chart
    drawn = set(re.findall(r"Person \d\d", chart.group(1)))
    # 47 groups by NPS: Person 44 … Person 29, Andrei (25), Person 28 … 26 are the 20 highest;
    # Person 19 … Person 00 the 20 lowest; Person 20 … 25 and Elena (2.5) are not drawn.
    assert drawn == {f"Person {i:02d}" for i in [*range(20), *range(26, 45)]}
    assert "Andrei" in chart.group(1) and "Elena" not in chart.group(1)
    half = MAX_BARS // 2
    note = re.search(r'id="groups-chart-note"[^>]*>(.*?)</p>', html, re.S)
    assert (
        note and f"{half} highest and the {MAX_BARS - half} lowest of {len(codes)}" in note.group(1)
    )
    rows = [{"nps": float(100 - i), "label": str(i)} for i in range(50)]
    assert [r["label"] for r in chart_groups(rows)] == [
        str(i) for i in [*range(20), *range(30, 50)]
    ]
    assert chart_groups(rows[:MAX_BARS]) == rows[:MAX_BARS]


def test_new_answers_update_the_figures_at_once_and_the_charts_within_a_minute(
    world: World, make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CHART_MAX_AGE = 60
    client = logged_in(make_user(world.workspace, Role.CX_MANAGER))
    first = client.get(URL, period(world)).content.decode()
    assert 'id="charts-stale"' not in first

    answer(world, scores(0, 0, 40), branch="B03", employee=world.elena)
    rollups.refresh(world.workspace)
    again = client.get(URL, period(world)).content.decode()
    # The figures count the new answers; the charts are those drawn a moment ago, and say so.
    assert text_of(again, "company-n").startswith("160 answers")
    assert 'id="charts-stale"' in again
    assert "The charts were drawn at " in again and "the figures and tables are current" in again
    chart = re.search(r'id="groups-chart".*?</figure>', first, re.S)
    assert chart is not None and chart.group(0) in again

    settings.CHART_MAX_AGE = 0
    fresh = client.get(URL, period(world)).content.decode()
    assert 'id="charts-stale"' not in fresh and chart.group(0) not in fresh


@pytest.mark.parametrize("language", ["en", "ru", "ro"])
def test_group_rows_are_those_the_template_loop_wrote(language: str) -> None:
    """``groups_rows`` replaced a ``{% for %}`` of ``dashboard.html`` for speed: it must write
    the same HTML, escaping and localised numbers included."""
    from django.template import Context, Template
    from django.utils import translation

    from cxloop.analytics.views import MIN_N, groups_rows

    loop = Template(
        "{% load i18n humanize_cx %}"
        '{% for g in board.groups %}<tr data-code="{{ g.code }}" class="{% if g.below_average %}'
        'below{% elif g.n < min_n %}small{% endif %}">\n      <th scope="row">{{ g.label }}</th>'
        '<td class="num">{{ g.n|thousands }}</td><td class="num nps">'
        '{{ g.nps|floatformat:1|default:"—" }}</td><td class="num interval">'
        "{{ g.ci_low|floatformat:1 }} … {{ g.ci_high|floatformat:1 }}</td>"
        '<td class="num">{{ g.p_text }}</td>\n      <td>{% if g.below_average %}'
        '<span class="tag bad flag">{% translate "below average" %}</span>{% elif g.n < min_n %}'
        '<span class="muted">{% blocktranslate with n=min_n %}n &lt; {{ n }}{% endblocktranslate %}'
        '</span>{% endif %}</td>\n      <td class="num">{{ g.sent|thousands }}</td>'
        '<td class="num rate">{% if g.rate is None %}—{% else %}{{ g.rate|floatformat:1 }}%'
        "{% endif %}</td></tr>\n    {% endfor %}"
    )
    rng = random.Random(5)
    groups = [
        {"code": "E<1>", "label": "O'Brien & \"Sons\" <b>", "n": 1234567, "nps": -12.5,
         "ci_low": -100.0, "ci_high": 100.0, "p_text": "< 0.001", "below_average": True,
         "sent": 0, "rate": None},
        {"code": "", "label": "(not set)", "n": 3, "nps": None, "ci_low": -80.0,
         "ci_high": 80.0, "p_text": "—", "below_average": False, "sent": 12, "rate": 0.0},
        {"code": "Z", "label": "Ștefan", "n": 30, "nps": -0.0, "ci_low": -0.1, "ci_high": 0.1,
         "p_text": "0.500", "below_average": False, "sent": 1000, "rate": 100.0},
    ] + [
        {"code": f"E{i}", "label": f"Агент {i}", "n": rng.randint(0, 5000),
         "nps": round(rng.uniform(-100, 100), 1), "ci_low": round(rng.uniform(-100, 0), 1),
         "ci_high": round(rng.uniform(0, 100), 1), "p_text": f"{rng.random():.3f}",
         "below_average": rng.random() < 0.2, "sent": rng.randint(0, 10**6),
         "rate": round(rng.uniform(0, 100), 1)}
        for i in range(300)
    ]  # fmt: skip
    with translation.override(language):
        want = loop.render(Context({"board": {"groups": groups}, "min_n": MIN_N}))
        got = groups_rows(groups, MIN_N)
    assert got == want
