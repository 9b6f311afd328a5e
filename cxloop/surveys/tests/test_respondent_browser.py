"""The respondent's pages in a real phone-sized Chromium with JavaScript switched off.

Debian's Chromium through Playwright (see cxloop/core/tests/conftest.py) against a live server.
With ``CXLOOP_SCREENSHOTS=docs/screenshots`` the phone pages are saved there as
``survey-*.png`` (the pictures in docs/respondent.md); otherwise into the test's temporary
folder, so every run still draws them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.cache import cache
from django.utils import translation

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.core.tests.conftest import browser  # noqa: F401 - the module-scoped Chromium
from cxloop.customers.models import Customer
from cxloop.surveys import respondent
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import DeliveryChannel, Invitation, InvitationStatus, Response, Survey
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
COMMENT = "Coada — очередь prea lungă, însă personalul a fost amabil. Спасибо!"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    wanted = os.environ.get("CXLOOP_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def phone(browser: Browser, transactional_db: Any) -> Iterator[Page]:  # noqa: F811
    """A phone: small touch screen, JavaScript off, Romanian browser, no cookies."""
    cache.clear()
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,
        locale="ro-RO",
        device_scale_factor=1,
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    assert context.cookies() == []  # the survey never leaves a cookie behind
    context.close()


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    definition = default_definition("Acme Telecom")
    definition["review"] = {
        "url": "https://reviews.example.com/acme",
        "text": {
            "en": "Would you share your experience on our review page?",
            "ru": "Поделитесь впечатлениями на нашей странице отзывов?",
            "ro": "Vreți să vă împărtășiți experiența pe pagina noastră de recenzii?",
        },
    }
    return make_survey(workspace, definition=definition)


@pytest.fixture
def customer(workspace: Workspace) -> Customer:
    return make_customer(workspace, consent={"email": True})


@pytest.fixture
def org(workspace: Workspace) -> dict[str, Any]:
    return make_org(workspace)


def invite(survey: Survey, customer: Customer | None, branch: Any = None) -> Invitation:
    now = clock.now()
    return Invitation.objects.create(
        workspace=survey.workspace,
        survey=survey,
        customer=customer,
        branch=branch,
        status=InvitationStatus.SENT,
        scheduled_for=now,
        sent_at=now,
        expires_at=now + dt.timedelta(days=14),
        delivery_channel=DeliveryChannel.EMAIL,
        language="ro",
    )


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width}px wide on a {viewport}px screen"


def rgb(value: str) -> str:
    r, g, b = (int(n) for n in re.findall(r"\d+", value)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def test_a_detractor_answers_on_a_phone_without_javascript(
    phone: Page, live_server: Any, survey: Survey, customer: Customer, org: Any, shots: Path
) -> None:
    invitation = invite(survey, customer, org["branch"])
    base = f"{live_server.url}/s/{invitation.token}"

    # The one-click link of the e-mail: the score is kept before the page even shows.
    phone.goto(f"{base}?score=3")
    assert phone.url == base
    assert Response.objects.get(invitation=invitation).score == 3
    assert phone.locator("html").get_attribute("lang") == "ro"
    assert phone.locator("#score-3").is_checked()
    assert "Vă putem suna în legătură cu aceasta?" in phone.inner_text("#q-contact legend")
    no_sideways_scroll(phone)
    phone.screenshot(path=str(shots / "survey-followups-ro.png"), full_page=True)

    phone.locator("label[for=q-reasons-waiting]").tap()
    phone.locator("label[for=q-reasons-staff]").tap()
    phone.fill("#q-comment", COMMENT)
    phone.locator("label[for=q-contact-yes]").tap()
    assert phone.input_value("#q-contact-phone") == "+373 691 23 456"  # to confirm
    phone.fill("#q-contact-phone", "+373 69 123 457")
    phone.locator("#submit").tap()
    phone.wait_for_url(f"{base}/thanks")

    assert "Vă mulțumim!" in phone.inner_text("#thank-you")
    review = phone.locator("#review a")
    assert review.get_attribute("href") == "https://reviews.example.com/acme"
    phone.screenshot(path=str(shots / "survey-thanks-ro.png"), full_page=True)
    stored = Response.objects.get(invitation=invitation)
    assert stored.score == 3
    assert stored.answers["reasons"] == ["staff", "waiting"]
    assert stored.comment == COMMENT
    assert (stored.may_contact, stored.contact_phone) == (True, "+37369123457")

    # Back to change: everything is still there; 3 becomes 7 and the call-back goes away.
    phone.click("#change-answers")
    assert phone.input_value("#q-comment") == COMMENT
    assert phone.locator("#q-reasons-waiting").is_checked()
    phone.locator("label[for=score-7]").tap()
    phone.locator("#submit").tap()
    phone.wait_for_url(f"{base}/thanks")
    stored.refresh_from_db()
    assert stored.score == 7 and stored.comment == COMMENT


def test_the_score_page_in_romanian_and_russian_fits_a_small_phone(
    phone: Page, live_server: Any, survey: Survey, customer: Customer, org: Any, shots: Path
) -> None:
    invitation = invite(survey, customer, org["branch"])
    base = f"{live_server.url}/s/{invitation.token}"
    phone.goto(base)
    assert "Părerea dumneavoastră contează" in phone.inner_text("h1")
    # Every score is a target of at least 44 by 44 CSS pixels.
    for tile in phone.locator(".tile > span").all():
        box = tile.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44, box
    no_sideways_scroll(phone)
    phone.screenshot(path=str(shots / "survey-score-ro.png"), full_page=True)

    phone.click("nav.languages >> text=Русский")
    assert phone.locator("html").get_attribute("lang") == "ru"
    assert "Нам важно ваше мнение" in phone.inner_text("h1")
    phone.screenshot(path=str(shots / "survey-score-ru.png"), full_page=True)
    invitation.refresh_from_db()
    assert invitation.language == "ru"

    phone.locator("label[for=score-10]").tap()
    with phone.expect_navigation():
        phone.locator("#submit").tap()
    assert phone.url == base  # the follow-ups for a 10
    assert "Что больше всего повлияло на вашу оценку?" in phone.inner_text("#q-reasons legend")
    assert phone.locator("#q-contact").count() == 0  # a promoter is not asked for a call
    phone.screenshot(path=str(shots / "survey-followups-ru.png"), full_page=True)
    phone.locator("#submit").tap()
    phone.wait_for_url(f"{base}/thanks")
    assert "Спасибо!" in phone.inner_text("#thank-you")
    assert phone.locator("#review a").count() == 1  # a promoter is invited too, like everyone
    phone.screenshot(path=str(shots / "survey-thanks-ru.png"), full_page=True)

    # The narrowest phones WCAG asks for (320 CSS pixels): nothing scrolls sideways.
    phone.set_viewport_size({"width": 320, "height": 640})
    phone.goto(base)
    no_sideways_scroll(phone)
    phone.set_viewport_size(PHONE)


def test_the_score_question_works_with_the_keyboard_alone(
    phone: Page, live_server: Any, survey: Survey, customer: Customer
) -> None:
    invitation = invite(survey, customer)
    base = f"{live_server.url}/s/{invitation.token}"
    phone.goto(base)
    for _ in range(12):
        phone.keyboard.press("Tab")
        if phone.evaluate("document.activeElement.name") == "score":
            break
    assert phone.evaluate("document.activeElement.id") == "score-0"
    # The focus is visible on the tile drawn for the radio button.
    outline = phone.evaluate(
        "getComputedStyle(document.activeElement.nextElementSibling).outlineStyle"
    )
    assert outline == "solid"
    for _ in range(9):
        phone.keyboard.press("ArrowRight")
    phone.keyboard.press("Space")
    assert phone.locator("#score-9").is_checked()
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.id") == "submit"
    with phone.expect_navigation():
        phone.keyboard.press("Enter")
    assert phone.url == base
    assert Response.objects.get(invitation=invitation).score == 9
    assert phone.locator("#score-9").is_checked()  # the follow-ups, the score still changeable


def test_errors_are_announced_and_a_pale_brand_colour_stays_readable(
    phone: Page, live_server: Any, workspace: Workspace, customer: Customer
) -> None:
    definition = default_definition("Sunny")
    definition["branding"]["colour"] = "#ffd400"  # yellow: unreadable as text on white
    sunny = make_survey(workspace, "sunny", definition=definition)
    invitation = invite(sunny, customer)
    base = f"{live_server.url}/s/{invitation.token}"
    phone.goto(base)
    button = phone.locator("#submit")
    background = rgb(button.evaluate("e => getComputedStyle(e).backgroundColor"))
    colour = rgb(button.evaluate("e => getComputedStyle(e).color"))
    assert background == respondent.accent_colour("#ffd400") != "#ffd400"
    assert respondent.contrast(background, colour) >= 4.5
    stripe = phone.locator("header.top").evaluate("e => getComputedStyle(e).borderTopColor")
    assert rgb(stripe) == "#ffd400"  # the brand colour itself, where it carries no text

    with phone.expect_navigation():
        button.tap()  # no score chosen
    alert = phone.locator("[role=alert]")
    with translation.override("ro"):
        expected = translation.gettext("Please choose a number from %(low)s to %(high)s.")
    assert expected % {"low": 0, "high": 10} in alert.inner_text()
    assert phone.locator("#score").get_attribute("aria-describedby") == "score-error"
    alert.locator("a").tap()
    assert phone.url.endswith("#score-0")
    assert not Response.objects.exists()


def test_the_public_link_on_a_phone(
    phone: Page, live_server: Any, survey: Survey, org: dict[str, Any]
) -> None:
    phone.goto(f"{live_server.url}/s/p/{survey.public_code}?branch=B01")
    assert "Chișinău Centru" in phone.inner_text("main")  # {branch} filled from the code
    phone.locator("label[for=score-0]").tap()
    phone.locator("#submit").tap()
    phone.wait_for_url(re.compile(r"/s/[A-Za-z0-9_-]{32}$"))
    invitation = Invitation.objects.get(delivery_channel=DeliveryChannel.LINK)
    assert invitation.branch == org["branch"]
    assert Response.objects.get(invitation=invitation).score == 0
    assert phone.locator("#q-contact").count() == 1
