"""The monthly PDF report: its numbers against the raw responses, the scope of each reader, the
view's permissions and month, the command.

The workspace lives in Chisinau and speaks Russian; the report is for November 2026, asked on
5 December::

    November   B01 Центр      Андрей (T1, Sofia's)  20 P 10 p 10 D
               B01 Центр      Ион    (T1, Sofia's)   2 P  3 p 35 D
               B02 Ботаника   Елена  (T2, Oleg's)    4 P  6 p 30 D   (below average)
               B03 Бэлць      Василе (T2, Oleg's)   30 P  8 p  2 D
    October    B01 Центр      Андрей                10 P 10 p 20 D
               B03 Бэлць      Василе                20 P 10 p 10 D

plus a month each before (the trend) and answers on 1 December (counted nowhere).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import formats, translation
from pypdf import PdfReader

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics import report, rollups
from cxloop.cases.models import Case, CaseSource, CaseStatus, Problem, ProblemStatus, ReasonCode
from cxloop.core import clock
from cxloop.organisation.models import Branch, Employee, Region, Team
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
NOVEMBER = dt.date(2026, 11, 1)
_ids = itertools.count()


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    branches: dict[str, Branch]
    employees: dict[str, Employee]
    users: dict[str, Any]


def answer(
    world: World, scores: list[int], *, day: dt.date, employee: str, branch: str | None = None
) -> list[Response]:
    at = dt.datetime.combine(day, dt.time(11), tzinfo=CHISINAU)
    person = world.employees[employee]
    rows = [
        Response(
            workspace=world.workspace,
            survey=world.survey,
            external_id=f"M{next(_ids)}",
            score=score,
            answered_at=at,
            source=ResponseSource.WEB,
            branch=world.branches[branch] if branch else person.branch,
            employee=person,
        )
        for score in scores
    ]
    Response.objects.bulk_create(rows)
    rollups.mark_responses(rows)  # bulk_create sends no post_save
    return rows


def scores(promoters: int, passives: int, detractors: int) -> list[int]:
    return [10] * promoters + [8] * passives + [3] * detractors


def local(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=CHISINAU)


def case(world: World, employee: str, opened: dt.date, **extra: Any) -> Case:
    person = world.employees[employee]
    due = extra.pop("due_at", local(opened) + dt.timedelta(days=1))
    return Case.objects.create(
        workspace=world.workspace,
        source=CaseSource.MANUAL,
        employee=person,
        branch=person.branch,
        opened_at=local(opened),
        due_at=due,
        warn_at=due - dt.timedelta(hours=1),
        **extra,
    )


@pytest.fixture
def world(workspace: Workspace, make_user: Callable[..., Any]) -> World:
    Workspace.objects.filter(pk=workspace.pk).update(
        time_zone="Europe/Chisinau", default_language="ru"
    )
    workspace.refresh_from_db()
    region = Region.objects.create(workspace=workspace, code="R1", name="Центр страны")
    branches = {
        code: Branch.objects.create(workspace=workspace, code=code, name=name, region=region)
        for code, name in (("B01", "Центр"), ("B02", "Ботаника"), ("B03", "Бэлць"))
    }
    t1 = Team.objects.create(workspace=workspace, code="T1", name="Фронт", branch=branches["B01"])
    t2 = Team.objects.create(workspace=workspace, code="T2", name="Бэк", branch=branches["B02"])
    users = {
        "manager": make_user(workspace, Role.CX_MANAGER, username="maria"),
        "analyst": make_user(workspace, Role.ANALYST, username="ana"),
        "sofia": make_user(workspace, Role.SUPERVISOR, username="sofia"),
        "lonely": make_user(workspace, Role.SUPERVISOR, username="lonely"),
        "employee": make_user(workspace, Role.EMPLOYEE, username="andrei"),
    }

    def person(code: str, name: str, team: Team, branch: str, **extra: Any) -> Employee:
        return Employee.objects.create(
            workspace=workspace, code=code, name=name, team=team, branch=branches[branch], **extra
        )

    sofia = person("SUP", "София", t1, "B01", user=users["sofia"])
    oleg = person("SUP2", "Олег", t2, "B02")
    employees = {
        "sofia": sofia,
        "oleg": oleg,
        "andrei": person("AGT", "Андрей", t1, "B01", supervisor=sofia, user=users["employee"]),
        "ion": person("AGT3", "Ион", t1, "B01", supervisor=sofia),
        "elena": person("AGT2", "Елена", t2, "B02", supervisor=oleg),
        "vasile": person("AGT4", "Василе", t2, "B03", supervisor=oleg),
    }
    w = World(workspace, make_survey(workspace), branches, employees, users)
    day = dt.date(2026, 11, 11)  # a Wednesday
    answer(w, scores(20, 10, 10), day=day, employee="andrei")
    ion = answer(w, scores(2, 3, 35), day=dt.date(2026, 11, 1), employee="ion")
    elena = answer(w, scores(4, 6, 30), day=dt.date(2026, 11, 30), employee="elena")
    answer(w, scores(30, 8, 2), day=day, employee="vasile")
    answer(w, scores(10, 10, 20), day=dt.date(2026, 10, 14), employee="andrei")
    answer(w, scores(20, 10, 10), day=dt.date(2026, 10, 14), employee="vasile")
    answer(w, scores(15, 5, 5), day=dt.date(2026, 9, 9), employee="vasile")
    answer(w, scores(0, 0, 50), day=dt.date(2026, 12, 1), employee="elena")  # after the month

    # Reasons: 20 of Elena's detractors about waiting, 5 of Ion's about rudeness.
    waiting = ReasonCode.objects.create(
        workspace=workspace, code="waiting", labels={"en": "Waiting", "ru": "Долгое ожидание"}
    )
    rude = ReasonCode.objects.create(
        workspace=workspace, code="rude", labels={"en": "Rudeness", "ru": "Грубость"}
    )
    for response in [r for r in elena if r.score == 3][:20]:
        c = case(w, "elena", dt.date(2026, 11, 30), response=response, status=CaseStatus.RESOLVED,
                 closed_at=local(dt.date(2026, 11, 30), 15))  # fmt: skip
        c.reasons.add(waiting)
    for response in [r for r in ion if r.score == 3][:5]:
        c = case(w, "ion", dt.date(2026, 11, 1), response=response, status=CaseStatus.RESOLVED,
                 closed_at=local(dt.date(2026, 11, 3)), breached=True)  # fmt: skip
        c.reasons.add(rude)
    # One of Sofia's open past its deadline, one of Oleg's opened in October (not counted).
    case(w, "andrei", dt.date(2026, 11, 20), due_at=local(dt.date(2026, 11, 21)))
    case(w, "elena", dt.date(2026, 10, 20))
    # Problems: one fixed in November, one verified in November, one fixed in October.
    Problem.objects.create(workspace=workspace, title="Очереди", status=ProblemStatus.FIXED,
                           fixed_on=dt.date(2026, 11, 10))  # fmt: skip
    Problem.objects.create(
        workspace=workspace,
        title="Терминал",
        status=ProblemStatus.VERIFIED,
        fixed_on=dt.date(2026, 10, 1),
        effect={"measured_at": "2026-11-20T08:00:00+00:00", "verdict": "verified"},
    )
    return w


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``clock.now`` rather than freezegun: a first request imports the API's pydantic models,
    # which cannot describe freezegun's datetime class.
    monkeypatch.setattr(clock, "now", lambda: NOW)


def hand(world: World, employees: list[str] | None, month: dt.date) -> dict[str, Any]:
    """NPS, its 95 % interval and n from the raw responses of the local month."""
    start = dt.datetime.combine(month, dt.time(), tzinfo=CHISINAU)
    end = dt.datetime.combine(report.add_months(month, 1), dt.time(), tzinfo=CHISINAU)
    qs = Response.objects.filter(
        workspace=world.workspace, answered_at__gte=start, answered_at__lt=end
    ).exclude(score=None)
    if employees is not None:
        qs = qs.filter(employee__in=[world.employees[e] for e in employees])
    p = q = d = 0
    for score in qs.values_list("score", flat=True):
        assert score is not None
        if score >= 9:
            p += 1
        elif score <= 6:
            d += 1
        else:
            q += 1
    n = p + q + d
    n_adj = n + 3
    p_adj, d_adj = (p + 0.75) / n_adj, (d + 0.75) / n_adj
    half = 1.959963984540054 * math.sqrt((p_adj + d_adj - (p_adj - d_adj) ** 2) / n_adj)
    return {
        "n": n,
        "nps": round(100 * (p - d) / n, 1),
        "low": round(max(-100.0, 100 * (p_adj - d_adj - half)), 1),
        "high": round(min(100.0, 100 * (p_adj - d_adj + half)), 1),
    }


def ru(value: float) -> str:
    with translation.override("ru"):
        return str(formats.number_format(value, 1, use_l10n=True))


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- the month


def test_months_parse_and_default_to_the_previous_local_month(world: World) -> None:
    assert report.parse_month("2026-03") == dt.date(2026, 3, 1)
    for bad in ("2026-13", "2026-3", "march", "2026-03-01", "1999-12", ""):
        with pytest.raises(ValueError):
            report.parse_month(bad)
    # 1 December 00:30 in Chisinau is still 30 November in UTC: the local month counts.
    assert (
        report.default_month(world.workspace, dt.datetime(2026, 11, 30, 22, 30, tzinfo=dt.UTC))
        == NOVEMBER
    )
    assert report.default_month(
        world.workspace, dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    ) == dt.date(2025, 12, 1)
    period = report.month_period(dt.date(2026, 2, 1), CHISINAU)
    assert (period.since, period.until) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


# --------------------------------------------------------------------------- the numbers


def test_the_company_report_holds_the_months_numbers(world: World, frozen: None) -> None:
    with translation.override("ru"):
        built = report.collect(world.workspace, NOVEMBER, charts=False)
    expected = hand(world, None, NOVEMBER)
    before = hand(world, None, dt.date(2026, 10, 1))
    assert built.scope == "company" and built.by == "branch"
    assert built.overall["n"] == expected["n"] == 160
    assert built.overall["nps"] == expected["nps"]
    assert (built.overall["ci_low"], built.overall["ci_high"]) == (
        expected["low"],
        expected["high"],
    )
    assert built.comparison["previous"]["n"] == before["n"] == 80
    assert built.comparison["diff"] == round(expected["nps"] - before["nps"], 1)
    flagged = {row["code"] for row in built.groups if row["below_average"]}
    assert "B02" in flagged and "B03" not in flagged
    # Twelve months end with November; September, October and November hold answers.
    assert [row["start"] for row in built.trend] == [
        dt.date(2026, 9, 1), dt.date(2026, 10, 1), NOVEMBER,
    ]  # fmt: skip
    assert [row["n"] for row in built.trend] == [25, 80, 160]
    assert {(c["weekday"], c["n"]) for c in built.heatmap} >= {(3, 80)}
    assert [(r["label"], r["citing"]) for r in built.reasons] == [
        ("Долгое ожидание", 20), ("Грубость", 5),
    ]  # fmt: skip
    assert built.detractors == 77
    assert built.loop == {
        "opened": 26,
        "closed": 25,
        "closed_within_sla": 20,
        "within_sla_pct": 80.0,
        "breached": 6,  # 5 closed late, 1 still open past its deadline
        "problems_fixed": 1,
        "problems_verified": 1,
    }


def test_the_pdf_is_in_russian_with_its_numbers_and_charts(world: World, frozen: None) -> None:
    built, pdf = report.report_pdf(world.workspace, NOVEMBER)
    assert pdf.startswith(b"%PDF")
    assert built.trend_png and built.trend_png.startswith(b"\x89PNG")
    assert built.heatmap_png and built.heatmap_png.startswith(b"\x89PNG")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    assert len(reader.pages[0].images) >= 1  # the trend
    text = text_of(pdf)
    expected = hand(world, None, NOVEMBER)
    assert "Acme Telecom" in text
    assert "Ноябрь 2026" in text  # the month, in the workspace's language
    assert ru(expected["nps"]) in text  # "-13,1": a decimal comma
    assert ru(expected["nps"]).startswith("-13,")
    assert f"{ru(expected['low'])} … {ru(expected['high'])}" in text
    assert "n 160" in text
    for name in ("Центр", "Ботаника", "Бэлць", "Долгое ожидание"):
        assert name in text
    # No customer's data: the org chart and the taxonomy only.
    assert "@" not in text


def test_romanian_letters_render(world: World, frozen: None) -> None:
    Branch.objects.filter(pk=world.branches["B03"].pk).update(name="Bălți Ștefan cel Mare")
    Workspace.objects.filter(pk=world.workspace.pk).update(default_language="ro")
    world.workspace.refresh_from_db()
    _built, pdf = report.report_pdf(world.workspace, NOVEMBER)
    text = text_of(pdf)
    assert "Bălți Ștefan cel Mare" in text
    assert "-13,1" in text


def test_a_supervisor_sees_their_teams_only(world: World, frozen: None) -> None:
    sofia = world.users["sofia"].memberships.get(workspace=world.workspace)
    built, pdf = report.report_pdf(world.workspace, NOVEMBER, sofia)
    expected = hand(world, ["sofia", "andrei", "ion"], NOVEMBER)
    assert built.scope == "teams" and built.by == "employee"
    assert built.overall["n"] == expected["n"] == 80
    assert built.overall["nps"] == expected["nps"]
    assert {row["code"] for row in built.groups} == {"AGT", "AGT3"}
    assert [r["label"] for r in built.reasons] == ["Грубость"]
    assert built.loop["opened"] == 6 and built.loop["breached"] == 6
    assert built.loop["problems_fixed"] == 0  # the register's problems touch no case of hers
    text = text_of(pdf)
    assert "Андрей" in text and "Ион" in text
    for other in ("Елена", "Василе", "Ботаника", "Бэлць", "Долгое ожидание"):
        assert other not in text
    assert ru(hand(world, None, NOVEMBER)["nps"]) not in text  # not the company's NPS


# --------------------------------------------------------------------------- the view


def test_the_view_sends_an_attachment(world: World, frozen: None) -> None:
    response = logged_in(world.users["analyst"]).get("/analytics/report.pdf?month=2026-11")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="nps-report-acme-2026-11.pdf"'
    assert response.content.startswith(b"%PDF")
    assert ru(hand(world, None, NOVEMBER)["nps"]) in text_of(response.content)


def test_the_view_defaults_to_the_previous_month(world: World, frozen: None) -> None:
    response = logged_in(world.users["manager"]).get("/analytics/report.pdf")
    assert response.status_code == 200
    assert "2026-11.pdf" in response["Content-Disposition"]


def test_the_supervisor_gets_their_scope_from_the_view(world: World, frozen: None) -> None:
    response = logged_in(world.users["sofia"]).get("/analytics/report.pdf?month=2026-11")
    assert response.status_code == 200
    text = text_of(response.content)
    assert "Андрей" in text and "Ботаника" not in text


@pytest.mark.parametrize("month", ["2026-13", "nov", "2026-1", "2027-01"])
def test_a_bad_or_future_month_is_a_400(world: World, frozen: None, month: str) -> None:
    response = logged_in(world.users["manager"]).get("/analytics/report.pdf", {"month": month})
    assert response.status_code == 400


def test_an_employee_and_a_supervisor_without_a_team_get_403(world: World, frozen: None) -> None:
    assert logged_in(world.users["employee"]).get("/analytics/report.pdf").status_code == 403
    assert logged_in(world.users["lonely"]).get("/analytics/report.pdf").status_code == 403


def test_an_anonymous_visitor_is_sent_to_log_in(world: World) -> None:
    response = Client().get("/analytics/report.pdf")
    assert response.status_code == 302


def test_the_tabs_link_to_the_report(world: World, frozen: None) -> None:
    page = logged_in(world.users["manager"]).get("/analytics/")
    assert 'href="/analytics/report.pdf"' in page.content.decode()


# --------------------------------------------------------------------------- the command


def test_the_command_writes_the_file(world: World, frozen: None, tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "reports" / "acme.pdf"
    call_command("monthly_report", "--workspace", "acme", "--output", str(target), stdout=out)
    assert target.read_bytes().startswith(b"%PDF")
    assert "2026-11" in out.getvalue() and "n 160" in out.getvalue()
    assert ru(hand(world, None, NOVEMBER)["nps"]) in text_of(target.read_bytes())

    supervisor = tmp_path / "sofia.pdf"
    call_command("monthly_report", "--workspace", "acme", "--month", "2026-10", "--user",
                 "sofia", "--output", str(supervisor), stdout=out)  # fmt: skip
    assert "n 40" in out.getvalue().splitlines()[-1]


def test_the_command_refuses_bad_input(world: World, tmp_path: Path) -> None:
    target = str(tmp_path / "x.pdf")
    with pytest.raises(CommandError):
        call_command("monthly_report", "--workspace", "nope", "--output", target)
    with pytest.raises(CommandError):
        call_command(
            "monthly_report", "--workspace", "acme", "--month", "2026-13", "--output", target
        )
    with pytest.raises(CommandError):
        call_command(
            "monthly_report", "--workspace", "acme", "--user", "andrei", "--output", target
        )
