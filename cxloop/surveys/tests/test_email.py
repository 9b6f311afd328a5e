"""Survey invitations by e-mail, delivered to a real SMTP server on loopback."""

from __future__ import annotations

import datetime as dt
import re
import time
from email.message import EmailMessage
from typing import Any

import pytest
from anymail.exceptions import (
    AnymailAPIError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.organisation.models import Branch
from cxloop.surveys import dispatch, services
from cxloop.surveys.channels.email import classify, deliver_email, message_id
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import (
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Suppression,
    SuppressionReason,
    Survey,
)
from cxloop.surveys.rules import evaluate_new
from cxloop.surveys.tests.factories import (
    make_customer,
    make_interaction,
    make_org,
    make_survey,
)
from cxloop.testing import Mailbox, free_port

pytestmark = pytest.mark.django_db
SITE = "http://127.0.0.1:8000"


def invite(
    workspace: Workspace,
    survey: Survey,
    customer: Customer | None,
    *,
    channel: str = DeliveryChannel.EMAIL,
    language: str = "ro",
    branch: Branch | None = None,
    **fields: Any,
) -> Invitation:
    """An invitation ready to send, loaded the way the dispatcher loads it."""
    now = clock.now()
    created = Invitation.objects.create(
        workspace=workspace,
        survey=survey,
        customer=customer,
        delivery_channel=channel,
        language=language,
        branch=branch,
        scheduled_for=now,
        expires_at=now + dt.timedelta(days=14),
        **fields,
    )
    return Invitation.objects.select_related(
        "workspace", "survey", "customer", "customer__workspace", "branch", "employee",
        "product", "touchpoint",
    ).get(pk=created.pk)  # fmt: skip


@pytest.fixture
def smtp(smtp: Mailbox, settings: Any) -> Mailbox:
    """The shared SMTP server, with the site and sender these tests expect."""
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "cxloop <surveys@cx.example.org>"
    return smtp


@pytest.fixture
def org(workspace: Workspace) -> dict[str, Any]:
    return make_org(workspace)


@pytest.fixture
def survey(workspace: Workspace, org: dict[str, Any]) -> Survey:
    return make_survey(workspace)


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def score_links(body: str, invitation: Invitation) -> list[int]:
    pattern = re.escape(f"{SITE}/s/{invitation.token}") + r"\?score=(\d+)"
    return [int(score) for score in re.findall(pattern, body)]


def test_an_invitation_arrives_as_text_and_html_with_eleven_one_click_scores(
    workspace: Workspace, survey: Survey, org: dict[str, Any], smtp: Mailbox
) -> None:
    customer = make_customer(workspace)
    invitation = invite(workspace, survey, customer, branch=org["branch"])

    [outcome] = deliver_email([invitation], reminder=False)

    assert outcome.ok and outcome.invitation == invitation
    [message] = smtp.messages
    assert smtp.envelopes == [["c1@example.com"]]
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert score_links(html, invitation) == list(range(11))
    assert score_links(text, invitation) == list(range(11))
    assert f'href="{SITE}/s/{invitation.token}"' in html  # the plain "answer the survey" link
    assert f'<img src="{SITE}/s/{invitation.token}/o.gif"' in html
    assert f'href="{SITE}/s/{invitation.token}/unsubscribe"' in html
    assert f"{SITE}/s/{invitation.token}/unsubscribe" in text
    # The score question and intro in the customer's language, with the branch filled in.
    assert "Cât de probabil este să recomandați Acme" in html
    assert "Vă mulțumim că ați vizitat Chișinău Centru." in text
    assert "#1f4f99" in html and 'lang="ro"' in html


def test_the_subject_is_in_the_invitations_language_with_the_branch_filled_in(
    workspace: Workspace, survey: Survey, org: dict[str, Any], smtp: Mailbox
) -> None:
    ro = invite(workspace, survey, make_customer(workspace, "C1"), branch=org["branch"])
    ru = invite(workspace, survey, make_customer(workspace, "C2"), branch=org["branch"],
                language="ru")  # fmt: skip

    deliver_email([ro, ru], reminder=False)

    # Django folds a long encoded subject after "Subject:"; readers drop the fold's space.
    subjects = [m["Subject"].strip() for m in smtp.messages]
    assert subjects == [
        "Cum a fost vizita la Chișinău Centru?",
        "Как прошёл ваш визит в Chișinău Centru?",
    ]
    assert str(smtp.messages[0]["From"]) == "Acme <surveys@cx.example.org>"


def test_headers_offer_one_click_unsubscribe_and_a_message_id_per_invitation(
    workspace: Workspace, survey: Survey, smtp: Mailbox
) -> None:
    invitation = invite(workspace, survey, make_customer(workspace))

    [outcome] = deliver_email([invitation], reminder=False)

    [message] = smtp.messages
    # A long header is folded before its value; the fold is whitespace to every reader.
    assert message["List-Unsubscribe"].strip() == f"<{SITE}/s/{invitation.token}/unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["Message-ID"] == outcome.message_id
    assert outcome.message_id == message_id(invitation, reminder=False)
    assert re.fullmatch(
        rf"<cx-{invitation.pk}-[0-9a-f]{{12}}@cx\.example\.org>", outcome.message_id
    )
    assert invitation.token not in outcome.message_id


def test_a_reminder_has_the_prefix_and_its_own_message_id(
    workspace: Workspace, survey: Survey, org: dict[str, Any], smtp: Mailbox
) -> None:
    invitation = invite(workspace, survey, make_customer(workspace), branch=org["branch"],
                        language="en")  # fmt: skip

    [first] = deliver_email([invitation], reminder=False)
    [again] = deliver_email([invitation], reminder=True)

    assert [m["Subject"].strip() for m in smtp.messages] == [
        "How was your visit to Chișinău Centru?",
        "Reminder: How was your visit to Chișinău Centru?",
    ]
    assert again.ok and again.message_id != first.message_id
    assert again.message_id.endswith("-r@cx.example.org>")
    assert "A reminder: we would still like to hear from you." in parts(smtp.messages[1])[0]


def test_texts_are_escaped_in_the_html_and_left_alone_in_the_text(
    workspace: Workspace, survey: Survey, org: dict[str, Any], smtp: Mailbox
) -> None:
    branch = Branch.objects.create(
        workspace=workspace, code="B02", name='<b>&"x"', region=org["region"]
    )
    invitation = invite(workspace, survey, make_customer(workspace), branch=branch)

    deliver_email([invitation], reminder=False)

    [message] = smtp.messages
    text, html = parts(message)
    assert "<b>" not in html
    assert "ați vizitat &lt;b&gt;&amp;&quot;x&quot;." in html
    assert 'ați vizitat <b>&"x"' in text
    assert message["Subject"] == 'Cum a fost vizita la <b>&"x"?'


def test_a_csat_survey_offers_five_scores(workspace: Workspace, smtp: Mailbox) -> None:
    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2
    survey = make_survey(workspace, "csat", definition=definition)
    invitation = invite(workspace, survey, make_customer(workspace), language="en")

    deliver_email([invitation], reminder=False)

    text, html = parts(smtp.messages[0])
    assert score_links(html, invitation) == [1, 2, 3, 4, 5]
    assert score_links(text, invitation) == [1, 2, 3, 4, 5]
    assert "Very dissatisfied" in html and "Very satisfied" in html
    assert "Not at all likely" not in html


def test_a_test_invitation_goes_to_the_managers_address_and_says_so(
    workspace: Workspace, survey: Survey, smtp: Mailbox
) -> None:
    created = services.test_invitation(survey, email="manager@example.com", language="en")
    invitation = Invitation.objects.select_related("workspace", "survey").get(pk=created.pk)

    [outcome] = deliver_email([invitation], reminder=False)

    assert outcome.ok
    assert smtp.envelopes == [["manager@example.com"]]
    assert smtp.messages[0]["Subject"].startswith("[TEST] ")
    assert "This is a test invitation" in parts(smtp.messages[0])[1]


def test_a_refused_recipient_is_transient_or_permanent_and_the_batch_goes_on(
    workspace: Workspace, survey: Survey, smtp: Mailbox
) -> None:
    smtp.refuse_rcpt = {
        "busy@example.com": "450 4.2.1 Mailbox busy, try later",
        "gone@example.com": "550 5.1.1 No such user",
    }
    invitations = [
        invite(workspace, survey, make_customer(workspace, external_id, email=email))
        for external_id, email in [
            ("C1", "first@example.com"),
            ("C2", "busy@example.com"),
            ("C3", "gone@example.com"),
            ("C4", "last@example.com"),
        ]
    ]

    outcomes = deliver_email(invitations, reminder=False)

    assert [o.invitation for o in outcomes] == invitations
    assert [(o.ok, o.transient, o.error) for o in outcomes] == [
        (True, False, ""),
        (False, True, "smtp 450"),
        (False, False, "smtp 550"),
        (True, False, ""),
    ]
    assert smtp.envelopes == [["first@example.com"], ["last@example.com"]]


def test_a_dropped_connection_is_transient_and_the_next_message_reconnects(
    workspace: Workspace, survey: Survey, smtp: Mailbox
) -> None:
    smtp.refuse_data = {"drop@example.com": "421 4.3.2 Shutting down"}
    invitations = [
        invite(workspace, survey, make_customer(workspace, "C1", email="drop@example.com")),
        invite(workspace, survey, make_customer(workspace, "C2", email="next@example.com")),
    ]

    outcomes = deliver_email(invitations, reminder=False)

    assert [(o.ok, o.transient, o.error) for o in outcomes] == [
        (False, True, "smtp 421"),
        (True, False, ""),
    ]
    assert smtp.envelopes == [["next@example.com"]]


def test_when_the_server_is_down_every_invitation_waits(
    workspace: Workspace, survey: Survey, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    invitations = [invite(workspace, survey, make_customer(workspace, f"C{i}")) for i in range(3)]

    outcomes = deliver_email(invitations, reminder=False)

    assert [(o.ok, o.transient, o.error) for o in outcomes] == [
        (False, True, "connection refused")
    ] * 3


def test_a_missing_or_malformed_address_is_permanent_and_names_no_one(
    workspace: Workspace, survey: Survey, smtp: Mailbox
) -> None:
    blank = invite(workspace, survey, make_customer(workspace, "C1", email=""))
    bad = invite(workspace, survey, make_customer(workspace, "C2", email="x@exa mple.com"))

    outcomes = deliver_email([blank, bad], reminder=False)

    assert [(o.ok, o.transient, o.error) for o in outcomes] == [
        (False, False, "no e-mail address"),
        (False, False, "invalid address"),
    ]
    assert smtp.messages == []


@pytest.mark.parametrize(
    ("error", "transient", "text"),
    [
        (AnymailRecipientsRefused(), False, "provider refused the recipient"),
        (AnymailInvalidAddress("bad"), False, "invalid address"),
        (AnymailAPIError("down", status_code=503), True, "provider http 503"),
        (AnymailAPIError("slow down", status_code=429), True, "provider http 429"),
        (AnymailAPIError("inactive recipient", status_code=422), False, "provider http 422"),
        (AnymailAPIError("bad key", status_code=401), True, "provider http 401"),
        (TimeoutError(), True, "timeout"),
        (ConnectionResetError(), True, "connection error ConnectionResetError"),
    ],
)
def test_provider_errors_are_classified(error: Exception, transient: bool, text: str) -> None:
    failure = classify(error)
    assert (failure.transient, failure.error) == (transient, text)


def test_an_anymail_backend_reports_the_providers_message_id(
    workspace: Workspace, survey: Survey, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    invitation = invite(workspace, survey, make_customer(workspace))

    [outcome] = deliver_email([invitation], reminder=False)

    # The test backend's provider id is the message's place in the outbox.
    assert outcome.ok and outcome.message_id == "0"
    assert mail.outbox[0].extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_two_hundred_invitations_render_and_send_within_a_second(
    workspace: Workspace, survey: Survey, org: dict[str, Any]
) -> None:
    # The locmem backend: this measures our rendering and message building, not a network.
    customer = make_customer(workspace)
    created = Invitation.objects.bulk_create(
        [
            Invitation(
                workspace=workspace,
                survey=survey,
                customer=customer,
                branch=org["branch"],
                delivery_channel="email",
                language="ro",
                scheduled_for=clock.now(),
                expires_at=clock.now() + dt.timedelta(days=1),
            )
            for _ in range(200)
        ]
    )
    invitations = list(
        Invitation.objects.filter(pk__in=[i.pk for i in created]).select_related(
            "workspace", "survey", "customer", "branch", "employee", "product", "touchpoint"
        )
    )
    deliver_email(invitations[:1], reminder=False)  # warm the template cache

    timings = []
    for _ in range(3):  # the best of three: a busy test machine should not fail the check
        started = time.perf_counter()
        outcomes = deliver_email(invitations, reminder=False)
        timings.append(time.perf_counter() - started)
        assert all(o.ok for o in outcomes)

    assert min(timings) < 1.0, f"{len(invitations) / min(timings):.0f} invitations/s"
    # Rendered once per survey and branch, but every message carries its own links.
    last = mail.outbox[-len(invitations) :]
    for message, invitation in zip(last, invitations, strict=True):
        assert isinstance(message, EmailMultiAlternatives)
        assert message.to == ["c1@example.com"]
        assert score_links(str(message.body), invitation) == list(range(11))
        html = str(message.alternatives[0][0])
        assert score_links(html, invitation) == list(range(11))
        assert html.count(invitation.token) == 14  # 11 scores, answer, unsubscribe, pixel


def test_an_edited_survey_is_rendered_afresh(
    workspace: Workspace, survey: Survey, org: dict[str, Any], smtp: Mailbox
) -> None:
    customer = make_customer(workspace, language="en")
    deliver_email([invite(workspace, survey, customer, branch=org["branch"], language="en")],
                  reminder=False)  # fmt: skip
    definition = dict(survey.definition)
    definition["email_subject"] = {**definition["email_subject"], "en": "Rate {branch}, please"}
    survey.definition = definition
    survey.save()

    again = invite(workspace, Survey.objects.get(pk=survey.pk), customer, branch=org["branch"],
                   language="en")  # fmt: skip
    deliver_email([again], reminder=False)

    assert [m["Subject"].strip() for m in smtp.messages] == [
        "How was your visit to Chișinău Centru?",
        "Rate Chișinău Centru, please",
    ]


# End to end, through the dispatcher.


def deliver_now(ids: list[int], reminder: bool) -> Any:
    return dispatch.send(ids, reminder=reminder)


def test_the_dispatcher_sends_one_email_once(
    workspace: Workspace, org: dict[str, Any], smtp: Mailbox
) -> None:
    customer = make_customer(workspace, consent={"email": True, "sms": True})
    make_survey(workspace)
    make_interaction(workspace, customer, touchpoint=org["touchpoint"], branch=org["branch"])

    assert evaluate_new(workspace) == 1
    dispatch.tick(deliver_now, interval=2)

    [message] = smtp.messages
    invitation = Invitation.objects.get()
    assert invitation.status == InvitationStatus.SENT
    assert invitation.message_id == message["Message-ID"]
    assert message["Subject"] == "Cum a fost vizita la Chișinău Centru?"

    assert dispatch.send([invitation.pk]) == {}
    dispatch.tick(deliver_now, interval=2)
    assert len(smtp.messages) == 1


def test_a_refused_address_falls_back_to_sms(
    workspace: Workspace, org: dict[str, Any], smtp: Mailbox, capsys: Any
) -> None:
    customer = make_customer(
        workspace, email="gone@example.com", consent={"email": True, "sms": True}
    )
    smtp.refuse_rcpt = {"gone@example.com": "550 5.1.1 No such user"}
    make_survey(workspace)
    make_interaction(workspace, customer, touchpoint=org["touchpoint"], branch=org["branch"])

    dispatch.tick(deliver_now, interval=2)

    invitation = Invitation.objects.get()
    assert invitation.status == InvitationStatus.SCHEDULED
    assert invitation.delivery_channel == DeliveryChannel.SMS
    assert invitation.last_error == "smtp 550"
    assert Suppression.objects.filter(
        delivery_channel="email", address="gone@example.com", reason=SuppressionReason.INVALID
    ).exists()

    dispatch.tick(deliver_now, interval=2)

    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.SENT
    assert invitation.message_id.startswith("console-")
    printed = capsys.readouterr().out
    assert "SMS to +37369123456" in printed
    assert f"{SITE}/s/{invitation.token}" in printed
    assert smtp.messages == []
