"""A CX manager in a real browser: creates a survey through the form, fixes a definition
error without losing what was typed, reads the funnel and asks why a customer was skipped.

Chromium (Debian's, through Playwright) against a live server, as in core's browser tests.
Screenshots go to ``tmp_path``; with ``CXLOOP_SCREENSHOTS=docs/screenshots`` they are written
there instead as surveys-*.png, the pictures of docs/surveys.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cxloop.accounts.models import Role, Workspace
from cxloop.core import clock
from cxloop.core.tests import conftest as browser_fixtures
from cxloop.customers.models import Account
from cxloop.organisation.models import Branch
from cxloop.surveys import funnel as funnels
from cxloop.surveys import rules as trigger
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Decision, Invitation, InvitationStatus, Survey
from cxloop.surveys.tests.factories import make_customer, make_interaction, make_org

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


def fill_history(workspace: Workspace, survey: Survey, branches: list[Branch]) -> None:
    """Three weeks of sent invitations with a plausible funnel, and the decisions around them."""
    rng = random.Random(7)  # the same pictures every time
    now = clock.now()
    customers = [make_customer(workspace, f"H{n:03}") for n in range(60)]
    invitations = []
    for n in range(420):
        channel = "sms" if rng.random() < 0.25 else "email"
        branch = branches[n % len(branches)]
        sent = now - dt.timedelta(hours=rng.randint(2, 24 * 21))
        bounced = channel == "email" and rng.random() < 0.04
        delivered = not bounced and rng.random() < 0.95
        opened = delivered and channel == "email" and rng.random() < 0.55
        answered = delivered and rng.random() < (0.28 if channel == "email" else 0.18)
        clicked = answered or (opened and rng.random() < 0.2)
        at = sent + dt.timedelta(minutes=30)
        invitations.append(
            Invitation(
                workspace=workspace,
                survey=survey,
                customer=customers[n % len(customers)],
                delivery_channel=channel,
                language="ro",
                branch=branch,
                status=InvitationStatus.SENT,
                scheduled_for=sent,
                expires_at=sent + dt.timedelta(days=14),
                sent_at=sent,
                delivered_at=at if delivered else None,
                opened_at=at if opened else None,
                clicked_at=at if clicked else None,
                answered_at=at if answered else None,
                bounced_at=at if bounced else None,
            )
        )
    Invitation.objects.bulk_create(invitations)
    reasons = {"quiet_period": 96, "sampled_out": 61, "no_consent": 23, "no_contact": 12,
               "branch_cap": 8, "survey_limit": 5, "unsubscribed": 3}  # fmt: skip
    Decision.objects.bulk_create(
        Decision(workspace=workspace, survey=survey, customer=customers[n % 60],
                 outcome="skipped", reason=reason, created_at=now - dt.timedelta(hours=n))
        for reason, count in reasons.items() for n in range(count)
    )  # fmt: skip


def test_a_cx_manager_creates_a_survey_and_reads_its_funnel(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    base = live_server.url
    out = shots(tmp_path)
    org = make_org(workspace)
    branches = [org["branch"]] + [
        Branch.objects.create(workspace=workspace, code=code, name=name, region=org["region"])
        for code, name in (("B02", "Chișinău Botanica"), ("B03", "Bălți"), ("B04", "Cahul"))
    ]
    login(page, make_user(workspace, Role.CX_MANAGER))

    page.click("header.top nav >> text=Surveys")
    assert page.url == f"{base}/surveys/"
    assert "No surveys yet" in page.inner_text("#surveys")

    # A new survey: the definition starts as the ready-made one.
    page.click("text=New survey")
    assert page.url == f"{base}/surveys/new"
    definition = json.loads(page.input_value("#id_definition"))
    assert definition["branding"]["company_name"] == "Acme Telecom"
    page.fill("#id_name", "After a store visit")
    page.fill("#id_code", "store-visit")
    page.select_option("#id_touchpoints", ["store-visit"])
    page.fill("#id_sampling_percent", "50")
    page.fill("#id_reminder_after_days", "3")
    page.select_option("#id_channel_order", "email")
    page.screenshot(path=str(out / "surveys-edit.png"), full_page=True)

    # A typo in a placeholder: listed with its path; nothing typed is lost.
    definition["intro"]["ro"] = "Vă mulțumim că ați vizitat {filiala}."
    page.fill("#id_definition", json.dumps(definition, ensure_ascii=False, indent=2))
    page.click("#survey-form button[type=submit]")
    assert page.url == f"{base}/surveys/new"
    errors = page.inner_text("#definition-errors")
    assert "intro" in errors and "unknown placeholder {filiala}" in errors
    assert page.input_value("#id_name") == "After a store visit"
    assert page.input_value("#id_sampling_percent") == "50"
    assert page.input_value("#id_reminder_after_days") == "3"
    assert "{filiala}" in page.input_value("#id_definition")
    assert not Survey.objects.filter(workspace=workspace).exists()
    page.screenshot(path=str(out / "surveys-edit-errors.png"), full_page=True)

    definition["intro"]["ro"] = "Vă mulțumim că ați vizitat {branch}."
    page.fill("#id_definition", json.dumps(definition, ensure_ascii=False, indent=2))
    page.click("#survey-form button[type=submit]")
    page.wait_for_url(f"{base}/surveys/store-visit/")
    assert "created" in page.inner_text(".messages")
    survey = Survey.objects.get(workspace=workspace, code="store-visit")
    assert survey.rules["sampling_rate"] == 0.5
    assert survey.rules["channels"] == ["email"]
    assert survey.definition["intro"]["ro"] == "Vă mulțumim că ați vizitat {branch}."
    summary = page.inner_text("#summary")
    assert "50% of matching interactions" in summary
    assert "after 3 days, to those who have not answered" in summary
    assert "E-mail only" in summary
    assert page.locator("#funnel svg").count() == 0  # nothing sent yet
    qr = page.locator("#links img.qr")
    assert qr.get_attribute("src") == f"/s/p/{survey.public_code}/qr.svg"
    assert page.locator("#previews a").count() == 3

    # Three weeks later: the funnel, overall, by channel and by branch, and the skips.
    fill_history(workspace, survey, branches)
    (expected,) = funnels.funnel(survey, since=clock.now() - dt.timedelta(days=30))
    page.reload()
    bars = page.locator("#funnel svg [aria-roledescription=bar]")
    assert bars.count() == 5
    first = bars.nth(0).get_attribute("aria-label") or ""
    assert f"{expected.sent} · 100%" in first
    overall = page.locator("#funnel-overall tr").filter(has_text="Answered").inner_text()
    assert str(expected.answered) in overall
    channels = page.locator("#funnel-channel tr[data-key]")
    assert channels.count() == 2
    assert page.locator("#funnel-branch tr[data-key]").count() == 4
    assert "Quiet period" in (page.text_content("#decisions svg") or "")
    page.screenshot(path=str(out / "surveys-detail.png"), full_page=True)

    # The list, with last month's figures.
    page.click("text=All surveys")
    row = page.locator("#surveys tr[data-code=store-visit]")
    assert row.locator("td.sent").inner_text() == str(expected.sent)
    assert row.locator("td.answered").inner_text() == str(expected.answered)
    page.screenshot(path=str(out / "surveys-list.png"), full_page=True)


def test_why_a_customer_was_not_surveyed_and_accounts_at_risk(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    from cxloop.surveys.services import save_survey

    base = live_server.url
    out = shots(tmp_path)
    org = make_org(workspace)
    save_survey(
        workspace, code="store-visit", name="After a store visit", kind="transactional",
        definition=default_definition("Acme Telecom"),
        rules={"touchpoints": ["store-visit"], "send_window": None}, via="cli",
    )  # fmt: skip
    account = Account.objects.create(workspace=workspace, external_id="ACC-7", name="Vinăria SRL")
    customer = make_customer(workspace, "CRM-1042", account=account, is_b2b=True)
    for n in (1, 2):
        make_interaction(workspace, customer, f"V{n}", touchpoint=org["touchpoint"])
        trigger.evaluate_new(workspace)
    Invitation.objects.filter(customer=customer).update(
        status=InvitationStatus.SENT,
        sent_at=clock.now() - dt.timedelta(days=40),
        expires_at=clock.now() - dt.timedelta(days=26),
    )
    for n in (3, 4):
        past = clock.now() - dt.timedelta(days=30 * n)
        Invitation.objects.create(
            workspace=workspace, survey=Survey.objects.get(code="store-visit"), customer=customer,
            delivery_channel="email", language="ro", status=InvitationStatus.SENT,
            scheduled_for=past, expires_at=past + dt.timedelta(days=14), sent_at=past,
        )  # fmt: skip
    assert funnels.flag_silent_accounts(workspace) == 1

    login(page, make_user(workspace, Role.ANALYST))
    page.goto(f"{base}/surveys/why")
    page.fill("#customer", "CRM-1042")
    page.click("#why-form button")
    rows = page.locator("#decisions tr[data-reason]")
    assert rows.count() == 2
    assert "Quiet period" in rows.nth(0).inner_text()
    assert "Matched the trigger" in rows.nth(1).inner_text()
    assert customer.email not in page.content()
    page.screenshot(path=str(out / "surveys-why.png"), full_page=True)

    page.fill("#customer", "NOBODY")
    page.click("#why-form button")
    assert "No customer “NOBODY” was found" in page.inner_text("#not-found")

    page.goto(f"{base}/surveys/at-risk")
    flagged = page.locator("#at-risk tr[data-account=ACC-7]")
    assert "Vinăria SRL" in flagged.inner_text()
    assert flagged.locator("td.unanswered").inner_text() == "3"
    flagged.locator("a", has_text="CRM-1042").click()
    assert page.url == f"{base}/surveys/why?customer=CRM-1042"
    page.goto(f"{base}/surveys/at-risk")
    page.screenshot(path=str(out / "surveys-at-risk.png"), full_page=True)


def test_a_relationship_wave_is_planned_then_created(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    from cxloop.surveys.models import Wave
    from cxloop.surveys.services import save_survey

    base = live_server.url
    out = shots(tmp_path)
    definition = default_definition("Acme Telecom")
    definition["questions"].insert(1, {
        "code": "others", "type": "competitors", "competitors": ["Orange", "Moldcell"],
        "text": {"en": "Which other operators do you use?", "ru": "Какими ещё операторами вы "
                 "пользуетесь?", "ro": "Ce alți operatori folosiți?"},
    })  # fmt: skip
    survey = save_survey(
        workspace, code="nps-2026", name="Relationship NPS 2026", kind="relationship",
        definition=definition, rules={"send_window": None}, via="cli",
    )  # fmt: skip
    segments = ["retail"] * 1500 + ["business"] * 400 + [""] * 100
    for n, segment in enumerate(segments):
        make_customer(workspace, f"R{n:04}", segment=segment)
    login(page, make_user(workspace, Role.CX_MANAGER))

    page.goto(f"{base}/surveys/{survey.code}/")
    assert "No waves yet" in page.inner_text("#waves")
    competitors = page.inner_text("#competitors")
    assert "Orange" in competitors and "Moldcell" in competitors
    page.click("#waves a:has-text('New wave')")
    page.fill("#id_margin", "7")
    page.select_option("#id_confidence", "0.95")
    page.fill("#id_response_rate", "40")
    page.select_option("#id_strata", "segment")
    page.click("#plan-form button")
    assert page.inner_text("#plan-population") == "2\u202f000"
    # ±7 points at 95%: 1.96² / 0.07² = 784 answers, 564 after the correction for 2 000
    # customers; at 40% answering, 1 410 invitations, shared out in proportion to the segments.
    assert page.inner_text("#plan-target") == "564"
    sample = int(page.inner_text("#plan-sample").replace("\u202f", ""))
    assert sample == 1410
    allocation = page.locator("#allocation tr").filter(has_text="retail").inner_text()
    assert "1\u202f500" in allocation and "1\u202f058" in allocation  # 1 410 * 1 500 / 2 000
    assert not Wave.objects.exists()
    page.screenshot(path=str(out / "surveys-wave.png"), full_page=True)

    page.click("#create-wave button")
    page.wait_for_url(f"{base}/surveys/{survey.code}/")
    assert "Wave created" in page.inner_text(".messages")
    wave = Wave.objects.get(survey=survey)
    assert (wave.margin, wave.confidence, wave.response_rate) == (7, 0.95, 0.4)
    assert wave.sample_size == sample == Invitation.objects.filter(wave=wave).count()
    assert "segment" in page.inner_text("#waves")
