# ruff: noqa: RUF001 - Russian phrases are written in Cyrillic on purpose
"""A supervisor in a real browser: opens the newest case from the inbox, follows the call-back
script, closes the case as resolved and finds it among the closed ones.

Chromium (Debian's, through Playwright) against a live server, as in core's browser tests.
Screenshots go to ``tmp_path``; with ``CXLOOP_SCREENSHOTS=docs/screenshots`` they are written
there instead as cases-inbox.png and case-page.png, the pictures of docs/closed-loop.md.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.cases import services
from cxloop.cases.models import Case, CaseStatus, ReasonCode
from cxloop.core import clock
from cxloop.core.tests import conftest as browser_fixtures
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Employee

from .conftest import MakeCase, Org

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# The browser fixtures live in core's conftest; this module uses them under the same names.
browser = browser_fixtures.browser
page = browser_fixtures.page
login = browser_fixtures.login

Login = Callable[..., None]


def shots(tmp_path: Path) -> Path:
    folder = os.environ.get("CXLOOP_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


COMMENTS = [
    (2, "Waited forty minutes at the counter and nobody apologised."),
    (4, "The new tariff costs more than promised in the shop."),
    (6, "Nice staff, but the card reader was broken again."),
    (0, "I will go to a lawyer if the double charge is not refunded."),
    (5, "Had to come back twice for the same SIM swap."),
]


def test_a_supervisor_calls_back_the_newest_case_and_closes_it(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    org: Org,
    make_case: MakeCase,
    reason_codes: dict[str, ReasonCode],
    login: Login,
    tmp_path: Path,
) -> None:
    base = live_server.url
    out = shots(tmp_path)
    now = clock.now()
    colleague = Employee.objects.create(
        workspace=workspace, code="AGT2", name="Elena Rotaru", team=org.team,
        branch=org.branch, supervisor=org.supervisor, title="Consultant",
    )  # fmt: skip
    cases = []
    for n, (score, comment) in enumerate(COMMENTS):
        opened = now - dt.timedelta(hours=len(COMMENTS) - n)
        case = make_case(
            score=score,
            comment=comment,
            employee=org.agent if n % 2 else colleague,
            now=opened,
        )
        # Deadlines a morning's work apart; the oldest is overdue.
        Case.objects.filter(pk=case.pk).update(
            due_at=now + dt.timedelta(minutes=-35 + 75 * n),
            priority="urgent" if score == 0 else "normal",
            breached=n == 0,
        )
        cases.append(case)
    newest = cases[-1]
    assert newest.customer is not None
    for n in range(2):
        Interaction.objects.create(
            workspace=workspace, source="crm", external_id=f"I{n}", customer=newest.customer,
            type="visit", touchpoint=org.touchpoint, branch=org.branch,
            occurred_at=now - dt.timedelta(days=3 * n + 1),
        )  # fmt: skip

    login(page, org.supervisor_user)
    page.click("header.top nav >> text=Cases")
    assert page.url == f"{base}/cases/"
    rows = page.locator("#cases tr[data-case]")
    assert rows.count() == 5
    assert rows.nth(0).get_attribute("data-case") == str(cases[0].pk)
    assert "overdue by" in rows.nth(0).inner_text()
    page.screenshot(path=str(out / "cases-inbox.png"), full_page=True)

    # The newest case: the SIM swap.
    page.locator(f"#cases tr[data-case='{newest.pk}'] td.comment a").click()
    page.wait_for_url(f"{base}/cases/{newest.pk}")
    assert "Had to come back twice" in page.inner_text("#story")
    assert page.inner_text("#phone") == "+37369111222"

    page.fill("#attempt-form textarea", "Customer picked up at once")
    page.select_option("#attempt-form select", "reached")
    page.click("#attempt-form button")
    assert "Call attempt logged." in page.inner_text(".messages")
    assert page.inner_text("#attempts") == "1 of 3"

    form = page.locator("#callback-form")
    form.get_by_label("Yes").first.check()
    form.get_by_label("Partly").check()
    form.get_by_label("Waiting time").check()
    form.get_by_label("What did the customer expect?").fill("A working SIM the first time")
    form.get_by_label("Notes").fill("Apologised; the SIM is activated now; a credit of 50 lei.")
    page.screenshot(path=str(out / "case-page.png"), full_page=True)
    form.locator("button").click()
    assert "Call-back recorded." in page.inner_text(".messages")
    assert "Waiting time" in page.inner_text("#callback-result")

    page.locator("#close-form").get_by_label("Resolved").check()
    page.click("#close-form button")
    assert "Case closed." in page.inner_text(".messages")
    assert page.inner_text("#status") == "Resolved"
    history = page.inner_text("#history")
    assert "Call-back recorded" in history and "Closed: Resolved" in history

    page.click("text=← Cases")
    page.click("nav.tabs >> text=Closed")
    closed = page.locator("#cases tr[data-case]")
    assert closed.count() == 1
    assert closed.nth(0).get_attribute("data-case") == str(newest.pk)
    assert page.locator("#cases tr[data-case]").nth(0).locator(".tag.good").inner_text() == (
        "Resolved"
    )
    saved = Case.objects.get(pk=newest.pk)
    assert saved.status == CaseStatus.RESOLVED
    assert [r.code for r in saved.reasons.all()] == ["waiting"]
    assert services.attempts(saved) == 1


def test_a_cx_manager_measures_a_fix_and_keeps_the_settings(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    org: Org,
    make_case: MakeCase,
    make_user: Any,
    reason_codes: dict[str, ReasonCode],
    login: Login,
    tmp_path: Path,
) -> None:
    from cxloop.accounts.models import Role
    from cxloop.cases.models import AlertRule, Problem

    from .conftest import make_response

    base = live_server.url
    out = shots(tmp_path)
    survey = make_case().survey
    assert survey is not None
    fixed_on = clock.now().date() - dt.timedelta(days=14)
    fixed = dt.datetime.combine(fixed_on, dt.time(12), tzinfo=dt.UTC)
    said = [
        "Waited forty minutes at the counter.", "The queue did not move on Saturday.",
        "Price went up without a word.", "Nobody could explain my bill.", "",
        "The consultant was polite but slow.", "Two counters, one open.",
    ]  # fmt: skip
    for n in range(60):
        # Before the fix 45% of detractors ticked "waiting"; after it 15%.
        make_response(
            survey, score=n % 7, employee=org.agent, comment=said[n % len(said)],
            answers={"reasons": ["waiting" if n % 20 < 9 else "price"]},
            answered_at=fixed - dt.timedelta(days=1 + n % 28, hours=n),
        )  # fmt: skip
        make_response(
            survey, score=n % 7, employee=org.agent, comment=said[(n + 3) % len(said)],
            answers={"reasons": ["waiting" if n % 20 < 3 else "staff"]},
            answered_at=fixed + dt.timedelta(days=1 + n % 12, hours=n),
        )  # fmt: skip
    for n, (score, comment) in enumerate(
        [(10, "Andrei sorted out my contract in five minutes."), (9, "Quick and friendly."),
         (10, "Best service in town."), (8, "Fine, as usual."), (9, "He explained every line.")]
    ):  # fmt: skip
        make_response(
            survey, score=score, comment=comment, employee=org.agent, answers={},
            answered_at=clock.now() - dt.timedelta(hours=2 + 5 * n),
        )  # fmt: skip
    problem = services.create_problem(
        workspace.pk, title="Queues at the counter on Saturday mornings",
        reasons=[reason_codes["waiting"]], function="Retail operations", owner=org.manager,
        deadline=fixed_on + dt.timedelta(days=30), authority="Change the branch rota.",
    )  # fmt: skip
    services.update_problem(problem, {"status": "fixed", "fixed_on": fixed_on})
    login(page, make_user(workspace, Role.CX_MANAGER))

    page.click("header.top nav >> text=Problems")
    assert page.url == f"{base}/problems/"
    assert "Queues at the counter" in page.inner_text("#problems")
    page.click("#problems a")
    page.click("#verify-form button")
    assert "Verified" in page.inner_text("#verdict")
    assert page.locator("#effect-chart svg").count() == 1
    assert Problem.objects.get().status == "verified"
    page.screenshot(path=str(out / "cases-problem.png"), full_page=True)

    page.goto(f"{base}/cases/settings")
    page.fill("#reason-form #id_code", "billing")
    page.fill("#reason-form #id_label_en", "Billing error")
    page.fill("#reason-form #id_label_ro", "Eroare de facturare")
    page.click("#reason-form button")
    assert "Billing error" in page.inner_text("#reason-table")
    page.select_option("#rule-form #id_survey", str(survey.pk))
    page.fill("#rule-form #id_name", "legal threat")
    page.fill("#rule-form #id_phrases", "lawyer\nадвокат\navocat")
    page.select_option("#rule-form #id_priority", "urgent")
    page.click("#rule-form button")
    assert "legal threat" in page.inner_text("#rule-table")
    assert AlertRule.objects.get().phrases == ["lawyer", "адвокат", "avocat"]
    page.screenshot(path=str(out / "cases-settings.png"), full_page=True)

    page.goto(f"{base}/cases/employees/{org.agent.pk}")
    page.fill("#coaching-form textarea", "Saturday mornings: open the second counter at 9.")
    page.click("#coaching-form button")
    assert "Coaching note added." in page.inner_text(".messages")

    # The employee reads what customers said about him, and the coaching, never who said it.
    page.click("header.top button:has-text('Log out')")
    login(page, org.agent_user)
    page.click("header.top nav >> text=My feedback")
    assert page.url == f"{base}/cases/employees/{org.agent.pk}"
    assert "open the second counter" in page.inner_text("#coaching")
    assert "CUST-" not in page.content() and "+373" not in page.content()
    page.screenshot(path=str(out / "cases-employee.png"))
