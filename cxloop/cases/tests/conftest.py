"""Fixtures for the closed loop's tests (views, API, browser): an organisation with people in
it, an NPS survey, reason codes, and detractors whose cases are open.

The organisation (``org``), in ``workspace``::

    region R1 "Centre"
    └── branch B01 "Chișinău Centru", managed by MGR (Mihai, no login)
        └── team T1 "Front desk"
            ├── SUP  Sofia, supervisor, logs in as ``org.supervisor_user`` (role supervisor)
            └── AGT  Andrei, front-line, reports to SUP, logs in as ``org.agent_user`` (employee)

so a case about Andrei is routed to Sofia (``services.route``). ``build_org`` makes the same
shape in any workspace (pass ``prefix`` for a second one in the same workspace: another team
whose supervisor must not see the first team's cases).

``make_case(score=3, comment=..., ...)`` saves a detractor's response the way the respondent's
page would (with a customer, the employee involved, the call-back consent and number) and
opens its case through ``services.open_for_response``; it returns the ``Case``. Usernames are
fixed (``sofia``, ``andrei``, with the prefix before them) so that ``make_user(workspace, role)``
of cxloop/conftest.py stays free for the other roles.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cxloop.accounts.models import Role, Workspace
from cxloop.cases import services
from cxloop.cases.models import Case, ReasonCode
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.organisation.models import Branch, Channel, Employee, Region, Team, Touchpoint
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

MakeUser = Callable[..., Any]


@dataclass
class Org:
    workspace: Workspace
    region: Region
    branch: Branch
    channel: Channel
    touchpoint: Touchpoint
    team: Team
    manager: Employee  # the branch manager (no login)
    supervisor: Employee
    agent: Employee
    supervisor_user: Any  # role supervisor, linked to ``supervisor``
    agent_user: Any  # role employee, linked to ``agent``


def build_org(workspace: Workspace, make_user: MakeUser, prefix: str = "") -> Org:
    """The organisation above in ``workspace``. Called again for the same workspace with a
    ``prefix`` it adds a second team to the same branch (its codes and usernames start with
    the prefix); use a prefix too for another workspace, as usernames are global."""
    first = Branch.objects.filter(workspace=workspace, code="B01").select_related("region").first()
    base: dict[str, Any]
    if first is not None:
        base = {
            "region": first.region,
            "branch": first,
            "channel": Channel.objects.get(workspace=workspace, code="store"),
            "touchpoint": Touchpoint.objects.get(workspace=workspace, code="store-visit"),
        }
    else:
        base = make_org(workspace)
    branch = base["branch"]
    code = f"{prefix.upper()}" if prefix else ""
    manager = Employee.objects.filter(workspace=workspace, code="MGR").first()
    if manager is None:
        manager = Employee.objects.create(
            workspace=workspace, code="MGR", name="Mihai Rusu", branch=branch, title="Manager"
        )
        Branch.objects.filter(pk=branch.pk).update(manager=manager)
        branch.manager = manager
    team = Team.objects.create(
        workspace=workspace, code=f"{code}T1", name=f"{prefix} Front desk".strip(), branch=branch
    )
    supervisor_user = make_user(workspace, Role.SUPERVISOR, username=f"{prefix}sofia")
    supervisor = Employee.objects.create(
        workspace=workspace,
        code=f"{code}SUP",
        name=f"Sofia {prefix or 'Ceban'}",
        team=team,
        branch=branch,
        supervisor=manager,
        title="Supervisor",
        user=supervisor_user,
    )
    agent_user = make_user(workspace, Role.EMPLOYEE, username=f"{prefix}andrei")
    agent = Employee.objects.create(
        workspace=workspace,
        code=f"{code}AGT",
        name=f"Andrei {prefix or 'Lungu'}",
        team=team,
        branch=branch,
        supervisor=supervisor,
        title="Consultant",
        user=agent_user,
    )
    return Org(
        workspace=workspace,
        region=base["region"],
        branch=branch,
        channel=base["channel"],
        touchpoint=base["touchpoint"],
        team=team,
        manager=manager,
        supervisor=supervisor,
        agent=agent,
        supervisor_user=supervisor_user,
        agent_user=agent_user,
    )


@pytest.fixture
def org(workspace: Workspace, make_user: MakeUser) -> Org:
    return build_org(workspace, make_user)


@pytest.fixture
def nps_survey(workspace: Workspace, org: Org) -> Survey:
    """The ready-made NPS survey (score, reasons staff/waiting/price/quality/other, comment,
    may we call?) with no alert rules of its own: every detractor (0-6) opens a case."""
    return make_survey(workspace, "after-visit")


REASONS = {
    "waiting": {"en": "Waiting time", "ru": "Время ожидания", "ro": "Timpul de așteptare"},
    "staff": {"en": "Staff attitude", "ru": "Отношение персонала", "ro": "Atitudinea personalului"},
    "price": {"en": "Price", "ru": "Цена", "ro": "Prețul"},
}


@pytest.fixture
def reason_codes(workspace: Workspace) -> dict[str, ReasonCode]:
    """Three active reason codes, labelled in en/ru/ro; "waiting" and "price" are also option
    codes of the ready-made survey's reasons question."""
    return {
        code: ReasonCode.objects.create(
            workspace=workspace, code=code, labels=labels, category="Service", position=n
        )
        for n, (code, labels) in enumerate(REASONS.items())
    }


_numbers = itertools.count(1)


def make_response(
    survey: Survey,
    *,
    score: int = 3,
    comment: str = "Waited forty minutes and nobody apologised.",
    customer: Customer | None = None,
    employee: Employee | None = None,
    branch: Branch | None = None,
    answers: dict[str, Any] | None = None,
    may_contact: bool | None = True,
    contact_phone: str = "+37369111222",
    answered_at: dt.datetime | None = None,
    **fields: Any,
) -> Response:
    """A response saved as the respondent's page saves it (no case is opened by this)."""
    number = next(_numbers)
    return Response.objects.create(
        workspace=survey.workspace,
        survey=survey,
        external_id=f"R{number:05}",
        customer=customer,
        score=score,
        comment=comment,
        answers=answers if answers is not None else {"reasons": ["waiting"]},
        language="en",
        answered_at=answered_at or clock.now(),
        source=ResponseSource.WEB,
        may_contact=may_contact,
        contact_phone=contact_phone if may_contact else "",
        employee=employee,
        branch=branch or (employee.branch if employee is not None else None),
        **fields,
    )


MakeCase = Callable[..., Case]


@pytest.fixture
def make_case(workspace: Workspace, org: Org, nps_survey: Survey) -> MakeCase:
    """``make_case(**response_fields)`` → the open case of a new detractor's response.

    Defaults: score 3 about ``org.agent`` (so routed to ``org.supervisor``), a new customer
    "CUST-n" with the phone +37369123456 and the name "Ion Popescu", consent to be called on
    +37369111222. Pass ``customer=`` to reuse one, ``employee=None`` for a case with nobody
    named (the branch manager's), ``survey=`` for another survey, ``now=`` for when it opens.
    """

    def make(
        *,
        survey: Survey | None = None,
        now: dt.datetime | None = None,
        employee: Employee | str | None = "agent",
        customer: Customer | None = None,
        **fields: Any,
    ) -> Case:
        who = org.agent if employee == "agent" else employee
        assert who is None or isinstance(who, Employee)
        if customer is None:
            customer = make_customer(
                (survey or nps_survey).workspace, f"CUST-{next(_numbers)}", name="Ion Popescu"
            )
        response = make_response(
            survey or nps_survey,
            customer=customer,
            employee=who,
            branch=fields.pop("branch", None) or org.branch,
            answered_at=fields.pop("answered_at", None) or now,
            **fields,
        )
        case = services.open_for_response(response.pk, now=now)
        assert case is not None, "the response matched no alert rule"
        return case

    return make
