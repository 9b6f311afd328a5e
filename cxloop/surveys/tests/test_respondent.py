"""The respondent's pages (/s/…): what a customer, a mail client, a link scanner and an
attacker each get from them."""

from __future__ import annotations

import datetime as dt
import io
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
import segno
from django.core.cache import cache
from django.test import Client
from django.utils import translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.surveys import respondent
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import (
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Response,
    ResponseSource,
    Suppression,
    SuppressionReason,
    Survey,
    new_token,
)
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

pytestmark = pytest.mark.django_db

REVIEW_URL = "https://reviews.example.com/acme"
RO_TITLE = "Părerea dumneavoastră contează"
RU_TITLE = "Нам важно ваше мнение"
RO_REASONS = "Ce v-a influențat cel mai mult nota?"
RO_CONTACT = "Vă putem suna în legătură cu aceasta?"


def ui(text: str, language: str = "ro", **values: Any) -> str:
    """A UI string as the page shows it in ``language`` (the invitations here are Romanian)."""
    with translation.override(language):
        translated = translation.gettext(text)
    return translated % values if values else translated


SCORE_ERROR = ui("Please choose a number from %(low)s to %(high)s.", low=0, high=10)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def org(workspace: Workspace) -> dict[str, Any]:
    return make_org(workspace)


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    definition = default_definition("Acme")
    definition["review"] = {
        "url": REVIEW_URL,
        "text": {
            "en": "Would you tell others about us?",
            "ru": "Расскажете о нас другим?",  # noqa: RUF001 - Cyrillic on purpose
            "ro": "Ne recomandați și altora?",
        },
    }
    return make_survey(workspace, definition=definition)


@pytest.fixture
def customer(workspace: Workspace) -> Customer:
    return make_customer(workspace, consent={"email": True, "sms": True})


def invite(survey: Survey, customer: Customer | None, **fields: Any) -> Invitation:
    now = clock.now()
    values: dict[str, Any] = {
        "workspace": survey.workspace,
        "survey": survey,
        "customer": customer,
        "status": InvitationStatus.SENT,
        "scheduled_for": now,
        "sent_at": now,
        "expires_at": now + dt.timedelta(days=14),
        "delivery_channel": DeliveryChannel.EMAIL,
        "language": "ro",
    }
    values.update(fields)
    return Invitation.objects.create(**values)


@pytest.fixture
def invitation(survey: Survey, customer: Customer, org: dict[str, Any]) -> Invitation:
    return invite(survey, customer, branch=org["branch"])


def url(invitation: Invitation, suffix: str = "") -> str:
    return f"/s/{invitation.token}{suffix}"


def page(response: Any) -> str:
    return response.content.decode()


def checked_score(html: str) -> str | None:
    found = re.search(r'name="score" id="score-\d+" value="(\d+)" checked', html)
    return found.group(1) if found else None


# --- The answer flow --------------------------------------------------------------------------


def test_the_one_click_score_is_recorded_at_once_then_the_follow_ups_are_shown(
    client: Client, invitation: Invitation
) -> None:
    response = client.get(url(invitation, "?score=3"))
    assert response.status_code == 303
    assert response["Location"] == url(invitation)
    stored = Response.objects.get(invitation=invitation)
    assert stored.score == 3
    assert stored.source == ResponseSource.EMAIL
    assert stored.customer_id == invitation.customer_id
    invitation.refresh_from_db()
    assert invitation.answered_at is not None and invitation.clicked_at is not None

    html = page(client.get(url(invitation)))
    assert checked_score(html) == "3"  # still changeable
    assert RO_REASONS in html  # the follow-ups, in the invitation's language
    assert "Care este motivul principal al notei dumneavoastră?" in html
    assert RO_CONTACT in html  # 3 is a detractor
    assert 'id="saved"' in html


@pytest.mark.parametrize("bad", ["11", "-1", "abc", "5.5", "", "1e1", "99999999999999999999"])
def test_a_one_click_score_off_the_scale_gets_a_clear_message_and_records_nothing(
    client: Client, invitation: Invitation, bad: str
) -> None:
    response = client.get(url(invitation, "?" + urllib.parse.urlencode({"score": bad})))
    assert response.status_code == 400
    html = page(response)
    assert 'role="alert"' in html and SCORE_ERROR in html
    assert 'aria-describedby="score-error"' in html
    assert not Response.objects.exists()
    invitation.refresh_from_db()
    assert invitation.answered_at is None


def test_a_head_request_with_a_score_records_nothing(
    client: Client, invitation: Invitation
) -> None:
    # Some link scanners only HEAD the links of an e-mail.
    assert client.head(url(invitation, "?score=0")).status_code == 200
    assert not Response.objects.exists()


def test_a_web_respondent_answers_the_score_then_the_follow_ups(
    client: Client, invitation: Invitation
) -> None:
    html = page(client.get(url(invitation)))
    assert checked_score(html) is None and RO_REASONS not in html  # the score first
    invitation.refresh_from_db()
    assert invitation.clicked_at is not None and invitation.answered_at is None

    response = client.post(url(invitation), {"score": "8"})
    assert response.status_code == 303 and response["Location"] == url(invitation)
    assert Response.objects.get().source == ResponseSource.WEB
    html = page(client.get(url(invitation)))
    assert RO_REASONS in html and RO_CONTACT not in html  # 8 is a passive: no call-back

    response = client.post(
        url(invitation),
        {"score": "8", "asked": ["reasons", "comment"], "q_reasons": ["price", "waiting"],
         "q_comment": "  Coada — очередь prea lungă  "},
    )  # fmt: skip
    assert response.status_code == 303
    assert response["Location"] == url(invitation, "/thanks")
    stored = Response.objects.get()
    assert stored.score == 8
    assert stored.answers["reasons"] == ["price", "waiting"]
    assert stored.comment == "Coada — очередь prea lungă"


def test_partial_answers_are_kept_and_merged(client: Client, invitation: Invitation) -> None:
    client.get(url(invitation, "?score=9"))
    # The reasons only (the respondent closed the page before the comment).
    client.post(url(invitation), {"score": "9", "asked": ["reasons"], "q_reasons": "staff"})
    assert Response.objects.get().answers == {"reasons": ["staff"]}
    # Later the comment only: the reasons stay.
    response = client.post(url(invitation), {"asked": ["comment"], "q_comment": "Amabili"})
    assert response.status_code == 303
    stored = Response.objects.get()
    assert stored.score == 9 and stored.comment == "Amabili"
    assert stored.answers == {"reasons": ["staff"]}
    html = page(client.get(url(invitation)))
    assert 'value="staff" checked' in html and ">Amabili</textarea>" in html


def test_unticking_every_reason_clears_them(client: Client, invitation: Invitation) -> None:
    client.get(url(invitation, "?score=9"))
    client.post(url(invitation), {"asked": ["reasons"], "q_reasons": ["staff", "price"]})
    client.post(url(invitation), {"asked": ["reasons"]})  # the box shown, nothing ticked
    assert Response.objects.get().answers["reasons"] == []


def test_answers_may_change_until_the_invitation_expires(
    client: Client, invitation: Invitation, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.get(url(invitation, "?score=10"))
    client.post(url(invitation), {"score": "10", "asked": ["comment"], "q_comment": "Super"})
    # A day later the customer thinks again: 4, and a call-back.
    response = client.post(url(invitation), {"score": "4", "asked": ["reasons", "comment"],
                                             "q_reasons": "waiting", "q_comment": "Actually slow"})  # fmt: skip
    # 4 calls for the call-back question, which was not on that form: shown next.
    assert response["Location"] == url(invitation)
    assert RO_CONTACT in page(client.get(url(invitation)))
    stored = Response.objects.get()
    assert (stored.score, stored.comment) == (4, "Actually slow")

    later = invitation.expires_at + dt.timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = client.post(url(invitation), {"score": "0"})
    assert response.status_code == 410
    assert ui("This survey has closed") in page(response)
    assert Response.objects.get().score == 4
    assert client.get(url(invitation, "?score=1")).status_code == 410
    assert client.get(url(invitation, "/thanks")).status_code == 410
    assert Response.objects.get().score == 4


def test_a_detractor_is_asked_whether_we_may_call_a_promoter_is_not(
    client: Client, survey: Survey, customer: Customer
) -> None:
    detractor, promoter = invite(survey, customer), invite(survey, customer)
    client.get(url(detractor, "?score=6"))
    client.get(url(promoter, "?score=9"))
    html = page(client.get(url(detractor)))
    assert RO_CONTACT in html
    # Prefilled with the customer's number for them to confirm.
    assert 'name="q_contact_phone" value="+373 691 23 456"' in html
    html = page(client.get(url(promoter)))
    assert RO_CONTACT not in html and "q_contact" not in html
    # A promoter posting a call-back anyway (an old form) is not stored as one.
    client.post(url(promoter), {"asked": ["contact"], "q_contact": "yes",
                                "q_contact_phone": "+37369000000"})  # fmt: skip
    assert Response.objects.get(invitation=promoter).may_contact is None


def test_the_number_to_call_is_confirmed_and_normalised(
    client: Client, workspace: Workspace, invitation: Invitation
) -> None:
    workspace.phone_region = "MD"
    workspace.save()
    client.get(url(invitation, "?score=2"))
    response = client.post(url(invitation), {
        "score": "2", "asked": ["reasons", "comment", "contact"], "q_comment": "Rude",
        "q_contact": "yes", "q_contact_phone": "069 123 457",
    })  # fmt: skip
    assert response.status_code == 303
    stored = Response.objects.get()
    assert stored.may_contact is True
    assert stored.contact_phone == "+37369123457"
    assert stored.answers["contact"] == {"may_contact": True, "phone": "+37369123457"}

    # "No" keeps no number, whatever the box holds.
    client.post(url(invitation), {"asked": ["contact"], "q_contact": "no",
                                  "q_contact_phone": "069 123 457"})  # fmt: skip
    stored.refresh_from_db()
    assert stored.may_contact is False and stored.contact_phone == ""


def test_a_wrong_number_is_shown_with_its_error_and_the_rest_is_kept(
    client: Client, invitation: Invitation
) -> None:
    client.get(url(invitation, "?score=1"))
    response = client.post(url(invitation), {
        "score": "1", "asked": ["reasons", "comment", "contact"], "q_reasons": "staff",
        "q_comment": "Nobody helped", "q_contact": "yes", "q_contact_phone": "12",
    })  # fmt: skip
    assert response.status_code == 422
    html = page(response)
    assert 'role="alert"' in html and 'href="#q-contact-yes"' in html
    assert 'id="q-contact-error"' in html
    assert re.search(r'id="q-contact-phone"[^>]*value="12"[^>]*aria-invalid="true"', html)
    assert 'value="yes" checked' in html  # what was typed is still there
    stored = Response.objects.get()
    assert stored.comment == "Nobody helped" and stored.answers["reasons"] == ["staff"]
    assert stored.may_contact is None

    response = client.post(url(invitation), {"asked": ["contact"], "q_contact": "yes",
                                             "q_contact_phone": ""})  # fmt: skip
    assert response.status_code == 422
    assert ui("Please give the number we may call.") in page(response)


def test_a_tampered_score_is_refused_and_nothing_of_that_post_is_kept(
    client: Client, invitation: Invitation
) -> None:
    client.get(url(invitation, "?score=7"))
    for bad in ("11", "-1", "abc", "5.5"):
        response = client.post(url(invitation), {"score": bad, "asked": ["comment"],
                                                  "q_comment": "x"})  # fmt: skip
        assert response.status_code == 422
        assert SCORE_ERROR in page(response)
    stored = Response.objects.get()
    assert stored.score == 7 and stored.comment == ""


def test_posting_without_any_score_asks_for_it(client: Client, invitation: Invitation) -> None:
    response = client.post(url(invitation), {})
    assert response.status_code == 422
    html = page(response)
    assert SCORE_ERROR in html and 'aria-invalid="true"' in html
    assert not Response.objects.exists()


def test_a_required_follow_up_left_empty_is_asked_again(
    client: Client, workspace: Workspace, customer: Customer
) -> None:
    definition = default_definition("Acme")
    definition["questions"][1]["required"] = True  # the reasons
    strict = make_survey(workspace, "strict", definition=definition)
    invitation = invite(strict, customer)
    client.get(url(invitation, "?score=9"))
    response = client.post(url(invitation), {"asked": ["reasons", "comment"], "q_comment": "ok"})
    assert response.status_code == 422
    assert ui("Please answer this question.") in page(response)
    assert Response.objects.get().comment == "ok"  # the rest is kept


def test_the_thank_you_page_invites_every_respondent_to_review_whatever_their_score(
    client: Client, survey: Survey, customer: Customer
) -> None:
    for score in (0, 10):
        invitation = invite(survey, customer)
        client.get(url(invitation, f"?score={score}"))
        response = client.get(url(invitation, "/thanks"))
        assert response.status_code == 200
        html = page(response)
        assert "Vă mulțumim! Răspunsul dumneavoastră ne ajută" in html
        assert f'href="{REVIEW_URL}"' in html and "Ne recomandați și altora?" in html
        assert 'rel="noopener noreferrer external"' in html
        assert f'href="{url(invitation)}" id="change-answers"' in html


def test_the_thank_you_page_before_any_answer_leads_to_the_survey(
    client: Client, invitation: Invitation
) -> None:
    response = client.get(url(invitation, "/thanks"))
    assert response.status_code == 303 and response["Location"] == url(invitation)


def test_the_language_switcher_changes_the_survey_and_is_remembered(
    client: Client, invitation: Invitation
) -> None:
    html = page(client.get(url(invitation)))
    assert '<html lang="ro"' in html and RO_TITLE in html
    assert 'href="?lang=ru"' in html and 'aria-current="true">Română' in html

    response = client.get(url(invitation, "?lang=ru"))
    html = page(response)
    assert '<html lang="ru"' in html and RU_TITLE in html and RO_TITLE not in html
    assert "Спасибо, что посетили Chișinău Centru" in html  # placeholders filled
    assert response["Content-Language"] == "ru"
    invitation.refresh_from_db()
    assert invitation.language == "ru"
    assert RU_TITLE in page(client.get(url(invitation)))  # kept without the parameter

    client.get(url(invitation, "?score=5"))
    assert Response.objects.get().language == "ru"
    client.get(url(invitation, "?lang=ro"))
    assert Response.objects.get().language == "ro"

    # A language the survey does not speak changes nothing.
    html = page(client.get(url(invitation, "?lang=de")))
    assert RO_TITLE in html
    invitation.refresh_from_db()
    assert invitation.language == "ro"


# --- Bad links --------------------------------------------------------------------------------


def test_an_unknown_token_gets_a_friendly_page(client: Client, invitation: Invitation) -> None:
    for path in (f"/s/{new_token()}", "/s/abc", f"/s/{new_token()}/thanks",
                 f"/s/{new_token()}/unsubscribe"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 404
        assert "We could not find this survey" in page(response)
        assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    ("status", "heading"),
    [
        (InvitationStatus.CANCELLED, "This survey is not available"),
        (InvitationStatus.FAILED, "This survey is not available"),
    ],
)
def test_a_cancelled_or_failed_invitation_gets_a_friendly_page(
    client: Client, survey: Survey, customer: Customer, status: str, heading: str
) -> None:
    invitation = invite(survey, customer, status=status)
    for suffix in ("", "?score=9", "/thanks"):
        response = client.get(url(invitation, suffix))
        assert response.status_code == 410
        html = page(response)
        assert ui(heading) in html
        assert '<html lang="ro"' in html and '<span class="company">Acme</span>' in html
    assert client.post(url(invitation), {"score": "9"}).status_code == 410
    assert not Response.objects.exists()


def test_an_expired_invitation_says_the_survey_has_closed(
    client: Client, survey: Survey, customer: Customer
) -> None:
    now = clock.now()
    invitation = invite(survey, customer, expires_at=now - dt.timedelta(minutes=1))
    response = client.get(url(invitation, "?score=10"))
    assert response.status_code == 410
    assert ui("This survey has closed") in page(response)
    assert not Response.objects.exists()


def test_repeated_unknown_tokens_from_one_address_are_refused(
    client: Client, invitation: Invitation
) -> None:
    for _ in range(respondent.BAD_TOKENS.limit):
        assert client.get(f"/s/{new_token()}").status_code == 404
    response = client.get(f"/s/{new_token()}")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 600
    assert "Too many attempts" in page(response)
    # Even a real token: a blocked address learns nothing more.
    assert client.get(url(invitation)).status_code == 429
    assert client.get(f"/s/p/{invitation.survey.public_code}").status_code == 429
    # Another address is not affected.
    assert client.get(url(invitation), REMOTE_ADDR="10.1.2.3").status_code == 200


def test_the_limit_lifts_after_the_window(
    client: Client, invitation: Invitation, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(respondent.BAD_TOKENS.limit):
        client.get(f"/s/{new_token()}")
    response = client.get(url(invitation))
    assert response.status_code == 429
    later = clock.now() + dt.timedelta(seconds=int(response["Retry-After"]) + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert client.get(url(invitation)).status_code == 200


NASTY = [
    "",
    " ",
    "%00",
    "%00" * 40,
    "a" * 43 + "%00",
    "' OR 1=1 --",
    "<script>",
    "../../etc/passwd",
    "%2e%2e%2f",
    "\u202e" * 20,
    "😀" * 20,
    "A" * 5000,
    "a" * 44,
    "%ff%fe",
    "null",
    "None",
    "p",
    "preview",
    "brand",
    "..",
    "%0d%0aSet-Cookie:x=1",
]


def _assert_no_server_error(client: Client, segment: str, token: str) -> None:
    paths = [f"/s/{segment}", f"/s/{segment}/thanks", f"/s/{segment}/o.gif",
             f"/s/{segment}/unsubscribe", f"/s/p/{segment}", f"/s/p/{segment}/qr.svg",
             f"/s/{token}?score={segment}&lang={segment}", f"/s/p/x?branch={segment}"]  # fmt: skip
    for path in paths:
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code < 500, (path, response.status_code)


def test_no_string_in_the_url_gives_a_server_error(client: Client, invitation: Invitation) -> None:
    for segment in NASTY:
        cache.clear()
        _assert_no_server_error(client, segment, invitation.token)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_no_random_string_in_the_url_gives_a_server_error(
    client: Client, invitation: Invitation, value: str
) -> None:
    cache.clear()
    _assert_no_server_error(client, urllib.parse.quote(value, safe=""), invitation.token)


# --- Open pixel and unsubscribe ---------------------------------------------------------------


def test_the_open_pixel_marks_the_invitation_opened_once(
    client: Client, invitation: Invitation
) -> None:
    response = client.get(url(invitation, "/o.gif"))
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert response["Cache-Control"] == "private, no-store"
    invitation.refresh_from_db()
    first = invitation.opened_at
    assert first is not None
    client.get(url(invitation, "/o.gif"))
    invitation.refresh_from_db()
    assert invitation.opened_at == first


def test_the_open_pixel_of_an_unknown_token_looks_the_same_but_counts(
    client: Client, invitation: Invitation
) -> None:
    known = client.get(url(invitation, "/o.gif"))
    for _ in range(respondent.BAD_TOKENS.limit):
        unknown = client.get(f"/s/{new_token()}/o.gif")
        assert unknown.status_code == 200 and unknown.content == known.content
    assert client.get(url(invitation)).status_code == 429


def test_unsubscribe_asks_first_then_stops_every_survey(
    client: Client, invitation: Invitation, customer: Customer
) -> None:
    response = client.get(url(invitation, "/unsubscribe"))
    assert response.status_code == 200
    assert 'method="post"' in page(response)
    assert not Suppression.objects.exists()  # a link scanner's GET changes nothing

    response = client.post(url(invitation, "/unsubscribe"))
    assert response.status_code == 200
    assert 'id="unsubscribed"' in page(response)
    row = Suppression.objects.get(customer=customer, address="")
    assert row.reason == SuppressionReason.UNSUBSCRIBED and row.source == "link"
    customer.refresh_from_db()
    assert customer.consent == {"email": False, "sms": False}
    entry = AuditLog.objects.get(action="customer.unsubscribe")
    assert entry.via == "web" and entry.object_id == str(customer.pk)
    # Twice is fine.
    assert client.post(url(invitation, "/unsubscribe")).status_code == 200
    assert AuditLog.objects.filter(action="customer.unsubscribe").count() == 1


def test_one_click_unsubscribe_works_without_cookies_or_csrf_token_even_after_expiry(
    survey: Survey, customer: Customer
) -> None:
    invitation = invite(survey, customer, expires_at=clock.now() - dt.timedelta(days=30))
    mail_client = Client(enforce_csrf_checks=True)
    response = mail_client.post(
        url(invitation, "/unsubscribe"),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not response.cookies
    assert Suppression.objects.filter(
        customer=customer, reason=SuppressionReason.UNSUBSCRIBED
    ).exists()
    # The address is kept too, for the SMS channel of an SMS invitation likewise.
    assert Suppression.objects.filter(address="c1@example.com").exists()


def test_unsubscribe_from_a_text_message_suppresses_the_phone(
    client: Client, survey: Survey, customer: Customer
) -> None:
    invitation = invite(survey, customer, delivery_channel=DeliveryChannel.SMS)
    client.post(url(invitation, "/unsubscribe"))
    assert Suppression.objects.filter(delivery_channel="sms", address="+37369123456").exists()


def test_a_test_invitation_shows_a_banner_and_unsubscribes_nobody(
    client: Client, survey: Survey
) -> None:
    invitation = invite(survey, None, is_test=True, test_address="cx@example.com")
    html = page(client.get(url(invitation)))
    assert 'id="test-banner"' in html and 'id="unsubscribe-link"' not in html
    client.get(url(invitation, "?score=4"))
    assert Response.objects.get().is_test is True
    response = client.post(url(invitation, "/unsubscribe"))
    assert response.status_code == 200 and not Suppression.objects.exists()


# --- Public link and QR code ------------------------------------------------------------------


def test_the_public_link_makes_a_link_invitation_with_its_branch(
    client: Client, survey: Survey, org: dict[str, Any]
) -> None:
    path = f"/s/p/{survey.public_code}?branch=B01&touchpoint=store-visit"
    response = client.get(path, HTTP_ACCEPT_LANGUAGE="ro-MD,ro;q=0.9,en;q=0.5")
    assert response.status_code == 200
    html = page(response)
    assert RO_TITLE in html and "Vă mulțumim că ați vizitat Chișinău Centru" in html
    assert 'href="?branch=B01&amp;touchpoint=store-visit&amp;lang=ru"' in html

    response = client.post(path, {"score": "9"}, HTTP_ACCEPT_LANGUAGE="ro")
    assert response.status_code == 303
    invitation = Invitation.objects.get()
    assert response["Location"] == url(invitation)
    assert invitation.delivery_channel == DeliveryChannel.LINK
    assert invitation.customer is None and invitation.status == InvitationStatus.SENT
    assert invitation.branch == org["branch"] and invitation.touchpoint == org["touchpoint"]
    assert invitation.channel == org["channel"]
    assert invitation.language == "ro"
    assert invitation.sent_at is not None
    assert invitation.expires_at - invitation.sent_at == dt.timedelta(days=14)
    stored = Response.objects.get()
    assert (stored.score, stored.source, stored.branch_id) == (9, "link", org["branch"].pk)
    # The follow-ups go on at the invitation's own page.
    assert RO_REASONS in page(client.get(response["Location"]))


def test_the_public_link_picks_the_browser_language_and_ignores_unknown_codes(
    client: Client, survey: Survey, workspace: Workspace, other_workspace: Workspace
) -> None:
    make_org(other_workspace)  # their B01 is not ours
    path = f"/s/p/{survey.public_code}?branch=B01&touchpoint=nowhere"
    html = page(client.get(path, HTTP_ACCEPT_LANGUAGE="de-DE,ru;q=0.8,en;q=0.5"))
    assert RU_TITLE in html
    client.post(path, {"score": "7"})
    invitation = Invitation.objects.get()
    assert invitation.branch is None and invitation.touchpoint is None


def test_a_bad_public_score_creates_nothing(client: Client, survey: Survey) -> None:
    response = client.post(f"/s/p/{survey.public_code}", {"score": "11"})
    assert response.status_code == 422 and ui(
        "Please choose a number from %(low)s to %(high)s.", "en", low=0, high=10
    ) in page(response)
    assert not Invitation.objects.exists() and not Response.objects.exists()


def test_public_answers_are_rate_limited_per_address(client: Client, survey: Survey) -> None:
    path = f"/s/p/{survey.public_code}"
    for _ in range(respondent.PUBLIC_POSTS.limit):
        assert client.post(path, {"score": "10"}).status_code == 303
    response = client.post(path, {"score": "10"})
    assert response.status_code == 429 and "Retry-After" in response
    assert Invitation.objects.count() == respondent.PUBLIC_POSTS.limit
    assert client.post(path, {"score": "10"}, REMOTE_ADDR="10.9.9.9").status_code == 303


def test_an_inactive_survey_public_link_is_closed(client: Client, survey: Survey) -> None:
    Survey.objects.filter(pk=survey.pk).update(is_active=False)
    assert client.get(f"/s/p/{survey.public_code}").status_code == 410
    assert client.post(f"/s/p/{survey.public_code}", {"score": "5"}).status_code == 410
    assert not Invitation.objects.exists()
    assert client.get(f"/s/p/{new_token()[:12]}").status_code == 404


def test_the_qr_code_is_an_svg_of_the_public_link_with_its_place(
    client: Client, survey: Survey, settings: Any
) -> None:
    settings.SITE_URL = "https://cx.example.com"
    response = client.get(f"/s/p/{survey.public_code}/qr.svg?branch=B01&touchpoint=store-visit")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    root = ET.fromstring(response.content)  # noqa: S314 - our own server's output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    expected = io.BytesIO()
    segno.make(
        f"https://cx.example.com/s/p/{survey.public_code}?branch=B01&touchpoint=store-visit",
        error="m",
    ).save(expected, kind="svg", scale=8, border=2)
    assert response.content == expected.getvalue()
    plain = client.get(f"/s/p/{survey.public_code}/qr.svg").content
    assert plain != response.content
    assert client.get(f"/s/p/{new_token()[:12]}/qr.svg").status_code == 404


# --- Preview ----------------------------------------------------------------------------------


def test_the_preview_needs_a_member_of_the_surveys_workspace(
    client: Client, survey: Survey, other_workspace: Workspace, make_user: Any
) -> None:
    path = f"/s/preview/{survey.code}"
    response = client.get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(make_user(other_workspace, Role.ADMIN))
    assert client.get(path).status_code == 404  # another workspace's survey


def test_the_preview_shows_every_language_and_score_and_records_nothing(
    client: Client, survey: Survey, workspace: Workspace, make_user: Any
) -> None:
    client.force_login(make_user(workspace, Role.CX_MANAGER))
    path = f"/s/preview/{survey.code}"
    html = page(client.get(path))
    assert "Preview — nothing is saved" in html and 'method="get"' in html
    assert "Your opinion matters" in html and "Main street" in html
    html = page(client.get(path, {"lang": "ru", "score": "3"}))
    assert RU_TITLE in html and "Можно ли нам позвонить вам по этому поводу?" in html
    assert 'href="?score=3&amp;lang=ro"' in html  # the other languages, same score
    html = page(client.get(path, {"lang": "ro", "score": "9", "page": "thanks"}))
    assert "Vă mulțumim!" in html and REVIEW_URL in html
    assert not Invitation.objects.exists() and not Response.objects.exists()


# --- Privacy, headers, speed ------------------------------------------------------------------


def test_no_cookie_is_ever_set_and_no_csrf_token_is_needed(
    survey: Survey, invitation: Invitation
) -> None:
    browser = Client(enforce_csrf_checks=True)
    responses = [
        browser.get(url(invitation, "?score=6")),
        browser.get(url(invitation)),
        browser.post(url(invitation), {"asked": ["comment"], "q_comment": "ok"}),
        browser.post(url(invitation), {"score": "99"}),
        browser.get(url(invitation, "/thanks")),
        browser.get(url(invitation, "/unsubscribe")),
        browser.get(url(invitation, "/o.gif")),
        browser.get(f"/s/p/{survey.public_code}"),
        browser.post(f"/s/p/{survey.public_code}", {"score": "3"}),
        browser.get(f"/s/{new_token()}"),
    ]
    assert [r.status_code for r in responses] == [303, 200, 303, 422, 200, 200, 200, 200, 303, 404]
    for response in responses:
        assert not response.cookies, response.cookies
        assert "csrfmiddlewaretoken" not in response.content.decode(errors="replace")


@pytest.mark.parametrize("suffix", ["", "/thanks", "/unsubscribe", "?lang=ru"])
def test_pages_are_private_unreferred_and_unindexed(
    client: Client, invitation: Invitation, suffix: str
) -> None:
    client.get(url(invitation, "?score=9"))
    response = client.get(url(invitation, suffix))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"]
    assert response["Content-Language"] == ("ru" if "ru" in suffix else "ro")


def test_the_page_costs_one_query_before_an_answer_and_two_after(
    client: Client, invitation: Invitation, django_assert_num_queries: Any
) -> None:
    client.get(url(invitation))  # the first visit also records the click
    with django_assert_num_queries(1):
        assert client.get(url(invitation)).status_code == 200
    client.get(url(invitation, "?score=5"))
    with django_assert_num_queries(2):  # the invitation, then its response
        assert client.get(url(invitation)).status_code == 200


def test_the_brand_colour_is_darkened_only_where_text_would_be_unreadable(client: Client) -> None:
    assert respondent.accent_colour("#1f4f99") == "#1f4f99"
    pale = respondent.accent_colour("#ffd400")  # a yellow: 1.4:1 on white
    assert respondent.contrast(pale, "#ffffff") >= 4.5
    red, green, blue = (int(pale[i : i + 2], 16) for i in (1, 3, 5))
    assert red > green > blue  # still a yellow-brown, not black
    css = client.get("/s/brand/FFD400.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    assert f"--accent:{pale}" in css.content.decode() and "--brand:#ffd400" in css.content.decode()
    assert client.get("/s/brand/ffd40.css").status_code == 404


# --- Accessibility of the markup --------------------------------------------------------------


class _Structure(HTMLParser):
    """Collects what WCAG asks of a form: labels, fieldsets with legends, ids."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.labels: set[str] = set()
        self.controls: list[dict[str, str]] = []
        self.ids: list[str] = []
        self.fieldsets: list[dict[str, Any]] = []
        self.html_lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "html":
            self.html_lang = values.get("lang", "")
        if tag == "label" and "for" in values:
            self.labels.add(values["for"])
        if tag == "fieldset":
            self.fieldsets.append({"legend": False, "radios": 0})
        if tag == "legend" and self.fieldsets:
            self.fieldsets[-1]["legend"] = True
        if tag in ("input", "textarea", "select") and values.get("type") != "hidden":
            inside = [t for t, _ in self.stack if t == "fieldset"]
            self.controls.append({**values, "tag": tag, "in_fieldset": str(bool(inside))})
            if values.get("type") == "radio" and self.fieldsets:
                self.fieldsets[-1]["radios"] += 1
        if tag not in ("input", "meta", "link", "br", "img"):
            self.stack.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break


def test_every_control_has_a_label_and_every_radio_group_a_legend(
    client: Client, workspace: Workspace, invitation: Invitation
) -> None:
    client.get(url(invitation, "?score=2"))
    response = client.post(url(invitation), {"asked": ["contact"], "q_contact": "yes",
                                             "q_contact_phone": "x"})  # fmt: skip
    for html in (page(client.get(url(invitation))), page(response)):
        parsed = _Structure()
        parsed.feed(html)
        assert parsed.html_lang == "ro"
        assert len(parsed.ids) == len(set(parsed.ids)), "duplicate ids"
        assert parsed.controls
        for control in parsed.controls:
            assert control["id"] in parsed.labels, control
            if control.get("type") == "radio":
                assert control["in_fieldset"] == "True", control
            if "aria-describedby" in control:
                for ref in control["aria-describedby"].split():
                    assert ref in parsed.ids, ref
        assert all(f["legend"] for f in parsed.fieldsets)
        assert sum(f["radios"] for f in parsed.fieldsets) == 11 + 2  # the scale, yes/no


@pytest.mark.parametrize(
    ("colour", "background"),
    [
        ("#1a1f2b", "#ffffff"),  # text
        ("#4b5563", "#ffffff"),  # muted text
        ("#4b5563", "#f4f6f9"),  # muted text on the review box
        ("#b42318", "#ffffff"),  # errors
        ("#05603a", "#ecfdf3"),  # "your score is saved"
        ("#1a1f2b", "#fff4d6"),  # the preview banner
        ("#1a1f2b", "#e8f0fe"),  # the test banner
        ("#ffffff", "#1f4f99"),  # button text on the default brand colour
    ],
)
def test_the_stylesheet_colours_meet_aa_contrast(colour: str, background: str) -> None:
    assert respondent.contrast(colour, background) >= 4.5
