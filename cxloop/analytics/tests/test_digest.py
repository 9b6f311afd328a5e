"""The weekly NPS digest: who gets it, what it says (against numbers computed here from the raw
responses), the inline chart, once a week, the dry run and the beat entry.

The workspace lives in Chisinau; the digest goes out on Monday 30 November 2026 at 07:00 UTC,
so "the last 7 days" are the local days 23-29 November and the previous ones 16-22 November::

    last 7 days     B01 Centru   Andrei (T1, Sofia's)  20 P 10 p 10 D
                    B01 Centru   Ion    (T1, Sofia's)   2 P  3 p 35 D   (Sofia's weak one)
                    B02 Botanica Elena  (T2, Oleg's)    4 P  6 p 30 D   (the weak branch)
                    B03 Bălți    Elena                 30 P  8 p  2 D
    previous 7 days B01 Centru   Andrei                10 P 10 p 20 D
                    B03 Bălți    Elena                 20 P 10 p 10 D

plus answers in the weeks before (the trend) and on Monday morning itself (counted nowhere).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.management import call_command
from freezegun import freeze_time

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.analytics import digest, rollups
from cxloop.cases.models import Case, CaseSource, CaseStatus
from cxloop.organisation.models import Branch, Employee, Region, Team
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey
from cxloop.testing import Mailbox

CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
MONDAY_7 = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)
WEEK = "2026-W49"
_ids = itertools.count()


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    branches: dict[str, Branch]
    employees: dict[str, Employee]
    users: dict[str, Any]


def answer(world: World, scores: list[int], *, day: dt.date, branch: str, employee: str) -> None:
    at = dt.datetime.combine(day, dt.time(12), tzinfo=CHISINAU)
    rows = [
        Response(
            workspace=world.workspace,
            survey=world.survey,
            external_id=f"D{next(_ids)}",
            score=score,
            answered_at=at,
            source=ResponseSource.WEB,
            branch=world.branches[branch],
            employee=world.employees[employee],
        )
        for score in scores
    ]
    Response.objects.bulk_create(rows)
    rollups.mark_responses(rows)  # bulk_create sends no post_save


def scores(promoters: int, passives: int, detractors: int) -> list[int]:
    return [10] * promoters + [8] * passives + [3] * detractors


def case(world: World, employee: str, *, status: str = CaseStatus.OPEN, **extra: Any) -> Case:
    due = extra.pop("due_at", MONDAY_7 + dt.timedelta(days=1))
    return Case.objects.create(
        workspace=world.workspace,
        source=CaseSource.MANUAL,
        status=status,
        employee=world.employees[employee],
        branch=world.employees[employee].branch,
        opened_at=MONDAY_7 - dt.timedelta(days=2),
        due_at=due,
        warn_at=due - dt.timedelta(hours=1),
        **extra,
    )


@pytest.fixture
def world(workspace: Workspace, make_user: Callable[..., Any]) -> World:
    Workspace.objects.filter(pk=workspace.pk).update(time_zone="Europe/Chisinau")
    workspace.refresh_from_db()
    region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
    branches = {
        code: Branch.objects.create(workspace=workspace, code=code, name=name, region=region)
        for code, name in (("B01", "Centru"), ("B02", "Botanica"), ("B03", "Bălți"))
    }
    t1 = Team.objects.create(workspace=workspace, code="T1", name="Front", branch=branches["B01"])
    t2 = Team.objects.create(workspace=workspace, code="T2", name="Back", branch=branches["B02"])
    users = {
        "manager": make_user(workspace, Role.CX_MANAGER, username="maria"),
        "analyst": make_user(workspace, Role.ANALYST, username="ana"),
        "sofia": make_user(workspace, Role.SUPERVISOR, username="sofia"),
        "employee": make_user(workspace, Role.EMPLOYEE, username="andrei"),
        "no_mail": make_user(workspace, Role.ADMIN, username="nomail"),
        "inactive": make_user(workspace, Role.ADMIN, username="gone"),
    }
    users["no_mail"].email = ""
    users["no_mail"].save()
    users["inactive"].is_active = False
    users["inactive"].save()

    def person(code: str, name: str, team: Team, branch: str, **extra: Any) -> Employee:
        return Employee.objects.create(
            workspace=workspace, code=code, name=name, team=team, branch=branches[branch], **extra
        )

    sofia = person("SUP", "Sofia", t1, "B01", user=users["sofia"])
    oleg = person("SUP2", "Oleg", t2, "B02")
    employees = {
        "sofia": sofia,
        "oleg": oleg,
        "andrei": person("AGT", "Andrei", t1, "B01", supervisor=sofia, user=users["employee"]),
        "ion": person("AGT3", "Ion", t1, "B01", supervisor=sofia),
        "elena": person("AGT2", "Elena", t2, "B02", supervisor=oleg),
    }
    w = World(workspace, make_survey(workspace), branches, employees, users)
    last = dt.date(2026, 11, 25)
    before = dt.date(2026, 11, 18)
    answer(w, scores(20, 10, 10), day=last, branch="B01", employee="andrei")
    answer(w, scores(2, 3, 35), day=dt.date(2026, 11, 23), branch="B01", employee="ion")
    answer(w, scores(4, 6, 30), day=dt.date(2026, 11, 29), branch="B02", employee="elena")
    answer(w, scores(30, 8, 2), day=last, branch="B03", employee="elena")
    answer(w, scores(10, 10, 20), day=before, branch="B01", employee="andrei")
    answer(w, scores(20, 10, 10), day=before, branch="B03", employee="elena")
    for weeks in range(2, 12):  # the trend: one week after another
        answer(w, scores(15, 5, 5), day=before - dt.timedelta(weeks=weeks - 1), branch="B03",
               employee="elena")  # fmt: skip
    # Monday morning, local: after the period, counted nowhere.
    answer(w, scores(0, 0, 50), day=dt.date(2026, 11, 30), branch="B02", employee="elena")
    # Cases: open within SLA, open past its deadline, escalated (breached), closed.
    case(w, "andrei")
    case(w, "ion", due_at=MONDAY_7 - dt.timedelta(hours=3))
    case(w, "elena", breached=True, escalation_level=1)
    case(w, "elena")
    case(w, "andrei", status=CaseStatus.RESOLVED, closed_at=MONDAY_7, breached=True)
    return w


@pytest.fixture
def frozen() -> Iterator[None]:
    with freeze_time(MONDAY_7):
        yield


# --------------------------------------------------------------------------- by hand


def hand(world: World, employees: list[str] | None, first: dt.date, last: dt.date) -> str:
    """'NPS: x (95 % interval lo to hi), n N' from the raw responses of [first, last] local."""
    start = dt.datetime.combine(first, dt.time(), tzinfo=CHISINAU)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=CHISINAU)
    qs = Response.objects.filter(
        workspace=world.workspace, answered_at__gte=start, answered_at__lt=end, is_test=False
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
    nps = 100 * (p - d) / n
    low = max(-100.0, 100 * (p_adj - d_adj - half))
    high = min(100.0, 100 * (p_adj - d_adj + half))
    return f"NPS: {round(nps, 1)} (95 % interval {round(low, 1)} to {round(high, 1)}), n {n}"


def parts(message: EmailMessage) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in message.walk():
        if not part.is_multipart():
            found.setdefault(part.get_content_type(), part)
    return found


def text_of(message: EmailMessage) -> str:
    body = parts(message)["text/plain"].get_content()
    assert isinstance(body, str)
    return body.replace("\r\n", "\n")


def by_recipient(smtp: Mailbox) -> dict[str, EmailMessage]:
    return {str(m["To"]): m for m in smtp.messages}


def section(text: str, title: str) -> str:
    match = re.search(rf"{title}:\n(.*?)\n\n", text, re.S)
    assert match, title
    return match.group(1)


# --------------------------------------------------------------------------- tests


def test_a_manager_gets_the_company_and_a_supervisor_their_teams(
    world: World, smtp: Mailbox, frozen: None
) -> None:
    outcome = digest.send_all()

    mails = by_recipient(smtp)
    assert set(mails) == {"maria@example.com", "ana@example.com", "sofia@example.com"}
    assert sorted(outcome.sent) == sorted(mails)
    assert "nomail: no e-mail address" in outcome.skipped

    manager = text_of(mails["maria@example.com"])
    last = (dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    previous = (dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert hand(world, None, *last) in manager
    assert "n 160" in manager
    assert "Scope: the whole company" in manager
    weak = section(manager, "Branches below average")
    assert "Botanica" in weak
    assert "Bălți" not in weak
    assert "Open cases: 4\n" in manager
    assert "Open cases past their SLA deadline: 2\n" in manager
    # The previous 7 days: (30, 20, 30) n 80, NPS 0; the change -13.1 is it significant?
    assert "Previous 7 days: NPS 0.0, n 80" in manager
    assert "Change: -13.1 (" in manager

    sofia = text_of(mails["sofia@example.com"])
    mine = ["sofia", "andrei", "ion"]
    assert hand(world, mine, *last) in sofia
    assert "n 80" in sofia and "n 160" not in sofia
    # Without Elena's answers: only Andrei's before (10, 10, 20).
    assert hand(world, mine, *previous).startswith("NPS: -25.0 ")
    assert "Previous 7 days: NPS -25.0, n 40" in sofia
    assert "Scope: your teams (3 employees)" in sofia
    weak = section(sofia, "Employees below average")
    assert "Ion" in weak
    assert "Elena" not in sofia and "Botanica" not in sofia and "Bălți" not in sofia
    assert "Open cases: 2\n" in sofia
    assert "Open cases past their SLA deadline: 1\n" in sofia
    assert f"{settings.SITE_URL}/analytics/" in sofia
    assert "2026-W49" in mails["sofia@example.com"]["Subject"]


def test_the_trend_is_an_inline_png(world: World, smtp: Mailbox, frozen: None) -> None:
    digest.send_all()

    message = by_recipient(smtp)["maria@example.com"]
    assert message.get_content_type() == "multipart/related"
    found = parts(message)
    image = found["image/png"]
    assert image["Content-ID"] == "<nps-trend>"
    data = image.get_content()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 2000
    html = found["text/html"].get_content()
    assert 'src="cid:nps-trend"' in html
    assert f"{settings.SITE_URL}/analytics/" in html
    # The weeks behind it, also in the text.
    assert text_of(message).count("Week of ") == 12


def test_twice_in_a_week_sends_once(world: World, smtp: Mailbox) -> None:
    with freeze_time(MONDAY_7):
        assert len(digest.send_all().sent) == 3
    with freeze_time(MONDAY_7 + dt.timedelta(days=2)):
        again = digest.send_all()
        call_command("send_digest", stdout=io.StringIO())
    assert again.sent == []
    assert len(again.already) == 3
    assert len(smtp.messages) == 3
    records = AuditLog.objects.filter(action="digest.sent")
    assert records.count() == 3
    assert {r.changes["week"] for r in records} == {WEEK}
    assert {r.object_id for r in records} == {
        str(world.users[name].pk) for name in ("manager", "analyst", "sofia")
    }
    # The next week, again.
    with freeze_time(MONDAY_7 + dt.timedelta(days=7)):
        assert len(digest.send_all().sent) == 3


def test_employees_users_without_an_address_and_inactive_users_get_nothing(
    world: World, smtp: Mailbox, frozen: None
) -> None:
    outcome = digest.send_all()

    addresses = {address for envelope in smtp.envelopes for address in envelope}
    assert "andrei@example.com" not in addresses
    assert "gone@example.com" not in addresses
    assert "nomail@example.com" not in addresses
    assert outcome.failed == []
    assert not AuditLog.objects.filter(
        action="digest.sent",
        object_id__in=[str(world.users[n].pk) for n in ("employee", "no_mail", "inactive")],
    ).exists()


def test_a_supervisor_without_a_team_is_skipped(
    world: World, smtp: Mailbox, frozen: None, make_user: Callable[..., Any]
) -> None:
    make_user(world.workspace, Role.SUPERVISOR, username="lonely")

    outcome = digest.send_all()

    assert "lonely: no team" in outcome.skipped
    assert "lonely@example.com" not in by_recipient(smtp)


def test_dry_run_sends_nothing_and_says_who_would_get_what(
    world: World, smtp: Mailbox, frozen: None
) -> None:
    out = io.StringIO()
    call_command("send_digest", "--dry-run", "--workspace", "acme", stdout=out)

    printed = out.getvalue()
    assert smtp.messages == []
    assert not AuditLog.objects.filter(action="digest.sent").exists()
    assert "would send 2026-W49 to maria@example.com (acme, cx_manager, company)" in printed
    assert "NPS -13.1 n 160" in printed
    assert "to sofia@example.com (acme, supervisor, teams (3 employees))" in printed
    assert "andrei@example.com" not in printed
    assert "skipped nomail: no e-mail address" in printed
    assert "dry run: 3 digest(s) would be sent" in printed


def test_an_unknown_workspace_is_an_error(db: Any) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("send_digest", "--workspace", "nope", stdout=io.StringIO())


def test_the_beat_entry_points_to_a_registered_task(world: World, smtp: Mailbox) -> None:
    from celery.loaders.base import autodiscover_tasks

    from cxloop.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["analytics-weekly-digest"]
    schedule = entry["schedule"]
    assert isinstance(schedule, crontab)
    # Hourly: each workspace's digests go out at 07:00 in its own time zone.
    assert (schedule.minute, schedule.hour, schedule.day_of_week) == (
        {0}, set(range(24)), set(range(7))
    )  # fmt: skip
    # What the worker's autodiscovery imports (each app's ``tasks``) registers the task.
    assert "cxloop.analytics" in settings.INSTALLED_APPS
    found = autodiscover_tasks(["cxloop.analytics"], "tasks")
    assert [m.__name__ for m in found] == ["cxloop.analytics.tasks"]
    assert entry["task"] in app.tasks

    # Eager here (no broker): the task sends the digests.
    with freeze_time(MONDAY_7):
        app.tasks[entry["task"]].delay()
    assert len(smtp.messages) == 3


def test_the_digest_speaks_the_workspace_language(
    world: World, smtp: Mailbox, frozen: None
) -> None:
    Workspace.objects.filter(pk=world.workspace.pk).update(default_language="ro")

    digest.send_all()

    text = text_of(by_recipient(smtp)["maria@example.com"])
    # Romanian formats: a decimal comma, day.month.year.
    assert "-13,1" in text
    assert "23.11.2026" in text


def test_scheduled_runs_send_from_monday_seven_in_the_workspace_time_zone(
    world: World, smtp: Mailbox
) -> None:
    """The workspace is in Chisinau (UTC+2 in November): 07:00 there is 05:00 UTC."""
    monday = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    for at, due in [
        (monday - dt.timedelta(hours=1), False),  # Monday 01:00 there, Sunday in UTC
        (monday + dt.timedelta(hours=4, minutes=59), False),  # 06:59 there
        (monday + dt.timedelta(hours=5), True),  # 07:00 there, 05:00 UTC
        (monday + dt.timedelta(days=2, hours=21, minutes=59), True),  # Wednesday 23:59
        (monday + dt.timedelta(days=2, hours=22), False),  # Thursday 00:00 there
    ]:
        assert digest.is_due(world.workspace, at) is due, at
    with freeze_time(monday + dt.timedelta(hours=4, minutes=30)):
        assert digest.send_all(scheduled=True).sent == []
    assert smtp.messages == []
    with freeze_time(monday + dt.timedelta(hours=5)):
        assert len(digest.send_all(scheduled=True).sent) == 3
        # The next hourly runs find them sent.
        assert digest.send_all(scheduled=True).sent == []
    # The Thursday of the next week: too late for the schedule; by hand (``cxloop
    # send_digest``) it goes whatever the day.
    with freeze_time(monday + dt.timedelta(days=10)):
        assert digest.send_all(scheduled=True).sent == []
        assert len(digest.send_all().sent) == 3
