"""Delivery events: real provider webhook payloads in, funnel timestamps and suppressions out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.http import QueryDict
from django.test import Client

from cxloop.accounts.models import Workspace
from cxloop.surveys.channels.email import message_id
from cxloop.surveys.models import (
    Invitation,
    InvitationStatus,
    Suppression,
    SuppressionReason,
    Survey,
)
from cxloop.surveys.suppression import is_unsubscribed
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey
from cxloop.surveys.tests.test_email import invite
from cxloop.surveys.tracking import twilio_signature

pytestmark = pytest.mark.django_db
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
SECRET = "hooks:5up3r-s3cret"
SITE = "https://cx.example.org"
AUTH_TOKEN = "twilio-auth-token"
STATUS_URL = "/webhooks/sms/twilio/status"


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    settings.SITE_URL = SITE
    settings.SMS_AUTH_TOKEN = AUTH_TOKEN


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    make_org(workspace)
    return make_survey(workspace)


@pytest.fixture
def sent(workspace: Workspace, survey: Survey) -> Invitation:
    """An invitation Postmark accepted: its id is Postmark's MessageID."""
    customer = make_customer(workspace, email="Jana@Example.com")
    invitation = invite(workspace, survey, customer)
    Invitation.objects.filter(pk=invitation.pk).update(
        status=InvitationStatus.SENT, message_id=POSTMARK_ID
    )
    invitation.refresh_from_db()
    return invitation


def postmark(payload: dict[str, Any], secret: str = SECRET) -> Any:
    auth = base64.b64encode(secret.encode()).decode()
    return Client().post(
        "/webhooks/anymail/postmark/tracking/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {auth}",
    )


def bounce(**fields: Any) -> dict[str, Any]:
    """Postmark's bounce webhook, as its documentation shows it."""
    return {
        "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807,
        "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Tag": "survey",
        "MessageID": POSTMARK_ID, "Metadata": {}, "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "jana@example.com", "From": "surveys@cx.example.org",
        "BouncedAt": "2026-11-05T16:33:54.9070259Z", "DumpAvailable": True, "Inactive": True,
        "CanActivate": True, "Subject": "How was your visit?", "Content": "",
        **fields,
    }  # fmt: skip


def engagement(kind: str, at: str) -> dict[str, Any]:
    """Postmark's Delivery, Open and Click webhooks."""
    base: dict[str, Any] = {
        "RecordType": kind, "MessageStream": "outbound", "MessageID": POSTMARK_ID,
        "Recipient": "jana@example.com", "Tag": "survey", "Metadata": {},
    }  # fmt: skip
    if kind == "Delivery":
        return {
            **base,
            "ServerID": 23,
            "DeliveredAt": at,
            "Details": "Test delivery webhook details",
        }
    base.update({"ReceivedAt": at, "Platform": "WebMail", "UserAgent": "Mozilla/5.0"})
    if kind == "Open":
        return {**base, "FirstOpen": True, "ReadSeconds": 5}
    return {**base, "ClickLocation": "HTML", "OriginalLink": f"{SITE}/s/x?score=9"}


def test_a_bounce_suppresses_the_address_and_marks_the_invitation(
    workspace: Workspace, sent: Invitation
) -> None:
    response = postmark(bounce())

    assert response.status_code == 200
    [row] = Suppression.objects.all()
    assert (row.workspace, row.delivery_channel, row.address, row.reason, row.source) == (
        workspace,
        "email",
        "jana@example.com",
        SuppressionReason.BOUNCED,
        "webhook:postmark",
    )
    assert row.customer == sent.customer
    sent.refresh_from_db()
    assert sent.bounced_at is not None and sent.bounced_at.isoformat().startswith(
        "2026-11-05T16:33:54"
    )


def test_a_soft_bounce_marks_the_invitation_but_keeps_the_address(sent: Invitation) -> None:
    postmark(bounce(Type="SoftBounce", TypeCode=4096, Name="Soft bounce"))

    assert not Suppression.objects.exists()
    sent.refresh_from_db()
    assert sent.bounced_at is not None


def test_a_webhook_without_the_secret_changes_nothing(sent: Invitation) -> None:
    response = postmark(bounce(), secret="hooks:guess")

    assert response.status_code == 400
    assert not Suppression.objects.exists()
    sent.refresh_from_db()
    assert sent.bounced_at is None


def test_a_spam_complaint_suppresses_the_address(sent: Invitation) -> None:
    postmark(bounce(RecordType="SpamComplaint", Type="SpamComplaint", TypeCode=512))

    [row] = Suppression.objects.all()
    assert (row.address, row.reason) == ("jana@example.com", SuppressionReason.COMPLAINED)


def test_an_unsubscribe_at_the_provider_unsubscribes_the_customer(sent: Invitation) -> None:
    postmark({
        "RecordType": "SubscriptionChange", "MessageID": POSTMARK_ID, "ServerID": 23,
        "MessageStream": "outbound", "ChangedAt": "2026-11-05T16:40:00Z",
        "Recipient": "jana@example.com", "Origin": "Recipient", "SuppressSending": True,
        "SuppressionReason": "ManualSuppression", "Tag": "survey", "Metadata": {},
    })  # fmt: skip

    assert sent.customer is not None and is_unsubscribed(sent.customer)


def test_delivered_opened_and_clicked_fill_the_funnel_once(sent: Invitation) -> None:
    postmark(engagement("Delivery", "2026-11-05T10:00:00Z"))
    postmark(engagement("Open", "2026-11-05T11:00:00Z"))
    postmark(engagement("Open", "2026-11-05T12:00:00Z"))  # opened again: changes nothing
    postmark(engagement("Click", "2026-11-05T11:30:00Z"))
    postmark(engagement("Delivery", "2026-11-05T13:00:00Z"))  # a repeated webhook

    sent.refresh_from_db()
    assert sent.delivered_at is not None and sent.delivered_at.hour == 10
    assert sent.opened_at is not None and sent.opened_at.hour == 11 and sent.opened_at.minute == 0
    assert sent.clicked_at is not None and sent.clicked_at.minute == 30
    assert sent.bounced_at is None
    assert not Suppression.objects.exists()


def test_a_click_implies_the_earlier_steps(sent: Invitation) -> None:
    postmark(engagement("Click", "2026-11-05T11:30:00Z"))

    sent.refresh_from_db()
    assert sent.delivered_at == sent.opened_at == sent.clicked_at


def test_an_event_for_someone_elses_message_is_ignored(sent: Invitation) -> None:
    response = postmark(bounce(MessageID="00000000-0000-0000-0000-000000000000"))

    assert response.status_code == 200
    assert not Suppression.objects.exists()


def test_a_reminder_is_recognised_by_its_own_message_id(sent: Invitation) -> None:
    reminder_id = message_id(sent, reminder=True)
    forged = f"<cx-{sent.pk}-{'0' * 12}-r@cx.example.org>"  # the right shape, a wrong hash

    for mid in (forged, reminder_id):
        tracking.send(
            sender=None,
            event=AnymailTrackingEvent(event_type="opened", message_id=mid, recipient=None),
            esp_name="Mailgun",
        )
        sent.refresh_from_db()
        assert (sent.opened_at is not None) is (mid == reminder_id)


# Twilio's status callback.


def twilio_post(params: dict[str, str], *, token: str = AUTH_TOKEN) -> Any:
    signature = twilio_signature(f"{SITE}{STATUS_URL}", params, token)
    return Client().post(STATUS_URL, params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_the_signature_is_twilios() -> None:
    # Twilio's own test vectors (twilio-python, tests/unit/test_request_validator.py).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}  # fmt: skip
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = QueryDict("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234")
    assert twilio_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.fixture
def texted(workspace: Workspace, survey: Survey) -> Invitation:
    customer = make_customer(workspace, phone="+37369123456")
    invitation = invite(workspace, survey, customer, channel="sms")
    Invitation.objects.filter(pk=invitation.pk).update(
        status=InvitationStatus.SENT, message_id="SM" + "a" * 32
    )
    invitation.refresh_from_db()
    return invitation


def status(value: str, error: str = "") -> dict[str, str]:
    params = {
        "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "From": "+37360000000",
        "MessageSid": "SM" + "a" * 32, "MessageStatus": value, "SmsSid": "SM" + "a" * 32,
        "SmsStatus": value, "To": "+37369123456",
    }  # fmt: skip
    if error:
        params["ErrorCode"] = error
    return params


def test_a_signed_delivery_report_marks_the_text_delivered(texted: Invitation) -> None:
    assert twilio_post(status("delivered")).status_code == 204

    texted.refresh_from_db()
    assert texted.delivered_at is not None


def test_a_report_with_a_wrong_signature_is_refused(texted: Invitation) -> None:
    assert twilio_post(status("delivered"), token="not-the-token").status_code == 403
    unsigned = Client().post(STATUS_URL, status("delivered"))
    assert unsigned.status_code == 403

    texted.refresh_from_db()
    assert texted.delivered_at is None


def test_a_dead_number_is_suppressed(workspace: Workspace, texted: Invitation) -> None:
    twilio_post(status("undelivered", "30006"))

    [row] = Suppression.objects.all()
    assert (row.workspace, row.delivery_channel, row.address, row.reason, row.source) == (
        workspace,
        "sms",
        "+37369123456",
        SuppressionReason.INVALID,
        "webhook:twilio",
    )
    texted.refresh_from_db()
    assert texted.bounced_at is not None


def test_a_filtered_message_does_not_suppress_the_number(texted: Invitation) -> None:
    twilio_post(status("failed", "30007"))  # carrier filtering: may pass another day

    assert not Suppression.objects.exists()
    texted.refresh_from_db()
    assert texted.bounced_at is not None
