"""Survey invitations by SMS, against a local server that speaks Twilio's protocol."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from cxloop.accounts.models import Workspace
from cxloop.customers.models import Customer
from cxloop.surveys.channels.sms import (
    ConsoleSms,
    TwilioSms,
    deliver_sms,
    fit,
    get_provider,
    idempotency_key,
    length_of,
)
from cxloop.surveys.models import DeliveryChannel, Suppression, SuppressionReason, Survey
from cxloop.surveys.suppression import is_unsubscribed
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey
from cxloop.surveys.tests.test_email import free_port, invite

pytestmark = pytest.mark.django_db
SITE = "https://cx.example.org"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token"
SENDER = "+37360000000"


@dataclass
class FakeTwilio:
    """What the server received, and what it should answer for which number."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    slow: set[str] = field(default_factory=set)


def twilio_handler(state: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            state.requests.append({"path": self.path, "form": form, "headers": dict(self.headers)})
            credentials = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {credentials}":
                return self.reply(401, {"code": 20003, "message": "Authenticate"})
            if self.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
                return self.reply(404, {"code": 20404, "message": "Not found"})
            if not {"To", "From", "Body"} <= form.keys():
                return self.reply(
                    400, {"code": 21604, "message": "A 'To' phone number is required."}
                )
            if form["To"] in state.slow:
                time.sleep(1.0)
            status, payload = state.replies.get(
                form["To"], (201, {"sid": f"SM{len(state.requests):032x}", "status": "queued"})
            )
            return self.reply(status, payload)

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client that timed out has gone: writing the late reply fails, as it should


@pytest.fixture
def twilio(settings: Any) -> Iterator[FakeTwilio]:
    state = FakeTwilio()
    server = QuietServer(("127.0.0.1", 0), twilio_handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.SMS_BACKEND = "twilio"
    settings.SMS_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.SMS_ACCOUNT_SID = SID
    settings.SMS_AUTH_TOKEN = TOKEN
    settings.SMS_FROM = SENDER
    settings.SMS_TIMEOUT = 5
    settings.SITE_URL = SITE
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    make_org(workspace)
    return make_survey(workspace)


def sms_to(workspace: Workspace, survey: Survey, external_id: str, phone: str, **kw: Any) -> Any:
    customer = make_customer(workspace, external_id, phone=phone, **kw)
    return invite(workspace, survey, customer, channel=DeliveryChannel.SMS)


def test_a_text_message_is_posted_the_way_twilio_expects(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio
) -> None:
    invitation = sms_to(workspace, survey, "C1", "+37369123456")

    [outcome] = deliver_sms([invitation], reminder=False)

    assert outcome.ok and outcome.message_id == f"SM{1:032x}"
    [request] = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["form"] == {
        "To": "+37369123456",
        "From": SENDER,
        "Body": f"Acme: cum a fost vizita? Spuneți-ne în 10 secunde: {SITE}/s/{invitation.token}",
        "StatusCallback": f"{SITE}/webhooks/sms/twilio/status",
    }
    assert request["headers"]["I-Twilio-Idempotency-Token"] == idempotency_key(
        invitation, reminder=False
    )
    assert invitation.token not in request["headers"]["I-Twilio-Idempotency-Token"]


def test_a_reminder_is_prefixed_and_has_its_own_idempotency_key(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio
) -> None:
    customer = make_customer(workspace, language="en")
    invitation = invite(workspace, survey, customer, channel="sms", language="en")

    deliver_sms([invitation], reminder=False)
    deliver_sms([invitation], reminder=True)

    first, reminder = (r["form"]["Body"] for r in twilio.requests)
    assert first == f"Acme: how was your visit? Tell us in 10 seconds: {SITE}/s/{invitation.token}"
    assert reminder == f"Reminder: {first}"
    keys = {r["headers"]["I-Twilio-Idempotency-Token"] for r in twilio.requests}
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("status", "payload", "transient", "error"),
    [
        (429, {"code": 20429, "message": "Too Many Requests"}, True, "sms http 429"),
        (500, {"message": "Internal error"}, True, "sms http 500"),
        (503, {}, True, "sms http 503"),
        (400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, False, "sms 21211"),
        (400, {"code": 21614, "message": "Not a mobile number"}, False, "sms 21614"),
    ],
)
def test_provider_errors_are_transient_or_permanent(
    workspace: Workspace,
    survey: Survey,
    twilio: FakeTwilio,
    status: int,
    payload: dict[str, Any],
    transient: bool,
    error: str,
) -> None:
    twilio.replies["+37369000001"] = (status, payload)
    refused = sms_to(workspace, survey, "C1", "+37369000001")
    fine = sms_to(workspace, survey, "C2", "+37369000002")

    outcomes = deliver_sms([refused, fine], reminder=False)

    assert [(o.ok, o.transient, o.error) for o in outcomes] == [
        (False, transient, error),
        (True, False, ""),
    ]
    assert "37369" not in outcomes[0].error
    assert not is_unsubscribed(refused.customer)


def test_a_recipient_who_replied_stop_is_unsubscribed(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio
) -> None:
    twilio.replies["+37369000001"] = (
        400,
        {"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
    )
    invitation = sms_to(
        workspace, survey, "C1", "+37369000001", consent={"email": True, "sms": True}
    )

    [outcome] = deliver_sms([invitation], reminder=False)

    assert (outcome.ok, outcome.transient, outcome.error) == (False, False, "sms 21610")
    customer = Customer.objects.get(pk=invitation.customer_id)
    assert is_unsubscribed(customer)
    assert customer.consent == {"email": False, "sms": False}
    assert Suppression.objects.filter(
        customer=customer, reason=SuppressionReason.UNSUBSCRIBED, source="sms-stop",
        delivery_channel="sms",
    ).exists()  # fmt: skip


def test_wrong_credentials_are_not_blamed_on_the_number(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio, settings: Any
) -> None:
    settings.SMS_AUTH_TOKEN = "wrong"
    [outcome] = deliver_sms([sms_to(workspace, survey, "C1", "+37369123456")], reminder=False)
    assert (outcome.ok, outcome.transient, outcome.error) == (False, True, "sms http 401")


def test_a_timeout_and_a_server_that_is_down_are_transient(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio, settings: Any
) -> None:
    twilio.slow.add("+37369000001")
    settings.SMS_TIMEOUT = 0.2
    [slow] = deliver_sms([sms_to(workspace, survey, "C1", "+37369000001")], reminder=False)
    assert (slow.ok, slow.transient, slow.error) == (False, True, "sms timeout")

    settings.SMS_API_URL = f"http://127.0.0.1:{free_port()}"
    [down] = deliver_sms([sms_to(workspace, survey, "C2", "+37369000002")], reminder=False)
    assert (down.ok, down.transient, down.error) == (False, True, "sms connection error")


def test_a_customer_without_a_phone_is_permanent(
    workspace: Workspace, survey: Survey, twilio: FakeTwilio
) -> None:
    [outcome] = deliver_sms([sms_to(workspace, survey, "C1", "")], reminder=False)
    assert (outcome.ok, outcome.transient, outcome.error) == (False, False, "no phone number")
    assert twilio.requests == []


def test_the_console_provider_prints_the_message(
    workspace: Workspace, survey: Survey, settings: Any, capsys: Any
) -> None:
    settings.SMS_BACKEND = "console"
    assert isinstance(get_provider(), ConsoleSms)
    invitation = sms_to(workspace, survey, "C1", "+37369123456")

    [outcome] = deliver_sms([invitation], reminder=False)

    assert outcome.ok and outcome.message_id.startswith("console-")
    printed = capsys.readouterr().out
    assert "SMS to +37369123456" in printed
    assert f"/s/{invitation.token}" in printed


def test_the_twilio_provider_is_picked_by_the_setting(twilio: FakeTwilio) -> None:
    assert isinstance(get_provider(), TwilioSms)


LINK = f"{SITE}/s/" + "x" * 32  # 57 characters


def test_a_short_gsm_message_is_left_alone() -> None:
    assert fit("Acme: how was your visit?", LINK) == f"Acme: how was your visit? {LINK}"


def test_a_long_gsm_message_is_shortened_to_one_segment_at_a_word() -> None:
    text = "Acme: thank you for visiting our store on the main square today, " * 3

    message = fit(text, LINK)

    assert length_of(message) <= 160
    assert message.endswith(f"... {LINK}")
    assert message.startswith("Acme: thank you for visiting our store")
    kept = message.split("... ")[0]
    assert text.startswith(kept) and text[len(kept)] == " "  # cut between words


def test_extension_characters_count_twice() -> None:
    assert length_of("price €5 [ok]") == 16


def test_cyrillic_or_diacritics_allow_two_ucs2_segments() -> None:
    text = "Спасибо, что посетили наш магазин сегодня. Ответьте на один вопрос, пожалуйста. " * 2

    message = fit(text, LINK)

    assert length_of(message) <= 134
    assert message.endswith(LINK) and message.startswith("Спасибо, что посетили")
    ro = fit("Acme: cum a fost vizita? Spuneți-ne în 10 secunde:", LINK)
    assert ro == f"Acme: cum a fost vizita? Spuneți-ne în 10 secunde: {LINK}"
