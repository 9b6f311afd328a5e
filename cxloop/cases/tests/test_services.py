# ruff: noqa: RUF001 - Russian phrases on purpose
"""The inner loop's engine: alert rules, exactly one case, routing, SLA timers, e-mails."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from freezegun import freeze_time

from cxloop.accounts.models import Role, Workspace
from cxloop.accounts.services import set_membership
from cxloop.cases import services
from cxloop.cases.models import (
    AlertRule,
    Case,
    CaseEvent,
    CaseSettings,
    CaseStatus,
    EventKind,
    Holiday,
    Priority,
    ProblemStatus,
    ReasonCode,
)
from cxloop.customers.models import Account
from cxloop.organisation.models import Employee, Team
from cxloop.surveys.importing import import_responses
from cxloop.surveys.models import AtRiskAccount, Response, ResponseSource, SurveyKind
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey
from cxloop.testing import Mailbox

CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
# Thursday 26 November 2026, 11:00 in Chișinău.
THURSDAY_11 = dt.datetime(2026, 11, 26, 11, tzinfo=CHISINAU)


@pytest.fixture
def loop(workspace: Workspace) -> dict[str, Any]:
    """Branch B01 (manager Maria), team T1 with supervisor Sergiu over agent Ion; a regional
    director above Sergiu. Every manager has a login and an e-mail address."""
    workspace.time_zone = "Europe/Chisinau"
    workspace.save()
    org = make_org(workspace)
    branch = org["branch"]
    users = {}
    for name, role in (("maria", Role.SUPERVISOR), ("sergiu", Role.SUPERVISOR)):
        user = get_user_model().objects.create_user(name, email=f"{name}@acme.test")
        set_membership(workspace, user, role, via="cli")
        users[name] = user
    director = Employee.objects.create(
        workspace=workspace, code="E900", name="Director", email="director@acme.test"
    )
    manager = Employee.objects.create(
        workspace=workspace, code="E100", name="Maria", branch=branch, user=users["maria"],
        supervisor=director,
    )  # fmt: skip
    branch.manager = manager
    branch.save()
    team = Team.objects.create(workspace=workspace, code="T1", name="Front desk", branch=branch)
    supervisor = Employee.objects.create(
        workspace=workspace, code="E200", name="Sergiu", branch=branch, team=team,
        supervisor=manager, user=users["sergiu"],
    )  # fmt: skip
    agent = Employee.objects.create(
        workspace=workspace, code="E300", name="Ion", branch=branch, team=team,
        supervisor=supervisor,
    )  # fmt: skip
    survey = make_survey(workspace)
    customer = make_customer(workspace)
    return {
        **org,
        "survey": survey,
        "customer": customer,
        "director": director,
        "manager": manager,
        "supervisor": supervisor,
        "agent": agent,
        "team": team,
    }


def answer(
    loop: dict[str, Any],
    score: int | None,
    comment: str = "",
    *,
    employee: Employee | None = None,
    with_employee: bool = True,
    answered_at: dt.datetime | None = None,
    **answers: Any,
) -> Response:
    return Response.objects.create(
        workspace=loop["survey"].workspace,
        external_id=uuid.uuid4().hex,
        survey=loop["survey"],
        customer=loop["customer"],
        score=score,
        comment=comment,
        answers=answers,
        answered_at=answered_at or dt.datetime.now(dt.UTC),
        source=ResponseSource.WEB,
        branch=loop["branch"],
        employee=(employee or loop["agent"]) if with_employee else None,
    )


@freeze_time(THURSDAY_11)
def test_a_detractor_opens_one_case_for_the_supervisor_due_today(loop: dict[str, Any]) -> None:
    response = answer(loop, 3, "Waited forty minutes")
    case = services.open_for_response(response.pk)
    assert case is not None
    assert case.assignee == loop["supervisor"]
    assert case.status == CaseStatus.OPEN
    # Same business day: 18:00 in Chișinău; reminded an hour before.
    assert case.due_at == dt.datetime(2026, 11, 26, 18, tzinfo=CHISINAU)
    assert case.warn_at == dt.datetime(2026, 11, 26, 17, tzinfo=CHISINAU)
    assert case.matched == ["detractor: score 3"]
    # Processed again (a retried task, the sweep): still one case.
    assert services.open_for_response(response.pk) == case
    services.tick()
    assert Case.objects.filter(response=response).count() == 1
    assert list(case.events.values_list("kind", flat=True)) == [EventKind.OPENED]


@freeze_time(THURSDAY_11)
def test_promoters_and_passives_open_nothing(loop: dict[str, Any]) -> None:
    for score in (7, 8, 9, 10):
        assert services.open_for_response(answer(loop, score).pk) is None
    assert services.open_for_response(answer(loop, 6).pk) is not None


@freeze_time(THURSDAY_11)
def test_a_configured_threshold_replaces_the_default(loop: dict[str, Any]) -> None:
    AlertRule.objects.create(
        workspace=loop["survey"].workspace, survey=loop["survey"], name="angry", score_max=3
    )
    assert services.open_for_response(answer(loop, 4).pk) is None
    assert services.open_for_response(answer(loop, 3).pk) is not None


@freeze_time(THURSDAY_11)
def test_phrases_open_an_urgent_case_whatever_the_score(loop: dict[str, Any]) -> None:
    AlertRule.objects.create(
        workspace=loop["survey"].workspace, survey=loop["survey"], name="legal",
        phrases=["адвокат", "avocat", "sue"], priority=Priority.URGENT,
    )  # fmt: skip
    AlertRule.objects.create(
        workspace=loop["survey"].workspace, survey=loop["survey"], name="low", score_max=6
    )
    russian = services.open_for_response(answer(loop, 10, "Поговорю с АДВОКАТОМ").pk)
    assert russian is not None and russian.priority == Priority.URGENT
    assert russian.matched == ["legal: phrase 'адвокат'"]
    # Romanian without diacritics, inflected.
    romanian = services.open_for_response(answer(loop, 9, "Vorbesc cu avocatul meu").pk)
    assert romanian is not None
    # "sue" is a word start, not any substring: "issue" is not a legal threat.
    assert services.open_for_response(answer(loop, 9, "One small issue").pk) is None
    assert services.open_for_response(answer(loop, 10, "I will SUE you").pk) is not None


@freeze_time(THURSDAY_11)
def test_chosen_reasons_open_a_case(loop: dict[str, Any]) -> None:
    AlertRule.objects.create(
        workspace=loop["survey"].workspace, survey=loop["survey"], name="price", reasons=["price"]
    )
    assert services.open_for_response(answer(loop, 8, reasons=["staff"]).pk) is None
    case = services.open_for_response(answer(loop, 8, reasons=["staff", "price"]).pk)
    assert case is not None and case.matched == ["price: reason price"]


@freeze_time(THURSDAY_11)
def test_routing_falls_back_to_the_branch_manager_then_the_queue(loop: dict[str, Any]) -> None:
    no_employee = services.open_for_response(answer(loop, 2, with_employee=False).pk)
    assert no_employee is not None and no_employee.assignee == loop["manager"]
    # The supervisor left: the branch manager takes their people's cases.
    Employee.objects.filter(pk=loop["supervisor"].pk).update(is_active=False)
    orphan = services.open_for_response(answer(loop, 2).pk)
    assert orphan is not None and orphan.assignee == loop["manager"]
    # No manager either: the CX team's queue.
    loop["branch"].manager = None
    loop["branch"].save()
    queued = services.open_for_response(answer(loop, 2, with_employee=False).pk)
    assert queued is not None and queued.assignee is None


@freeze_time(THURSDAY_11)
def test_the_sweep_opens_cases_for_imported_responses(loop: dict[str, Any]) -> None:
    # The batch API sends no per-response signal: the heartbeat's sweep finds them.
    now = dt.datetime.now(dt.UTC)
    items = [
        {"external_id": f"K-{i}", "survey": "after-visit", "score": score, "customer": "C1",
         "answered_at": now.isoformat(), "employee": "E300", "branch": "B01"}
        for i, score in enumerate((0, 5, 9, 10))
    ]  # fmt: skip
    old = {"external_id": "K-old", "survey": "after-visit", "score": 1, "customer": "C1",
           "answered_at": (now - dt.timedelta(days=30)).isoformat()}  # fmt: skip
    result = import_responses(loop["survey"].workspace, [*items, old])
    assert result.accepted == 5
    stats = services.tick()
    assert stats["cases_opened"] == 2
    opened = Case.objects.order_by("response__external_id")
    assert [c.response.external_id for c in opened if c.response] == ["K-0", "K-1"]
    assert all(c.assignee == loop["supervisor"] for c in opened)
    # Nothing is opened twice by later heartbeats.
    assert services.tick()["cases_opened"] == 0


def test_an_answer_on_the_survey_page_opens_its_case_at_once(loop: dict[str, Any]) -> None:
    from cxloop.surveys.responses import record
    from cxloop.surveys.rules import schedule_for

    decision = schedule_for(loop["survey"], loop["customer"])
    invitation = decision.invitation
    assert invitation is not None
    invitation.employee = loop["agent"]
    invitation.branch = loop["branch"]
    invitation.save()
    with pytest.raises(Case.DoesNotExist):
        Case.objects.get()
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = record(invitation, score=2)
    case = Case.objects.get()
    assert case.response == response
    assert case.assignee == loop["supervisor"]
    # The comment typed afterwards changes the response; still one case.
    with TestCase.captureOnCommitCallbacks(execute=True):
        record(invitation, comment="still angry")
    assert Case.objects.count() == 1


def test_escalation_when_the_deadline_passes(loop: dict[str, Any], smtp: Mailbox) -> None:
    with freeze_time(THURSDAY_11):
        case = services.open_for_response(answer(loop, 1).pk)
        assert case is not None
        services.tick()
    assert [m["To"] for m in smtp.messages] == ["sergiu@acme.test"]
    assert "New case" in smtp.messages[0]["Subject"]
    smtp.messages.clear()

    # 17:10: the reminder, once however many heartbeats run.
    with freeze_time(dt.datetime(2026, 11, 26, 17, 10, tzinfo=CHISINAU)):
        assert services.tick()["cases_warned"] == 1
        assert services.tick()["cases_warned"] == 0
    assert [m["To"] for m in smtp.messages] == ["sergiu@acme.test"]
    smtp.messages.clear()

    # 18:01: breached → Sergiu's manager Maria, with a new deadline (Friday's close).
    with freeze_time(dt.datetime(2026, 11, 26, 18, 1, tzinfo=CHISINAU)):
        stats = services.tick()
        assert stats["cases_escalated"] == 1
        assert services.tick()["cases_escalated"] == 0
    case.refresh_from_db()
    assert case.assignee == loop["manager"]
    assert case.breached and case.escalation_level == 1
    assert case.due_at == dt.datetime(2026, 11, 27, 18, tzinfo=CHISINAU)
    assert [m["To"] for m in smtp.messages] == ["maria@acme.test"]
    assert "escalated" in smtp.messages[0]["Subject"]
    escalation = case.events.get(kind=EventKind.ESCALATED)
    assert (escalation.from_assignee, escalation.to_assignee) == (
        loop["supervisor"],
        loop["manager"],
    )

    # Friday passes too → Maria's own manager, the director (no login: e-mail only).
    with freeze_time(dt.datetime(2026, 11, 27, 18, 5, tzinfo=CHISINAU)):
        services.tick()
    case.refresh_from_db()
    assert case.assignee == loop["director"] and case.escalation_level == 2


def test_timers_follow_holidays_and_workspace_settings(loop: dict[str, Any]) -> None:
    workspace = loop["survey"].workspace
    CaseSettings.objects.create(workspace=workspace, sla_mode="hours", sla_hours=4, warn_minutes=30)
    Holiday.objects.create(workspace=workspace, date=dt.date(2026, 11, 27), name="Local")
    with freeze_time(dt.datetime(2026, 11, 26, 16, tzinfo=CHISINAU)):
        case = services.open_for_response(answer(loop, 1).pk)
    assert case is not None
    # Thursday 16:00 + 4 business hours, Friday a holiday, weekend → Monday 11:00.
    assert case.due_at == dt.datetime(2026, 11, 30, 11, tzinfo=CHISINAU)
    assert case.warn_at == dt.datetime(2026, 11, 30, 10, 30, tzinfo=CHISINAU)
    # Nothing happens on the holiday: the timers live in the database and wait.
    with freeze_time(dt.datetime(2026, 11, 27, 12, tzinfo=CHISINAU)):
        stats = services.tick()
    assert stats["cases_warned"] == stats["cases_escalated"] == 0


@freeze_time(THURSDAY_11)
def test_close_follows_the_script(loop: dict[str, Any]) -> None:
    workspace = loop["survey"].workspace
    waiting = ReasonCode.objects.create(workspace=workspace, code="waiting", labels={"en": "Wait"})
    case = services.open_for_response(answer(loop, 2).pk)
    assert case is not None
    with pytest.raises(services.CaseError, match="record the call-back"):
        services.close(case, CaseStatus.RESOLVED)
    with pytest.raises(services.CaseError, match="3 logged call attempts"):
        services.close(case, CaseStatus.UNREACHABLE)
    with pytest.raises(services.CaseError, match="at least one"):
        services.record_callback(case, apologised=True, solved="yes", reasons=[])
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN and case.apologised is None

    for _ in range(2):
        services.log_attempt(case, "no_answer")
    with pytest.raises(services.CaseError, match="this case has 2"):
        services.close(case, CaseStatus.UNREACHABLE)
    services.log_attempt(case, "reached")
    services.record_callback(
        case, apologised=True, solved="partly", reasons=[waiting], expected="Be served in 10 min"
    )
    closed = services.close(case, CaseStatus.RESOLVED)
    assert closed.status == CaseStatus.RESOLVED and not closed.breached
    assert list(closed.reasons.values_list("code", flat=True)) == ["waiting"]
    kinds = list(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds == ["opened", "attempt", "attempt", "attempt", "callback", "closed"]
    with pytest.raises(services.CaseError, match="already closed"):
        services.close(case, CaseStatus.DECLINED)


@freeze_time(THURSDAY_11)
def test_a_resolved_case_sends_the_follow_up_survey(loop: dict[str, Any]) -> None:
    from cxloop.surveys.definition import default_definition

    workspace = loop["survey"].workspace
    follow = make_survey(
        workspace, "did-we-solve-it", definition=default_definition("Acme"),
        kind=SurveyKind.RELATIONSHIP, quiet_period_days=0,
    )  # fmt: skip
    CaseSettings.objects.create(workspace=workspace, follow_up_survey=follow)
    reason = ReasonCode.objects.create(workspace=workspace, code="staff")
    case = services.open_for_response(answer(loop, 2).pk)
    assert case is not None
    services.record_callback(case, apologised=True, solved="yes", reasons=[reason])
    closed = services.close(case, CaseStatus.RESOLVED)
    assert closed.follow_up is not None
    assert closed.follow_up.survey == follow
    assert closed.follow_up.customer == loop["customer"]


@freeze_time(THURSDAY_11)
def test_reassignment_keeps_its_history(loop: dict[str, Any]) -> None:
    case = services.open_for_response(answer(loop, 2).pk)
    assert case is not None
    services.assign(case, loop["manager"], note="Sergiu is off today")
    services.assign(case, None)
    case.refresh_from_db()
    assert case.assignee is None
    moves = list(
        case.events.filter(kind=EventKind.ASSIGNED).values_list(
            "from_assignee__code", "to_assignee__code", "note"
        )
    )
    assert moves == [("E200", "E100", "Sergiu is off today"), ("E100", None, "")]


@freeze_time(THURSDAY_11)
def test_an_account_that_stopped_answering_opens_a_queue_case(loop: dict[str, Any]) -> None:
    workspace = loop["survey"].workspace
    account = Account.objects.create(workspace=workspace, external_id="ACME-B2B")
    AtRiskAccount.objects.create(workspace=workspace, account=account, unanswered=4)
    assert services.tick()["cases_opened"] == 1
    assert services.tick()["cases_opened"] == 0
    case = Case.objects.get()
    assert case.source == "at_risk" and case.assignee is None
    # Switched off per workspace.
    CaseSettings.objects.create(workspace=workspace, open_for_at_risk=False)
    assert case.at_risk_id is not None
    AtRiskAccount.objects.filter(pk=case.at_risk_id).update(cleared_at=dt.datetime.now(dt.UTC))
    AtRiskAccount.objects.create(workspace=workspace, account=account, unanswered=5)
    assert services.tick()["cases_opened"] == 0


def _detractors(loop: dict[str, Any], when: dt.datetime, citing: int, other: int) -> None:
    for i in range(citing + other):
        answer(loop, 3, answered_at=when + dt.timedelta(hours=i % 48), reasons=(
            ["waiting"] if i < citing else ["price"]
        ))  # fmt: skip


def test_a_fix_is_verified_only_when_the_drop_is_significant(loop: dict[str, Any]) -> None:
    workspace = loop["survey"].workspace
    ReasonCode.objects.create(workspace=workspace, code="waiting")
    fixed_on = dt.date(2026, 10, 1)
    before = dt.datetime(2026, 9, 10, tzinfo=dt.UTC)
    after = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
    _detractors(loop, before, citing=30, other=30)  # 50% cite waiting before the fix
    _detractors(loop, after, citing=6, other=54)  # 10% after
    case = Case.objects.create(
        workspace=workspace, source="manual", due_at=after, warn_at=after, opened_at=after
    )
    case.reasons.set(ReasonCode.objects.all())
    problem = services.escalate_to_problem(case, title="Queues at the counter", function="Ops")
    assert list(problem.reasons.values_list("code", flat=True)) == ["waiting"]
    assert Case.objects.get(pk=case.pk).problem == problem
    with pytest.raises(services.CaseError, match="only a fixed problem"):
        services.verify_problem(problem)
    with pytest.raises(services.CaseError, match="cannot become verified"):
        services.update_problem(problem, {"status": ProblemStatus.VERIFIED})
    problem = services.update_problem(
        problem, {"status": ProblemStatus.FIXED, "fixed_on": fixed_on}
    )
    measured_at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    verified = services.verify_problem(problem, now=measured_at)
    assert verified.status == ProblemStatus.VERIFIED
    assert verified.effect["before"] == {"citing": 30, "detractors": 60, "share": 0.5}
    assert verified.effect["after"]["citing"] == 6
    assert verified.effect["p_value"] < 0.001

    # The same share after the fix: not effective.
    Response.objects.filter(answered_at__gte=after).delete()
    _detractors(loop, after, citing=30, other=30)
    again = services.verify_problem(verified, now=measured_at)
    assert again.status == ProblemStatus.NOT_EFFECTIVE
    assert not again.effect["significant"]


@pytest.mark.django_db(transaction=True)
def test_racing_workers_open_one_case_per_response(loop: dict[str, Any]) -> None:
    import threading

    from django.db import connection

    if connection.vendor == "sqlite":
        # As in the dispatcher's race test: CI runs this on PostgreSQL, where workers race.
        pytest.skip("SQLite's in-memory test database cannot host concurrent writers")
    responses = [answer(loop, 2) for _ in range(10)]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for response in responses:
                services.open_for_response(response.pk)
            services.tick()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Case.objects.count() == 10
    assert CaseEvent.objects.filter(kind=EventKind.OPENED).count() == 10
