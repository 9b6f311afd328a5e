"""Delivery events from providers: anymail's tracking signal and Twilio's status callbacks.

Providers post events to webhooks (``urls_webhooks``): anymail turns each e-mail provider's
format into one ``AnymailTrackingEvent`` and sends the ``tracking`` signal, which lands in
``on_tracking`` here; Twilio's SMS status callback comes to ``twilio_status``.

What an event does:

* delivered / opened / clicked fill the invitation's funnel timestamps, each once (a
  conditional UPDATE ``… WHERE opened_at IS NULL``), and the earlier steps a later one
  implies (a click was delivered) — providers repeat and reorder events;
* bounced / rejected set ``bounced_at`` and suppress the address (reason *bounced*);
  complained suppresses it (*complained*); an unsubscribe at the provider unsubscribes the
  customer from every survey;
* an SMS that failed because the number is unreachable, unknown or a landline suppresses
  the number (*invalid*).

An event for a message we do not know (another application sharing the provider account)
is ignored: without its invitation there is no workspace to suppress the address in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from anymail.signals import AnymailTrackingEvent, EventType, tracking
from django.conf import settings
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, QueryDict
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from cxloop.core import clock

from .models import DeliveryChannel, Invitation, SuppressionReason
from .suppression import suppress_address, unsubscribe

log = logging.getLogger(__name__)

# Funnel steps in order: a later step implies the earlier ones.
FUNNEL = ("delivered_at", "opened_at", "clicked_at")
STEP = {
    EventType.DELIVERED: "delivered_at",
    EventType.OPENED: "opened_at",
    EventType.CLICKED: "clicked_at",
}
# Twilio: 30003 unreachable handset, 30005 unknown number, 30006 landline or unreachable
# carrier. These say the number will not take SMS; others (30007 filtered, 30008 unknown
# error) may pass next time.
TWILIO_DEAD_NUMBER = {"30003", "30005", "30006"}

# The deterministic Message-ID that channels.email gives every message.
_OUR_MESSAGE_ID = re.compile(r"^<?cx-(\d+)-([0-9a-f]{12})(-r)?@[^>]+>?$")


def find_invitation(message_id: str | None) -> Invitation | None:
    """The invitation a provider's message id belongs to, if it is ours.

    The stored id is tried first (with and without angle brackets: providers differ); then our
    own Message-ID format (a provider may report the id we set rather than its own).
    """
    if not message_id:
        return None
    bare = message_id.strip().strip("<>")
    if not bare:
        return None
    rows = Invitation.objects.select_related("workspace", "customer")
    ids = [bare, f"<{bare}>"]
    found = rows.filter(Q(message_id__in=ids) | Q(reminder_message_id__in=ids)).first()
    if found is not None:
        return found
    match = _OUR_MESSAGE_ID.match(message_id.strip())
    if match is None:
        return None
    from .channels.email import token_hash

    candidate = rows.filter(pk=int(match.group(1))).first()
    if candidate is not None and hmac.compare_digest(token_hash(candidate), match.group(2)):
        return candidate
    return None


def _when(event: AnymailTrackingEvent) -> dt.datetime:
    stamp = event.timestamp
    if isinstance(stamp, dt.datetime):
        return stamp if timezone.is_aware(stamp) else timezone.make_aware(stamp, dt.UTC)
    return clock.now()


def stamp(invitation: Invitation, step: str, when: dt.datetime) -> None:
    """Record ``step`` and the earlier funnel steps, each only the first time."""
    for field in FUNNEL[: FUNNEL.index(step) + 1]:
        Invitation.objects.filter(pk=invitation.pk, **{f"{field}__isnull": True}).update(
            **{field: when}
        )


def _address_of(invitation: Invitation, reported: str | None) -> str:
    if reported:
        return reported
    if invitation.is_test:
        return invitation.test_address
    return invitation.customer.email if invitation.customer is not None else ""


def _soft_bounce(event: AnymailTrackingEvent) -> bool:
    """Postmark reports "mailbox full"-style soft bounces as bounces (and anymail keeps them
    so); they say nothing about the address being wrong, so they must not suppress it."""
    raw = event.esp_event
    return isinstance(raw, dict) and raw.get("Type") == "SoftBounce"


@receiver(tracking, dispatch_uid="cxloop.surveys.tracking")
def on_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's tracking signal: one normalised event from any e-mail provider."""
    kind = event.event_type
    invitation = find_invitation(event.message_id)
    if invitation is None:
        log.info("e-mail %s event from %s for an unknown message; ignored", kind, esp_name)
        return
    when = _when(event)
    source = f"webhook:{esp_name.lower().replace(' ', '_')}"[:32]
    if kind in STEP:
        stamp(invitation, STEP[kind], when)
    elif kind in (EventType.BOUNCED, EventType.REJECTED):
        Invitation.objects.filter(pk=invitation.pk, bounced_at__isnull=True).update(bounced_at=when)
        if _soft_bounce(event):
            log.info("e-mail soft bounce for invitation %s; address kept", invitation.pk)
            return
        suppress_address(
            invitation.workspace,
            DeliveryChannel.EMAIL,
            _address_of(invitation, event.recipient),
            SuppressionReason.BOUNCED,
            source=source,
        )
    elif kind == EventType.COMPLAINED:
        suppress_address(
            invitation.workspace,
            DeliveryChannel.EMAIL,
            _address_of(invitation, event.recipient),
            SuppressionReason.COMPLAINED,
            source=source,
        )
    elif kind == EventType.UNSUBSCRIBED and invitation.customer is not None:
        unsubscribe(invitation.customer, via="api", source="esp")
    else:
        return
    log.info("e-mail %s event for invitation %s from %s", kind, invitation.pk, esp_name)


def twilio_signature(url: str, params: QueryDict | dict[str, str], token: str) -> str:
    """Twilio's ``X-Twilio-Signature``: HMAC-SHA1 of the URL followed by every POST parameter
    (sorted by name, then value) as name+value, keyed with the auth token, in base64."""
    payload = url
    if isinstance(params, QueryDict):
        for name in sorted(set(params.keys())):
            for value in sorted(params.getlist(name)):
                payload += name + value
    else:
        for name in sorted(params):
            payload += name + params[name]
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its default port and with it: Twilio signs whichever form it
    was configured with, and proxies add or drop ports."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    variants = [url, urlunsplit(parts._replace(netloc=host))]
    if default:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    return variants


def valid_twilio_request(request: HttpRequest) -> bool:
    token = settings.SMS_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = f"{settings.SITE_URL}{request.get_full_path()}"
    return any(
        constant_time_compare(twilio_signature(candidate, request.POST, token), signature)
        for candidate in _url_variants(url)
    )


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Twilio's StatusCallback for a message we sent (see channels.sms)."""
    if not valid_twilio_request(request):
        return HttpResponseForbidden("invalid signature")
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    status = request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or ""
    invitation = find_invitation(sid)
    if invitation is None:
        log.info("sms %s status for an unknown message; ignored", status)
        return HttpResponse(status=204)
    now = clock.now()
    if status == "delivered":
        stamp(invitation, "delivered_at", now)
    elif status in ("undelivered", "failed"):
        Invitation.objects.filter(pk=invitation.pk, bounced_at__isnull=True).update(bounced_at=now)
        code = request.POST.get("ErrorCode", "")
        if code in TWILIO_DEAD_NUMBER:
            phone = request.POST.get("To") or (
                invitation.customer.phone if invitation.customer is not None else ""
            )
            suppress_address(
                invitation.workspace,
                DeliveryChannel.SMS,
                phone,
                SuppressionReason.INVALID,
                source="webhook:twilio",
            )
        log.info("sms invitation %s %s (error %s)", invitation.pk, status, code or "none")
    return HttpResponse(status=204)
