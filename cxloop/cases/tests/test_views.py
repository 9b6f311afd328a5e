# ruff: noqa: RUF001 - Russian phrases are written in Cyrillic on purpose
"""The closed loop's pages through Django's test client: who sees which case (and which phone
number), the call-back from first attempt to close, refusals that save nothing, the
employee's own page, the settings and the problem register."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.cases import services
from cxloop.cases.models import (
    AlertRule,
    Case,
    CaseEvent,
    CaseStatus,
    CoachingNote,
    EventKind,
    Problem,
    ProblemStatus,
    ReasonCode,
)
from cxloop.core import clock
from cxloop.surveys.models import Survey

from .conftest import MakeCase, Org, build_org, make_response

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., Any]


def text_of(response: Any) -> str:
    """The page's text without tags, spaces squeezed, for assertions on what a reader sees."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def listed(response: Any) -> list[int]:
    """The case ids of the inbox's rows, in order."""
    return [int(pk) for pk in re.findall(r'<tr data-case="(\d+)"', response.content.decode())]


def events(case: Case) -> list[str]:
    return list(case.events.order_by("at", "pk").values_list("kind", flat=True))


# --- the inbox ------------------------------------------------------------------------------


def test_the_inbox_lists_my_open_cases_soonest_deadline_first(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    now = clock.now()
    later, sooner, overdue = make_case(), make_case(), make_case()
    for case, hours in ((later, 5), (sooner, 1), (overdue, -1)):
        Case.objects.filter(pk=case.pk).update(due_at=now + dt.timedelta(hours=hours, minutes=5))
    not_mine = make_case(employee=None)  # nobody named: the branch manager's
    closed = make_case()
    services.log_attempt(closed, "no_answer")
    services.close(closed, CaseStatus.DECLINED)
    assert not_mine.assignee == org.manager
    assert later.assignee == org.supervisor

    client.force_login(org.supervisor_user)
    page = client.get("/cases/")

    assert page.status_code == 200
    assert listed(page) == [overdue.pk, sooner.pk, later.pk]
    text = text_of(page)
    assert "overdue by 55 min" in text
    assert "1 h 4 min left" in text or "1 h 5 min left" in text
    assert re.search(
        rf'<td class="nowrap late">\s*<a href="/cases/{overdue.pk}">', page.content.decode()
    )


def test_a_supervisor_sees_their_teams_cases_and_closed_ones_in_tabs(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    mine = make_case()
    managers = make_case(employee=None)
    closed = make_case()
    services.log_attempt(closed, "reached")
    services.close(closed, CaseStatus.DECLINED)
    client.force_login(org.supervisor_user)

    # The branch's case is not about her team: only the CX team and the manager see it.
    assert listed(client.get("/cases/?tab=teams")) == [mine.pk]
    assert listed(client.get("/cases/?tab=closed")) == [closed.pk]
    assert managers.pk not in listed(client.get("/cases/?tab=all"))  # no such tab: her own


def test_the_cx_queue_and_filters(
    client: Client, workspace: Workspace, org: Org, make_case: MakeCase, make_user: MakeUser
) -> None:
    urgent = make_case()
    Case.objects.filter(pk=urgent.pk).update(priority="urgent")
    normal = make_case()
    queued = make_case()
    services.assign(queued, None)
    client.force_login(make_user(workspace, Role.CX_MANAGER))

    # No cases of her own: she starts with everything open.
    assert sorted(listed(client.get("/cases/"))) == sorted([urgent.pk, normal.pk, queued.pk])
    assert listed(client.get("/cases/?tab=queue")) == [queued.pk]
    assert listed(client.get("/cases/?tab=all&priority=urgent")) == [urgent.pk]
    assert listed(client.get(f"/cases/?tab=all&branch={org.branch.pk}&status=open")) == sorted(
        [urgent.pk, normal.pk, queued.pk], key=lambda pk: (Case.objects.get(pk=pk).due_at, pk)
    )


def test_the_inbox_pages_by_deadline_without_offsets(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    from cxloop.cases import views

    cases = [make_case() for _ in range(5)]
    client.force_login(org.supervisor_user)
    original = views.PAGE_SIZE
    views.PAGE_SIZE = 2
    try:
        first = client.get("/cases/")
        cursor = re.search(r'after=([\w-]+)" rel="next"', first.content.decode())
        assert cursor is not None
        second = client.get(f"/cases/?tab=mine&after={cursor.group(1)}")
    finally:
        views.PAGE_SIZE = original
    ordered = [c.pk for c in sorted(cases, key=lambda c: (c.due_at, c.pk))]
    assert listed(first) == ordered[:2]
    assert listed(second) == ordered[2:4]


def test_the_inbox_makes_the_same_few_queries_for_30_cases(
    client: Client, org: Org, make_case: MakeCase, django_assert_max_num_queries: Any
) -> None:
    for n in range(30):
        make_case(employee=org.agent if n % 2 else None)
    client.force_login(org.supervisor_user)
    client.get("/cases/")  # warm the session and caches

    with django_assert_max_num_queries(12):
        page = client.get("/cases/?tab=teams")
    assert len(listed(page)) == 15


@pytest.mark.parametrize("role", [Role.EMPLOYEE])
def test_employees_have_no_inbox(
    client: Client, workspace: Workspace, make_user: MakeUser, role: str
) -> None:
    client.force_login(make_user(workspace, role))
    assert client.get("/cases/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client: Client, workspace: Workspace) -> None:
    response = client.get("/cases/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- who sees a case ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.CX_MANAGER, Role.ADMIN])
def test_the_case_page_shows_the_phone_to_those_who_call_back(
    client: Client,
    workspace: Workspace,
    org: Org,
    make_case: MakeCase,
    make_user: MakeUser,
    role: str,
) -> None:
    case = make_case(comment="The courier never came.", contact_phone="+37369555444")
    user = org.supervisor_user if role == Role.SUPERVISOR else make_user(workspace, role)
    client.force_login(user)

    page = client.get(f"/cases/{case.pk}")

    assert page.status_code == 200
    text = text_of(page)
    assert "The courier never came." in text
    assert "+37369555444" in text
    assert "Ion Popescu" in text
    assert "Waiting time" in text  # the reasons answer, in the survey's words
    assert 'id="callback-form"' in page.content.decode()


def test_an_analyst_reads_a_case_without_contacts_and_cannot_act(
    client: Client, workspace: Workspace, org: Org, make_case: MakeCase, make_user: MakeUser
) -> None:
    case = make_case(contact_phone="+37369555444")
    client.force_login(make_user(workspace, Role.ANALYST))

    page = client.get(f"/cases/{case.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "+37369555444" not in html
    assert "+37369123456" not in html  # the customer's own number either
    assert "Ion Popescu" not in html
    assert "callback-form" not in html and "attempt-form" not in html

    for action, data in (
        ("attempt", {"result": "no_answer"}),
        ("close", {"status": "declined"}),
        ("reopen", {}),
        ("coaching", {"text": "x"}),
    ):
        assert client.post(f"/cases/{case.pk}", {"action": action, **data}).status_code == 403
    assert events(case) == [EventKind.OPENED]
    assert Case.objects.get(pk=case.pk).status == CaseStatus.OPEN


def test_another_workspaces_case_is_not_found(
    client: Client,
    workspace: Workspace,
    other_workspace: Workspace,
    make_case: MakeCase,
    make_user: MakeUser,
) -> None:
    case = make_case()
    client.force_login(make_user(other_workspace, Role.ADMIN))
    assert client.get(f"/cases/{case.pk}").status_code == 404
    assert client.post(f"/cases/{case.pk}", {"action": "reopen"}).status_code == 404


def test_a_supervisor_of_another_team_does_not_find_the_case(
    client: Client, workspace: Workspace, org: Org, make_case: MakeCase, make_user: MakeUser
) -> None:
    case = make_case()
    other = build_org(workspace, make_user, prefix="b")
    client.force_login(other.supervisor_user)

    assert client.get(f"/cases/{case.pk}").status_code == 404
    assert (
        client.post(f"/cases/{case.pk}", {"action": "attempt", "result": "busy"}).status_code == 404
    )
    assert case.pk not in listed(client.get("/cases/?tab=teams"))
    assert events(case) == [EventKind.OPENED]


# --- the call-back --------------------------------------------------------------------------


def test_a_call_back_without_a_reason_is_refused_and_saves_nothing(
    client: Client, org: Org, make_case: MakeCase, reason_codes: dict[str, ReasonCode]
) -> None:
    case = make_case()
    client.force_login(org.supervisor_user)

    page = client.post(
        f"/cases/{case.pk}",
        {"action": "callback", "apologised": "yes", "solved": "yes", "expected": "A call"},
    )

    assert page.status_code == 200
    assert "Choose at least one root-cause reason." in text_of(page)
    # What was typed is still there.
    assert 'value="yes" checked' in page.content.decode() or "checked" in page.content.decode()
    assert "A call" in page.content.decode()
    saved = Case.objects.get(pk=case.pk)
    assert (saved.apologised, saved.solved, saved.status) == (None, "", CaseStatus.OPEN)
    assert events(case) == [EventKind.OPENED]


def test_the_call_back_from_first_attempt_to_resolved(
    client: Client, org: Org, make_case: MakeCase, reason_codes: dict[str, ReasonCode]
) -> None:
    case = make_case()
    client.force_login(org.supervisor_user)
    url = f"/cases/{case.pk}"

    done = client.post(url, {"action": "attempt", "result": "no_answer", "note": "Rang twice"})
    assert done.status_code == 302 and done["Location"] == url
    # Resolved needs the call-back first.
    refused = client.post(url, {"action": "close", "status": "resolved"})
    assert "record the call-back before closing" in text_of(refused)
    assert Case.objects.get(pk=case.pk).status == CaseStatus.IN_PROGRESS

    client.post(url, {"action": "attempt", "result": "reached"})
    done = client.post(
        url,
        {
            "action": "callback",
            "apologised": "yes",
            "solved": "partly",
            "reasons": [reason_codes["waiting"].pk, reason_codes["staff"].pk],
            "expected": "To be served within ten minutes",
            "notes": "Offered a discount on the next visit",
        },
    )
    assert done.status_code == 302
    done = client.post(url, {"action": "close", "status": "resolved", "note": "Happy now"})
    assert done.status_code == 302

    saved = Case.objects.get(pk=case.pk)
    assert saved.status == CaseStatus.RESOLVED
    assert saved.closed_at is not None
    assert (saved.apologised, saved.solved) == (True, "partly")
    assert saved.expected == "To be served within ten minutes"
    assert sorted(r.code for r in saved.reasons.all()) == ["staff", "waiting"]
    assert events(case) == [
        EventKind.OPENED,
        EventKind.ATTEMPT,
        EventKind.ATTEMPT,
        EventKind.CALLBACK,
        EventKind.CLOSED,
    ]
    assert set(
        CaseEvent.objects.filter(case=case).exclude(kind="opened").values_list("via", flat=True)
    ) == {"web"}
    page = client.get(url)
    text = text_of(page)
    assert "Resolved" in text
    assert "Staff attitude" in text and "Partly" in text
    assert "Rang twice" in text
    assert 'id="reopen-form"' in page.content.decode()
    assert listed(client.get("/cases/?tab=closed")) == [case.pk]


def test_unreachable_needs_the_workspaces_number_of_attempts(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    case = make_case()
    client.force_login(org.supervisor_user)
    url = f"/cases/{case.pk}"
    client.post(url, {"action": "attempt", "result": "no_answer"})

    page = client.post(url, {"action": "close", "status": "unreachable"})

    assert page.status_code == 200
    assert "unreachable needs 3 logged call attempts; this case has 1" in text_of(page)
    assert "1 of 3" in text_of(page)
    assert Case.objects.get(pk=case.pk).is_open
    for result in ("busy", "voicemail"):
        client.post(url, {"action": "attempt", "result": result})
    assert client.post(url, {"action": "close", "status": "unreachable"}).status_code == 302
    assert Case.objects.get(pk=case.pk).status == CaseStatus.UNREACHABLE


def test_reassigning_shows_from_and_to_in_the_history(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    case = make_case()
    client.force_login(org.supervisor_user)

    client.post(
        f"/cases/{case.pk}", {"action": "assign", "assignee": org.manager.pk, "note": "On leave"}
    )

    assert Case.objects.get(pk=case.pk).assignee == org.manager
    text = text_of(client.get(f"/cases/{case.pk}"))
    assert "Reassigned — Sofia Ceban → Mihai Rusu" in text
    assert "On leave" in text


def test_coaching_and_escalation_from_the_case_page(
    client: Client, org: Org, make_case: MakeCase, reason_codes: dict[str, ReasonCode]
) -> None:
    case = make_case()
    client.force_login(org.supervisor_user)
    url = f"/cases/{case.pk}"

    empty = client.post(url, {"action": "escalate", "title": ""})
    assert "Give the new problem a title" in text_of(empty)
    assert not Problem.objects.exists()

    client.post(url, {"action": "coaching", "text": "Greet within a minute; call a colleague."})
    client.post(
        url, {"action": "escalate", "title": "Queues at Centru", "function": "Operations",
         "owner": org.manager.pk, "deadline": "2030-01-31"},
    )  # fmt: skip

    note = CoachingNote.objects.get()
    assert (note.employee, note.case_id, note.author) == (org.agent, case.pk, org.supervisor_user)
    problem = Problem.objects.get()
    assert (problem.title, problem.function, problem.owner) == (
        "Queues at Centru",
        "Operations",
        org.manager,
    )
    assert Case.objects.get(pk=case.pk).problem == problem
    text = text_of(client.get(url))
    assert "Greet within a minute" in text and "Queues at Centru" in text


# --- an employee's page ---------------------------------------------------------------------


def test_an_employee_sees_their_feedback_without_who_said_it(
    client: Client, org: Org, make_case: MakeCase
) -> None:
    make_case(comment="Andrei was rude to me.", score=2, contact_phone="+37369555444")
    services.add_coaching(org.agent, "Listen first, then explain.", author=org.supervisor_user)
    client.force_login(org.agent_user)

    me = client.get("/cases/me")
    assert me.status_code == 302 and me["Location"] == f"/cases/employees/{org.agent.pk}"
    page = client.get(me["Location"])

    assert page.status_code == 200
    text = text_of(page)
    assert "Andrei was rude to me." in text
    assert "Listen first, then explain." in text
    assert "My feedback" in text
    html = page.content.decode()
    for identity in ("Ion Popescu", "+37369555444", "+37369123456", "CUST-"):
        assert identity not in html
    assert not re.search(r'href="/cases/\d+"', html)  # no links to cases
    # Colleagues' pages are not theirs to read; nor are cases.
    assert client.get(f"/cases/employees/{org.supervisor.pk}").status_code == 404
    assert client.post(f"/cases/employees/{org.agent.pk}", {"text": "x"}).status_code == 403


def test_a_supervisor_reads_and_coaches_their_reports(
    client: Client, workspace: Workspace, org: Org, make_case: MakeCase, make_user: MakeUser
) -> None:
    case = make_case(comment="Slow but kind.")
    other = build_org(workspace, make_user, prefix="b")
    client.force_login(org.supervisor_user)

    page = client.get(f"/cases/employees/{org.agent.pk}")
    assert page.status_code == 200
    assert f'href="/cases/{case.pk}"' in page.content.decode()
    client.post(f"/cases/employees/{org.agent.pk}", {"text": "Keep it up."})
    assert CoachingNote.objects.get().text == "Keep it up."
    assert client.get(f"/cases/employees/{other.agent.pk}").status_code == 404


# --- settings -------------------------------------------------------------------------------


def test_the_settings_add_a_reason_code_and_an_alert_rule(
    client: Client, workspace: Workspace, nps_survey: Survey, make_user: MakeUser
) -> None:
    client.force_login(make_user(workspace, Role.CX_MANAGER))
    assert client.get("/cases/settings").status_code == 200

    done = client.post(
        "/cases/settings",
        {"form": "reason", "code": "billing", "label_en": "Billing error", "label_ru": "Ошибка в счёте",
         "label_ro": "", "category": "Money", "position": "3", "is_active": "on"},
    )  # fmt: skip
    assert done.status_code == 302
    reason = ReasonCode.objects.get(workspace=workspace, code="billing")
    assert reason.labels == {"en": "Billing error", "ru": "Ошибка в счёте"}
    duplicate = client.post(
        "/cases/settings",
        {"form": "reason", "code": "billing", "label_en": "Again", "position": "0"},
    )
    assert "already has a reason with this code" in text_of(duplicate)

    done = client.post(
        "/cases/settings",
        {"form": "rule", "survey": nps_survey.pk, "name": "legal threat", "score_min": "",
         "score_max": "", "reasons": "", "phrases": "lawyer\nадвокат\n\navocat ",
         "priority": "urgent", "is_active": "on"},
    )  # fmt: skip
    assert done.status_code == 302
    rule = AlertRule.objects.get(survey=nps_survey)
    assert (rule.name, rule.phrases, rule.priority) == (
        "legal threat",
        ["lawyer", "адвокат", "avocat"],
        "urgent",
    )
    assert list(
        AuditLog.objects.filter(workspace=workspace, action__contains=".").values_list(
            "action", flat=True
        )[:2]
    ) == ["alert_rule.create", "reason_code.create"]
    page = text_of(client.get("/cases/settings"))
    assert "Billing error" in page and "legal threat" in page


def test_the_settings_change_the_sla_and_holidays(
    client: Client, workspace: Workspace, org: Org, make_user: MakeUser
) -> None:
    client.force_login(make_user(workspace, Role.ADMIN))
    done = client.post(
        "/cases/settings",
        {"form": "sla", "sla_mode": "hours", "sla_hours": "4", "min_minutes_left": "30",
         "day_start": "08:00", "day_end": "20:00", "workdays": ["1", "2", "3", "4", "5", "6"],
         "warn_minutes": "30", "max_attempts": "2", "follow_up_survey": ""},
    )  # fmt: skip
    assert done.status_code == 302
    stored = services.settings_for(workspace.pk)
    assert (stored.sla_mode, stored.sla_hours, stored.max_attempts) == ("hours", 4, 2)
    assert stored.workdays == [1, 2, 3, 4, 5, 6]
    assert stored.day_start == dt.time(8)
    assert AuditLog.objects.filter(action="case_settings.update").exists()

    done = client.post(
        "/cases/settings", {"form": "holiday", "date": "2030-01-01", "name": "New Year"}
    )
    assert done.status_code == 302
    twice = client.post("/cases/settings", {"form": "holiday", "date": "2030-01-01"})
    assert "already a holiday" in text_of(twice)


@pytest.mark.parametrize("role", [Role.ANALYST, Role.SUPERVISOR])
def test_only_configurers_change_the_settings(
    client: Client, workspace: Workspace, make_user: MakeUser, role: str
) -> None:
    client.force_login(make_user(workspace, role))
    assert client.get("/cases/settings").status_code == 403
    data = {"form": "reason", "code": "x", "label_en": "X", "position": "0"}
    assert client.post("/cases/settings", data).status_code == 403
    assert not ReasonCode.objects.exists()


# --- the problem register -------------------------------------------------------------------


def test_a_problem_is_created_edited_and_moved_along(
    client: Client, workspace: Workspace, org: Org, make_user: MakeUser,
    reason_codes: dict[str, ReasonCode],
) -> None:  # fmt: skip
    client.force_login(make_user(workspace, Role.CX_MANAGER))
    done = client.post(
        "/problems/new",
        {"title": "Queues on Saturdays", "function": "Operations", "owner": org.manager.pk,
         "deadline": "2030-03-01", "reasons": [reason_codes["waiting"].pk]},
    )  # fmt: skip
    problem = Problem.objects.get()
    assert done["Location"] == f"/problems/{problem.pk}"
    assert [r.code for r in problem.reasons.all()] == ["waiting"]

    client.post(
        f"/problems/{problem.pk}",
        {"action": "save", "title": "Queues on Saturdays", "function": "Retail",
         "owner": org.manager.pk, "reasons": [reason_codes["waiting"].pk, reason_codes["staff"].pk]},
    )  # fmt: skip
    client.post(f"/problems/{problem.pk}", {"action": "status", "status": "fixed"})
    refused = client.post(
        f"/problems/{problem.pk}", {"action": "status", "status": "verified"}, follow=True
    )
    assert "come from measuring the fix" in text_of(refused)

    problem.refresh_from_db()
    assert problem.function == "Retail"
    assert problem.status == ProblemStatus.FIXED
    assert problem.fixed_on == clock.now().date()
    listing = client.get("/problems/?status=fixed")
    assert "Queues on Saturdays" in text_of(listing)
    assert "Queues on Saturdays" not in text_of(client.get("/problems/?status=open"))


def test_verifying_a_problem_shows_the_verdict_and_the_chart(
    client: Client,
    workspace: Workspace,
    org: Org,
    nps_survey: Survey,
    make_user: MakeUser,
    reason_codes: dict[str, ReasonCode],
) -> None:
    fixed_on = clock.now().date() - dt.timedelta(days=10)
    fixed = dt.datetime.combine(fixed_on, dt.time(12), tzinfo=dt.UTC)
    for n in range(20):
        # Before the fix every detractor ticked "waiting"; after it, two in twenty.
        make_response(nps_survey, score=2, answered_at=fixed - dt.timedelta(days=5, hours=n))
        make_response(
            nps_survey,
            score=3,
            answers={"reasons": ["waiting" if n < 2 else "price"]},
            answered_at=fixed + dt.timedelta(days=2, hours=n),
        )
    problem = services.create_problem(
        workspace.pk, title="Queues", reasons=[reason_codes["waiting"]]
    )
    services.update_problem(problem, {"status": "fixed", "fixed_on": fixed_on})
    client.force_login(make_user(workspace, Role.CX_MANAGER))

    done = client.post(f"/problems/{problem.pk}", {"action": "verify"})
    assert done.status_code == 302
    page = client.get(f"/problems/{problem.pk}")

    problem.refresh_from_db()
    assert problem.status == ProblemStatus.VERIFIED
    text = text_of(page)
    assert "Verified: significantly fewer detractors cite these reasons." in text
    assert "20 of 20 detractors" in text and "2 of 20 detractors" in text
    assert "90.0" in text  # points
    assert "< 0.001" in text
    assert "<svg" in page.content.decode()


def test_analysts_read_problems_and_supervisors_do_not(
    client: Client, workspace: Workspace, org: Org, make_user: MakeUser
) -> None:
    problem = services.create_problem(workspace.pk, title="Queues")
    client.force_login(make_user(workspace, Role.ANALYST))
    assert client.get("/problems/").status_code == 200
    page = client.get(f"/problems/{problem.pk}")
    assert page.status_code == 200
    assert 'id="problem-form"' not in page.content.decode()
    for data in (
        {"action": "status", "status": "fixed"},
        {"action": "verify"},
        {"action": "save", "title": "Renamed"},
    ):
        assert client.post(f"/problems/{problem.pk}", data).status_code == 403
    assert Problem.objects.get().status == ProblemStatus.OPEN
    assert client.get("/problems/new").status_code == 403
    client.force_login(org.supervisor_user)
    assert client.get("/problems/").status_code == 403
