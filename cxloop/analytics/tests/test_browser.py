"""A CX manager in a real browser reads the NPS dashboard: the company's NPS, the trend, NPS by
branch with a weak branch flagged, and the weekday-by-hour heat map, all drawn as SVG by the
server; then switches the breakdown to channels and the trend to months.

Chromium (Debian's, through Playwright) against a live server, as in core's browser tests.
Screenshots go to ``tmp_path``; with ``CXLOOP_SCREENSHOTS=docs/screenshots`` they are written
there instead as analytics-dashboard.png and analytics-heatmap.png, the pictures of
docs/dashboards.md.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics import rollups
from cxloop.core import clock
from cxloop.core.tests import conftest as browser_fixtures
from cxloop.organisation.models import Branch, Channel, Region
from cxloop.surveys.models import Invitation, Response, ResponseSource
from cxloop.surveys.tests.factories import make_survey

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# The browser fixtures live in core's conftest; this module uses them under the same names.
browser = browser_fixtures.browser
page = browser_fixtures.page
login = browser_fixtures.login

Login = Callable[..., None]

BRANCHES = [
    # code, name, region, share of promoters, share of detractors
    ("B01", "Chișinău Centru", "R1", 0.55, 0.15),
    ("B02", "Chișinău Botanica", "R1", 0.50, 0.18),
    ("B03", "Bălți", "R2", 0.30, 0.42),  # the weak one
    ("B04", "Cahul", "R3", 0.58, 0.12),
    ("B05", "Orhei", "R2", 0.52, 0.17),
    ("B06", "Ungheni", "R3", 0.48, 0.20),
]


def shots(tmp_path: Path) -> Path:
    folder = os.environ.get("CXLOOP_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fill(workspace: Workspace) -> int:
    """Half a year of answers in opening hours, with a weak branch, weak Saturday evenings and
    a better last quarter, and the invitations they answered (response rates near 30 %)."""
    rng = random.Random(11)  # the same pictures every time
    regions = {
        code: Region.objects.create(workspace=workspace, code=code, name=name)
        for code, name in (("R1", "Centre"), ("R2", "North"), ("R3", "South"))
    }
    branches = {
        code: Branch.objects.create(workspace=workspace, code=code, name=name, region=regions[r])
        for code, name, r, _p, _d in BRANCHES
    }
    channels = [
        Channel.objects.create(workspace=workspace, code=code, name=name)
        for code, name in (("store", "Store"), ("call", "Call centre"), ("web", "Web"))
    ]
    survey = make_survey(workspace)
    now = clock.now()
    responses, invitations = [], []
    for n in range(5600):
        code, _name, _region, promote, detract = BRANCHES[n % len(BRANCHES)]
        days_ago = rng.randint(0, 179)
        if days_ago >= 90:
            promote, detract = promote - 0.07, detract + 0.05
        day = now - dt.timedelta(days=days_ago)
        hour = rng.choice([9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
        at = day.replace(hour=hour, minute=rng.randint(0, 59), second=0, microsecond=0)
        if at > now:
            at -= dt.timedelta(days=1)
        if at.weekday() == 5 and hour >= 17:
            promote, detract = promote - 0.3, detract + 0.35
        draw = rng.random()
        score = (
            rng.choice([9, 10]) if draw < promote
            else rng.randint(0, 6) if draw < promote + detract
            else rng.choice([7, 8])
        )  # fmt: skip
        place = {"branch": branches[code], "channel": channels[n % 3]}
        responses.append(
            Response(workspace=workspace, survey=survey, external_id=f"R{n}", score=score,
                     answered_at=at, source=ResponseSource.WEB, **place)
        )  # fmt: skip
        for sent in range(rng.choice([2, 3, 3, 4, 4, 5]) if code != "B04" else 2):
            invitations.append(
                Invitation(workspace=workspace, survey=survey, delivery_channel="email",
                           language="ro", status="sent", scheduled_for=at, sent_at=at,
                           expires_at=at + dt.timedelta(days=14),
                           answered_at=at if sent == 0 else None, **place)
            )  # fmt: skip
    Response.objects.bulk_create(responses)
    rollups.mark_responses(responses)
    Invitation.objects.bulk_create(invitations)
    since = dt.datetime.combine(now.date() - dt.timedelta(days=89), dt.time(), tzinfo=dt.UTC)
    return sum(1 for response in responses if response.answered_at >= since)


def outside_texts(page: Page, chart: str) -> list[str]:
    """The texts of the chart's SVG that Chromium draws (partly) outside the SVG's box."""
    found: list[str] = page.evaluate(
        """(selector) => {
            const svg = document.querySelector(selector + " svg");
            const box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll("text")].filter((text) => {
                const r = text.getBoundingClientRect();
                return r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5
                    || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5);
            }).map((text) => text.textContent);
        }""",
        chart,
    )
    return found


def test_a_cx_manager_reads_the_nps_dashboard(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    base = live_server.url
    out = shots(tmp_path)
    answered_in_period = fill(workspace)
    login(page, make_user(workspace, Role.CX_MANAGER))

    page.click("header.top nav >> text=Analytics")
    assert page.url == f"{base}/analytics/"
    assert page.inner_text("#company-n .value") == f"{answered_in_period:,}".replace(",", "\u202f")
    for chart in ("#trend-chart", "#groups-chart", "#heatmap-chart"):
        assert page.locator(f"{chart} svg").count() == 1, chart
    weak = page.locator('#groups-table tr[data-code="B03"]')
    assert "below average" in weak.inner_text()
    assert page.locator("#groups-table tr.below").count() == 1
    # The response rate sits beside the score: Cahul sent two invitations per answer.
    assert page.inner_text('#groups-table tr[data-code="B04"] td.rate') == "50.0%"
    assert "significant" in page.inner_text("#change")
    # The server measured the charts' text; the browser draws it. Every label must lie
    # inside its chart (a wider font than the one measured cut "Chișinău Botanica" off).
    for chart in ("#trend-chart", "#groups-chart", "#heatmap-chart"):
        assert outside_texts(page, chart) == [], chart
    page.screenshot(path=str(out / "analytics-dashboard.png"), full_page=True)
    page.locator("#heatmap").screenshot(path=str(out / "analytics-heatmap.png"))

    page.select_option("#id_by", "channel")
    page.select_option("#id_every", "month")
    page.click("#filters button")
    page.wait_for_url("**/analytics/?**")
    assert page.locator("#groups-table tr[data-code]").count() == 3
    assert page.locator("#groups-chart svg").count() == 1
    assert page.inner_text("#groups h2") == "NPS by channel"

    with page.expect_download() as download:
        page.click('#groups a[data-format="xlsx"]')
    assert download.value.suggested_filename.endswith(".xlsx")


def test_the_pain_map_ranks_the_reasons_detractors_cite(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    from cxloop.cases.models import ReasonCode
    from cxloop.customers.models import Customer

    out = shots(tmp_path)
    survey = make_survey(workspace)
    ReasonCode.objects.create(workspace=workspace, code="waiting", labels={"en": "Waiting time"})
    rng = random.Random(5)
    now = clock.now()
    # A base of 20,000 customers, 300 of whom answered: the pain map scales each reason's
    # share of respondents to the base.
    Customer.objects.bulk_create(
        [Customer(workspace=workspace, external_id=f"C{n}") for n in range(20_000)],
        batch_size=2000,
    )
    customers = list(Customer.objects.filter(workspace=workspace).order_by("pk")[:300])
    # 300 answers over 60 days: detractors tick waiting (most), price or staff.
    responses = []
    for n, customer in enumerate(customers):
        score = rng.choice([0, 2, 4, 5, 6, 6, 7, 8, 9, 9, 10, 10])
        reasons = []
        if score <= 6:
            reasons = [rng.choices(["waiting", "price", "staff"], [6, 3, 1])[0]]
        responses.append(
            Response(workspace=workspace, survey=survey, external_id=f"P{n}", score=score,
                     customer=customer, answers={"reasons": reasons} if reasons else {},
                     answered_at=now - dt.timedelta(days=rng.randint(0, 59), hours=2),
                     source=ResponseSource.WEB)
        )  # fmt: skip
    Response.objects.bulk_create(responses)
    rollups.mark_responses(responses)
    citing_waiting = sum(1 for r in responses if r.answers.get("reasons") == ["waiting"])

    login(page, make_user(workspace, Role.CX_MANAGER))
    page.click("header.top nav >> text=Analytics")
    page.click("#analytics-tabs >> text=Pain map")
    assert page.locator("#pareto-chart svg").count() == 1
    assert outside_texts(page, "#pareto-chart") == []
    rows = page.locator("#reasons-table tr[data-code]")
    # Ranked by the share of detractors citing them: waiting first, with its count.
    assert rows.first.get_attribute("data-code") == "waiting"
    assert str(citing_waiting) in rows.first.inner_text()
    assert "Waiting time" in rows.first.inner_text()  # the reason code's label
    # 300 respondents of 20,000 customers: a reason cited by k of them affects about
    # k / 300 * 20,000 customers, with a Wilson interval around it.
    assert page.inner_text("#customers .value") == "20\u202f000"
    estimate = f"{round(citing_waiting / 300 * 20_000):,}".replace(",", "\u202f")
    affected = rows.first.locator("td.affected").inner_text()
    assert affected.startswith(f"{estimate} "), affected
    page.screenshot(path=str(out / "analytics-pain.png"), full_page=True)
