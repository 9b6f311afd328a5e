"""Survey invitations by e-mail, through Django's mail framework.

SMTP is the default backend; a provider (Postmark, Mailgun, SES…) is one ``EMAIL_BACKEND``
away through django-anymail, and this module does not care which: it builds one
``EmailMultiAlternatives`` per invitation (text and HTML, the score scale as one-click
links, RFC 8058 unsubscribe headers) and sends the batch over ONE connection, one message
at a time, so a refused recipient costs that message only.

Every failure becomes an ``Outcome``. *Permanent* means "this address will not work" (SMTP
5xx for the recipient, the provider refusing it): the dispatcher suppresses the address and
tries the next channel. Anything that may clear by itself — 4xx replies, timeouts, a dropped
connection, provider 5xx/429 — and anything that is our own fault (a rejected sender,
a wrong API key, a rendering bug) is *transient*, because blaming the customer's address
for our own misconfiguration would silence them for good. Error strings carry codes, never
addresses.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import secrets
import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import Any

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.template.loader import get_template
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

from .. import render
from ..definition import SurveyDefinition
from ..models import Invitation
from . import Outcome

log = logging.getLogger(__name__)

TEXT_TEMPLATE = "surveys/email/invitation.txt"
HTML_TEMPLATE = "surveys/email/invitation.html"

# The words at both ends of each scale: the respondent's page uses the same messages, so
# they are translated once (the templates capitalise them).
SCALE_LABELS = {
    "nps": (gettext_lazy("not at all likely"), gettext_lazy("extremely likely")),
    "csat": (gettext_lazy("very dissatisfied"), gettext_lazy("very satisfied")),
    "ces": (gettext_lazy("very difficult"), gettext_lazy("very easy")),
}

# Provider API statuses that say "our request or account is wrong", not "this address is":
# retried (and eventually failed) rather than suppressing a customer's good address.
_OUR_FAULT_STATUSES = {401, 403, 404, 408}


def token_hash(invitation: Invitation, length: int = 12) -> str:
    """A short, stable digest of the invitation's token: identifies it without revealing it."""
    return hashlib.sha256(invitation.token.encode()).hexdigest()[:length]


def sender_domain() -> str:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or "localhost"


def message_id(invitation: Invitation, *, reminder: bool) -> str:
    """``<cx-{pk}-{hash}[-r]@domain>``: the same on every try, so a retry is the same message.

    Mail systems that see the same Message-ID twice may drop the copy; the reminder is a new
    message and gets its own id. ``tracking`` can read the invitation back from it.
    """
    suffix = "-r" if reminder else ""
    return f"<cx-{invitation.pk}-{token_hash(invitation)}{suffix}@{sender_domain()}>"


def recipient_of(invitation: Invitation) -> str:
    if invitation.is_test:
        return invitation.test_address.strip()
    return invitation.customer.email.strip() if invitation.customer is not None else ""


def _one_line(value: str) -> str:
    """Header values may not contain line breaks (Django refuses them, rightly)."""
    return " ".join(value.split())


def _absolute(url: str | None) -> str:
    if not url:
        return ""
    return f"{settings.SITE_URL}{url}" if url.startswith("/") else url


def subject_of(
    invitation: Invitation,
    definition: SurveyDefinition,
    context: Mapping[str, str],
    *,
    reminder: bool,
) -> str:
    """The survey's subject in the invitation's language; call inside ``translation.override``."""
    subject = render.text(definition.email_subject, invitation.language, definition, context)
    if reminder:
        subject = gettext("Reminder: %(subject)s") % {"subject": subject}
    if invitation.is_test:
        # Not translated: a marker the CX manager can filter on in any language.
        subject = f"[TEST] {subject}"
    return _one_line(subject)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    company: str


# Rendered parts per survey version, language, kind and placeholder values, with a stand-in
# for the token: a batch of one survey and branch renders its templates once, and each
# message is a string replacement. The stand-in is random per process, so no survey text
# can contain it; tokens are URL-safe, so nothing around them is escaped differently. An
# entry is used only with the very definition object it was rendered from (render caches
# one per survey version), so an edited survey is rendered afresh.
_STAND_IN = f"cxtoken{secrets.token_hex(16)}"
_URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
_CACHE: dict[tuple[Any, ...], tuple[SurveyDefinition, Rendered]] = {}
_CACHE_SIZE = 256


def render_parts(invitation: Invitation, *, reminder: bool) -> Rendered:
    """Subject, text and HTML for the invitation, from the cache when its twin was rendered."""
    definition = render.definition_of(invitation.survey)
    context = render.context_of(invitation)
    language = invitation.language or definition.default_language
    if settings.DEBUG or not _URL_SAFE.match(invitation.token):
        # In development templates change under a running server: always render afresh.
        return _render_parts(invitation, definition, context, language, reminder)
    key = (
        invitation.survey_id, language, reminder, invitation.is_test,
        tuple(sorted(context.items())), settings.SITE_URL,
    )  # fmt: skip
    entry = _CACHE.get(key)
    if entry is None or entry[0] is not definition:
        stand_in = copy.copy(invitation)
        stand_in.token = _STAND_IN
        entry = (definition, _render_parts(stand_in, definition, context, language, reminder))
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = entry
    parts = entry[1]
    return Rendered(
        subject=parts.subject,
        text=parts.text.replace(_STAND_IN, invitation.token),
        html=parts.html.replace(_STAND_IN, invitation.token),
        company=parts.company,
    )


def _render_parts(
    invitation: Invitation,
    definition: SurveyDefinition,
    context: Mapping[str, str],
    language: str,
    reminder: bool,
) -> Rendered:
    with translation.override(language):
        subject = subject_of(invitation, definition, context, reminder=reminder)
        question = definition.score_question
        low, high = definition.scale
        low_label, high_label = SCALE_LABELS[question.type]
        scale = [
            {"score": n, "url": render.survey_url(invitation, score=n)}
            for n in range(low, high + 1)
        ]
        values = {
            "language": language,
            "subject": subject,
            "title": render.text(definition.title, language, definition, context),
            "intro": (
                render.text(definition.intro, language, definition, context)
                if definition.intro
                else ""
            ),
            "question": render.text(question.text, language, definition, context),
            "scale": scale,
            "low_label": str(low_label),
            "high_label": str(high_label),
            "company": context["company"],
            "colour": definition.branding.colour,
            "logo_url": _absolute(definition.branding.logo_url),
            "survey_url": render.survey_url(invitation),
            "unsubscribe_url": render.unsubscribe_url(invitation),
            "pixel_url": render.open_pixel_url(invitation),
            "is_test": invitation.is_test,
            "reminder": reminder,
        }
        text_body = get_template(TEXT_TEMPLATE).render(values)
        html_body = get_template(HTML_TEMPLATE).render(values)
    return Rendered(subject, text_body, html_body, context["company"])


def build_message(
    invitation: Invitation, *, reminder: bool, connection: Any = None
) -> EmailMultiAlternatives:
    """The complete message for one invitation, in its language."""
    parts = render_parts(invitation, reminder=reminder)
    sender = formataddr((_one_line(parts.company), parseaddr(settings.DEFAULT_FROM_EMAIL)[1]))
    message = EmailMultiAlternatives(
        subject=parts.subject,
        body=parts.text,
        from_email=sender,
        to=[recipient_of(invitation)],
        connection=connection,
        headers={
            "Message-ID": message_id(invitation, reminder=reminder),
            "List-Unsubscribe": f"<{render.unsubscribe_url(invitation)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            # Out-of-office and auto-replies to a survey only clutter the sender's mailbox.
            "X-Auto-Response-Suppress": "OOF, AutoReply",
        },
    )
    message.attach_alternative(parts.html, "text/html")
    return message


@dataclass
class _Failure:
    transient: bool
    error: str
    reconnect: bool = False


def classify(exc: BaseException) -> _Failure:
    """Transient or permanent, with an error string free of addresses. Order matters:
    anymail's request errors are also ``OSError``s (through requests), and
    ``SMTPSenderRefused`` is an ``SMTPResponseException``."""
    if isinstance(exc, AnymailRecipientsRefused):
        return _Failure(False, "provider refused the recipient")
    if isinstance(exc, AnymailInvalidAddress):
        return _Failure(False, "invalid address")
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        if status is None or status >= 500 or status == 429 or status in _OUR_FAULT_STATUSES:
            return _Failure(True, f"provider http {status or 'error'}")
        return _Failure(False, f"provider http {status}")
    if isinstance(exc, AnymailError):
        # Unsupported feature, serialisation: our bug, not the customer's address.
        return _Failure(True, f"provider error {type(exc).__name__}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted(code for code, _ in exc.recipients.values())
        code = codes[-1] if codes else 550
        # smtplib drops the connection itself after a 421 ("closing").
        return _Failure(code < 500, f"smtp {code}", reconnect=421 in codes)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        # Our From address is refused: nothing the recipient's address can fix.
        return _Failure(True, f"smtp {exc.smtp_code} sender refused")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Failure(True, "smtp disconnected", reconnect=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        # 421: the server is closing the connection.
        return _Failure(code < 500, f"smtp {code}", reconnect=code == 421)
    if isinstance(exc, smtplib.SMTPException):
        return _Failure(True, f"smtp error {type(exc).__name__}", reconnect=True)
    if isinstance(exc, ConnectionRefusedError):
        return _Failure(True, "connection refused", reconnect=True)
    if isinstance(exc, TimeoutError):
        return _Failure(True, "timeout", reconnect=True)
    if isinstance(exc, OSError):  # ConnectionError, socket errors, requests' errors
        return _Failure(True, f"connection error {type(exc).__name__}", reconnect=True)
    return _Failure(True, f"send error {type(exc).__name__}", reconnect=True)


def _provider_message_id(message: EmailMultiAlternatives) -> str:
    """The id a provider's webhooks will report (anymail), if the backend gave one."""
    status = getattr(message, "anymail_status", None)
    value = getattr(status, "message_id", None)
    if value is None or isinstance(value, set):
        return ""
    return str(value)


def _close(connection: Any) -> None:
    try:
        connection.close()
    except Exception:  # a connection that will not even close is gone anyway
        if hasattr(connection, "connection"):
            connection.connection = None


def deliver_email(invitations: Sequence[Invitation], *, reminder: bool) -> list[Outcome]:
    """Send each invitation (or its reminder) over one connection; one outcome each, in order."""
    if not invitations:
        return []
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # every way of failing to connect is an outcome, not a crash
        failure = classify(exc)
        log.warning(
            "e-mail: cannot connect (%s); %d invitations deferred", failure.error, len(invitations)
        )
        return [Outcome(inv, ok=False, transient=True, error=failure.error) for inv in invitations]
    outcomes: list[Outcome] = []
    reopen = False  # the previous message left the session broken or in doubt
    broken = ""  # reopening failed: the rest of the batch waits for a later try
    try:
        for invitation in invitations:
            if reopen and not broken:
                _close(connection)
                try:
                    connection.open()
                    reopen = False
                except Exception as exc:  # the server went away mid-batch
                    broken = classify(exc).error
            if broken:
                outcomes.append(Outcome(invitation, ok=False, transient=True, error=broken))
                continue
            outcome, reopen = _send_one(invitation, reminder, connection)
            outcomes.append(outcome)
    finally:
        _close(connection)
    return outcomes


def _send_one(invitation: Invitation, reminder: bool, connection: Any) -> tuple[Outcome, bool]:
    """The outcome, and whether the connection must be opened again before the next one."""
    address = recipient_of(invitation)
    if not address:
        return Outcome(invitation, ok=False, error="no e-mail address"), False
    try:
        validate_email(address)
    except ValidationError:
        return Outcome(invitation, ok=False, error="invalid address"), False
    try:
        message = build_message(invitation, reminder=reminder, connection=connection)
    except Exception:
        # A template or definition bug: retrying may not help, but it is not the address.
        log.exception("e-mail: invitation %s could not be rendered", invitation.pk)
        return Outcome(invitation, ok=False, transient=True, error="render error"), False
    try:
        sent = connection.send_messages([message])
    except Exception as exc:  # classified; the rest of the batch goes on
        failure = classify(exc)
        log.info("e-mail: invitation %s not sent: %s", invitation.pk, failure.error)
        outcome = Outcome(invitation, ok=False, transient=failure.transient, error=failure.error)
        return outcome, failure.reconnect
    if not sent:
        outcome = Outcome(invitation, ok=False, transient=True, error="not accepted by the backend")
        return outcome, False
    mid = _provider_message_id(message) or message.extra_headers["Message-ID"]
    return Outcome(invitation, ok=True, message_id=mid), False
