"""The demo's closed loop: cases as the live rules would open them, and a verified fix."""

from __future__ import annotations

import datetime as dt

import pytest

from cxloop.accounts.models import Workspace
from cxloop.cases import services
from cxloop.cases.models import (
    Case,
    CaseEvent,
    CaseStatus,
    EventKind,
    Problem,
    ProblemStatus,
    ReasonCode,
)
from cxloop.demo.generator import DemoOptions, generate_demo

pytestmark = pytest.mark.django_db

END = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


@pytest.fixture
def demo_workspace(workspace: Workspace) -> Workspace:
    generate_demo(workspace, DemoOptions(customers=5000, interactions=50_000, seed=1, end=END))
    return workspace


def test_cases_follow_the_live_rules_and_the_call_back_script(demo_workspace: Workspace) -> None:
    cases = list(
        Case.objects.filter(workspace=demo_workspace, source="response").select_related(
            "response__survey", "employee__supervisor", "branch__manager", "employee__branch"
        )
    )
    assert len(cases) > 40
    for case in cases:
        response = case.response
        assert response is not None
        # Opened by the survey's alert rules, for the person routing would choose.
        assert services.evaluate(response, services.rules_for(response.survey)) is not None
        routed = services.route(case.employee, case.branch)
        if case.escalation_level == 0:
            assert case.assignee == routed
        else:
            assert routed is not None and case.assignee == routed.supervisor
            assert case.breached
        events = list(case.events.values_list("kind", flat=True))
        assert events[0] == EventKind.OPENED
        attempts = events.count(EventKind.ATTEMPT)
        if case.status == CaseStatus.RESOLVED:
            assert case.apologised is True and case.solved
            assert case.reasons.exists()
            assert events[-1] == EventKind.CLOSED
        elif case.status == CaseStatus.UNREACHABLE:
            assert attempts >= 3 and not case.reasons.exists()
        if case.closed_at is not None:
            assert case.breached == (case.closed_at > case.due_at or case.escalation_level > 0)
    statuses = {c.status for c in cases}
    assert {CaseStatus.RESOLVED, CaseStatus.UNREACHABLE, CaseStatus.OPEN} <= statuses
    assert any(c.breached for c in cases) and any(not c.breached for c in cases)
    open_cases = [c for c in cases if c.is_open]
    assert open_cases and all(c.closed_at is None for c in open_cases)
    assert CaseEvent.objects.filter(case__in=cases, kind=EventKind.ESCALATED).exists()


def test_the_register_holds_a_verified_fix(demo_workspace: Workspace) -> None:
    problems = {p.title: p for p in Problem.objects.filter(workspace=demo_workspace)}
    assert len(problems) == 4
    info = next(p for t, p in problems.items() if t.startswith("Consultants"))
    assert info.status == ProblemStatus.VERIFIED
    # The stored effect is what measuring again gives: nothing hard-coded.
    again = services.measure_effect(info, now=END)
    assert again["before"] == info.effect["before"]
    assert again["after"] == info.effect["after"]
    assert again["verdict"] == "verified" and again["drop_points"] > 15
    assert info.cases.exists()
    statuses = {p.status for p in problems.values()}
    assert {ProblemStatus.OPEN, ProblemStatus.IN_PROGRESS} <= statuses


def test_reason_codes_speak_three_languages(demo_workspace: Workspace) -> None:
    codes = ReasonCode.objects.filter(workspace=demo_workspace)
    assert codes.count() >= 10
    for code in codes:
        assert set(code.labels) == {"en", "ru", "ro"}
        assert all(label.strip() for label in code.labels.values())
