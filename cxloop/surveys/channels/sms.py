"""Survey invitations by SMS, through a small provider interface.

A provider has one method, ``send(to, body, idempotency_key=…) -> message id``, and raises
``TransientSmsError`` (try again later) or ``PermanentSmsError(code)`` (this number will not
work). Two exist: ``ConsoleSms`` prints messages (development, like Django's console e-mail
backend) and ``TwilioSms`` speaks Twilio's REST API — or that of any provider with the same
protocol at ``SMS_API_URL``. ``SMS_BACKEND`` picks one.

The message is the survey's SMS text and the short link ``/s/<token>``. It is kept to one
segment where the text allows: 160 characters in GSM-7; anything outside GSM-7 (Cyrillic,
Romanian ș/ț/ă) switches the whole message to UCS-2 at 70 characters a segment, so such a
message is allowed two concatenated segments (2 x 67) before the text is shortened.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from typing import IO, Protocol

import requests
from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from .. import render
from ..models import Invitation
from ..suppression import unsubscribe
from . import Outcome

log = logging.getLogger(__name__)

# Twilio error codes that mean something beyond "this number does not work".
TWILIO_INVALID_NUMBER = 21211
TWILIO_UNSUBSCRIBED = 21610  # the recipient replied STOP: they said no to every message

# GSM 03.38: the basic set costs one character, the extension set two (escape + char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SEGMENT = 160
UCS2_LIMIT = 2 * 67  # two concatenated UCS-2 segments


class TransientSmsError(Exception):
    """The provider could not take the message now (timeout, 429, 5xx); try again later."""


class PermanentSmsError(Exception):
    """The provider refused the message for good; ``code`` is its error code (if any)."""

    def __init__(self, code: int | str | None, message: str = "") -> None:
        super().__init__(message or f"refused ({code})")
        self.code = code


class SmsProvider(Protocol):
    def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        """Send ``body`` to ``to`` (E.164) and return the provider's message id."""
        ...


class ConsoleSms:
    """Development: writes each message to stdout instead of sending it."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        stream = self.stream or sys.stdout
        stream.write(f"SMS to {to} (key {idempotency_key})\n{body}\n{'-' * 60}\n")
        stream.flush()
        return f"console-{idempotency_key[:16]}"


class TwilioSms:
    """Twilio's Messages API: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

    401/403/404 are our credentials or account URL, not the customer's number: they are
    transient (retried, then failed) so a misconfiguration never suppresses good numbers.
    """

    def __init__(
        self,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        timeout: float,
        status_callback: str = "",
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.sender = sender
        self.timeout = timeout
        self.status_callback = status_callback
        self.session = requests.Session()

    @classmethod
    def from_settings(cls) -> TwilioSms:
        return cls(
            api_url=settings.SMS_API_URL,
            account_sid=settings.SMS_ACCOUNT_SID,
            auth_token=settings.SMS_AUTH_TOKEN,
            sender=settings.SMS_FROM,
            timeout=settings.SMS_TIMEOUT,
            status_callback=f"{settings.SITE_URL}{reverse('sms_twilio_status')}",
        )

    def close(self) -> None:
        self.session.close()

    def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        data = {"To": to, "From": self.sender, "Body": body}
        if self.status_callback:
            data["StatusCallback"] = self.status_callback
        try:
            response = self.session.post(
                self.url,
                data=data,
                auth=self.auth,
                timeout=self.timeout,
                headers={"I-Twilio-Idempotency-Token": idempotency_key},
            )
        except requests.Timeout:
            raise TransientSmsError("timeout") from None
        except requests.ConnectionError:
            raise TransientSmsError("connection error") from None
        except requests.RequestException as exc:
            raise TransientSmsError(f"request error {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500 or status in (401, 403, 404, 408):
            raise TransientSmsError(f"http {status}")
        payload = _json(response)
        if status >= 400:
            code = payload.get("code")
            raise PermanentSmsError(
                code if isinstance(code, int | str) else status, f"http {status}"
            )
        # Accepted: even an unreadable body means the message is on its way; never resend.
        return str(payload.get("sid") or "")


def _json(response: requests.Response) -> dict[str, object]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def get_provider() -> SmsProvider:
    """The provider ``SMS_BACKEND`` names."""
    if settings.SMS_BACKEND == "twilio":
        return TwilioSms.from_settings()
    if settings.SMS_BACKEND == "none":
        return NoSms()
    return ConsoleSms()


class NoSms:
    """``SMS_BACKEND=none``: rules never choose SMS; a message still asked for is deferred
    (transient: the customer's number is not at fault) rather than printed anywhere."""

    def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        raise TransientSmsError("no SMS provider configured")


def idempotency_key(invitation: Invitation, *, reminder: bool) -> str:
    """Stable per message: a retried send is recognised by providers that honour the key."""
    raw = f"{invitation.token}:{'reminder' if reminder else 'invitation'}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def length_of(text: str) -> int:
    """Length as the network counts it: GSM-7 extension characters count twice."""
    if is_gsm7(text):
        return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)  # UTF-16 code units


def fit(text: str, link: str) -> str:
    """``text link`` within one GSM-7 segment (or two UCS-2 ones), shortening the text."""
    text = " ".join(text.split())
    message = f"{text} {link}" if text else link
    limit = GSM7_SEGMENT if is_gsm7(message) else UCS2_LIMIT
    if length_of(message) <= limit:
        return message
    room = limit - length_of(link) - 1 - 3  # a space and "..."
    if room < 10:
        return message  # the link alone nearly fills it: send the whole text, in parts
    gsm = is_gsm7(message)
    used, end = 0, 0
    for end, ch in enumerate(text):  # noqa: B007 - end is read after the loop
        used += 2 if (ch in GSM7_EXTENSION if gsm else ord(ch) > 0xFFFF) else 1
        if used > room:
            break
    shortened = text[:end]
    cut = shortened.rsplit(" ", 1)[0] if " " in shortened else shortened
    return f"{cut.rstrip(' ,.:;-')}... {link}"


def body_of(invitation: Invitation, *, reminder: bool) -> str:
    definition = render.definition_of(invitation.survey)
    context = render.context_of(invitation)
    language = invitation.language or definition.default_language
    with translation.override(language):
        text = render.text(definition.sms_text or definition.title, language, definition, context)
        if reminder:
            text = gettext("Reminder: %(subject)s") % {"subject": text}
    return fit(text, render.survey_url(invitation))


def phone_of(invitation: Invitation) -> str:
    if invitation.is_test:
        return invitation.test_address.strip() if invitation.test_address.startswith("+") else ""
    return invitation.customer.phone.strip() if invitation.customer is not None else ""


def deliver_sms(invitations: Sequence[Invitation], *, reminder: bool) -> list[Outcome]:
    """Send each invitation (or reminder) by SMS; one outcome each, in order."""
    if not invitations:
        return []
    provider = get_provider()
    try:
        return [_send_one(provider, inv, reminder) for inv in invitations]
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()


def _send_one(provider: SmsProvider, invitation: Invitation, reminder: bool) -> Outcome:
    phone = phone_of(invitation)
    if not phone:
        return Outcome(invitation, ok=False, error="no phone number")
    try:
        body = body_of(invitation, reminder=reminder)
    except Exception:
        log.exception("sms: invitation %s could not be rendered", invitation.pk)
        return Outcome(invitation, ok=False, transient=True, error="render error")
    try:
        sid = provider.send(
            phone, body, idempotency_key=idempotency_key(invitation, reminder=reminder)
        )
    except TransientSmsError as exc:
        log.info("sms: invitation %s deferred: %s", invitation.pk, exc)
        return Outcome(invitation, ok=False, transient=True, error=f"sms {exc}")
    except PermanentSmsError as exc:
        log.info("sms: invitation %s refused: code %s", invitation.pk, exc.code)
        if str(exc.code) == str(TWILIO_UNSUBSCRIBED) and invitation.customer is not None:
            unsubscribe(invitation.customer, via="api", source="sms-stop", channel="sms")
        return Outcome(invitation, ok=False, error=f"sms {exc.code}")
    except Exception as exc:  # a provider bug must not stop the batch
        log.warning("sms: invitation %s: provider error %s", invitation.pk, type(exc).__name__)
        return Outcome(invitation, ok=False, transient=True, error=f"sms {type(exc).__name__}")
    return Outcome(invitation, ok=True, message_id=sid)
