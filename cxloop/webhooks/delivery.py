"""Posting due deliveries: signed, retried with backoff, logged, at least once.

``deliver_due`` runs in the heartbeat (the ``cxloop dispatcher`` loop or Celery beat's
``webhooks.tick``). Deliveries are claimed by a conditional UPDATE that also pushes their due
time a lease ahead, so two heartbeats never post the same delivery at once, and a heartbeat
that dies between the POST and recording it lets the delivery come back after the lease
(at least once: receivers de-duplicate by the event id).

A 2xx answer delivers; anything else (another status, a redirect, a timeout, a refused
connection) is retried after each wait of ``BACKOFF`` in turn, then the delivery is ``failed``.
An endpoint whose last ``DISABLE_AFTER`` deliveries all failed is switched off, audited, and
its workspace's administrators are told by e-mail; its pending deliveries wait for it.

Only the exception's class is ever recorded: its message can quote the URL, and URLs can hold
tokens. Bodies hold personal data and are never logged either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import smtplib
import time
import uuid
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Role
from cxloop.core import clock, outbox

from .models import Delivery, DeliveryAttempt, DisabledReason, Endpoint
from .services import set_active

log = logging.getLogger(__name__)

USER_AGENT = "cxloop-webhooks/1"
SIGNATURE_HEADER = "X-Cxloop-Signature"
TIMESTAMP_HEADER = "X-Cxloop-Timestamp"
TIMEOUT = 10  # seconds a receiver has to answer
# Waits after the 1st, 2nd, … failed attempt; a failure after the last wait gives it up
# (7 attempts over about 31 hours).
BACKOFF = (30, 120, 600, 3600, 6 * 3600, 24 * 3600)
# This many deliveries in a row given up switch the endpoint off.
DISABLE_AFTER = 5
# How old a signed timestamp ``verify`` accepts, in seconds (either way: clocks drift).
TOLERANCE = 300
BATCH = 16
WORKERS = 8
# A claimed delivery not recorded by then (its worker died) is due again.
LEASE = dt.timedelta(minutes=10)
# No new batch is claimed after this many seconds in one heartbeat: a receiver that times out
# must not hold up the survey dispatcher sharing the loop.
TICK_BUDGET = 10.0


# --- signatures -------------------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256, keyed with the secret, of ``"<timestamp>."`` + body."""
    message = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance: int = TOLERANCE,
    now: float | dt.datetime | None = None,
) -> bool:
    """Whether a received POST is cxloop's, signed with ``secret`` within ``tolerance``
    seconds of ``now`` (a replayed old request fails). The comparison takes constant time."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if now is None:
        now = time.time()
    elif isinstance(now, dt.datetime):
        now = now.timestamp()
    if abs(now - sent) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


# --- posting ----------------------------------------------------------------------------------


@dataclass
class Attempt:
    delivery: Delivery
    at: dt.datetime | None = None
    status: int | None = None
    error: str = ""
    duration_ms: int = 0
    deferred: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def summary(self) -> str:
        """What the delivery list shows as its last error."""
        return self.error or ("" if self.ok else f"HTTP {self.status}")


def headers(delivery: Delivery, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Cxloop-Event": delivery.event_type,
        "X-Cxloop-Event-Id": delivery.event_id.hex,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(delivery.endpoint.secret, timestamp, body),
    }


def _post(attempt: Attempt) -> Attempt:
    delivery = attempt.delivery
    body = delivery.body.encode()
    attempt.at = clock.now()
    timestamp = int(attempt.at.timestamp())
    began = time.monotonic()
    try:
        # stream: the answer's body is never read (nor kept); its status is all that counts.
        with requests.post(
            delivery.endpoint.url, data=body, headers=headers(delivery, body, timestamp),
            timeout=TIMEOUT, allow_redirects=False, stream=True,
        ) as answer:  # fmt: skip
            attempt.status = answer.status_code
    except Exception as exc:
        # Anything (a refused connection, a timeout, a URL requests cannot parse) is this
        # attempt's failure, not the heartbeat's. The class only: a message can quote the URL.
        attempt.error = type(exc).__name__
    attempt.duration_ms = round((time.monotonic() - began) * 1000)
    return attempt


def _post_in_order(attempts: list[Attempt]) -> list[Attempt]:
    """One endpoint's deliveries, in order; after a failure the rest wait (``deferred``): a
    receiver that is down costs one timeout a heartbeat, not one per event."""
    failed = False
    for attempt in attempts:
        if failed:
            attempt.deferred = True
        else:
            failed = not _post(attempt).ok
    return attempts


def _claim(ids: list[int], now: dt.datetime) -> list[Delivery]:
    """Take the deliveries still due; only the rows carrying this claim are posted."""
    claim = uuid.uuid4().hex
    Delivery.objects.filter(
        pk__in=ids, status=Delivery.Status.PENDING, next_attempt_at__lte=now
    ).update(claim=claim, next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    return list(
        Delivery.objects.filter(pk__in=ids, claim=claim).select_related("endpoint").order_by("pk")
    )


def _record(attempt: Attempt, now: dt.datetime) -> str:
    delivery = attempt.delivery
    mine = Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim)
    if attempt.deferred:  # not tried: given back, its attempt not counted
        mine.update(
            next_attempt_at=now + dt.timedelta(seconds=BACKOFF[0]), attempts=F("attempts") - 1
        )
        return "deferred"
    assert attempt.at is not None
    DeliveryAttempt.objects.create(
        delivery=delivery, at=attempt.at, status_code=attempt.status,
        error=attempt.error[:100], duration_ms=attempt.duration_ms,
    )  # fmt: skip
    outcome = {"last_status_code": attempt.status, "last_error": attempt.summary[:100]}
    if attempt.ok:
        if mine.update(status=Delivery.Status.DELIVERED, delivered_at=attempt.at, **outcome):
            Endpoint.objects.filter(pk=delivery.endpoint_id).update(
                consecutive_failures=0, last_success_at=attempt.at
            )
        return "delivered"
    if delivery.attempts > len(BACKOFF):
        if mine.update(status=Delivery.Status.FAILED, **outcome):
            log.warning("webhook delivery %s given up after %s attempts: %s",
                        delivery.pk, delivery.attempts, attempt.summary)  # fmt: skip
            _count_failure(delivery.endpoint_id)
        return "failed"
    wait = BACKOFF[delivery.attempts - 1]
    mine.update(next_attempt_at=now + dt.timedelta(seconds=wait), **outcome)
    return "retry"


def deliver_due(now: dt.datetime | None = None) -> dict[str, int]:
    """Post the deliveries that are due; counts of delivered, retry, deferred and failed.

    One thread per endpoint posts its events in order (a receiver sees a response's
    ``.created`` before its ``.updated``).
    """
    moment = now or clock.now()

    return outbox.drain(
        due=lambda: outbox.due_ids(Delivery, moment, BATCH),
        claim=lambda ids: _claim(ids, moment),
        attempt=Attempt,
        post_in_order=_post_in_order,
        record=lambda attempt: _record(attempt, moment),
        batch=BATCH,
        workers=WORKERS,
        budget=TICK_BUDGET,
        thread_name="cxloop-hooks",
    )


# --- switching off an endpoint that keeps failing ---------------------------------------------


def _count_failure(endpoint_id: int) -> None:
    Endpoint.objects.filter(pk=endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    endpoint = Endpoint.objects.select_related("workspace").get(pk=endpoint_id)
    if not endpoint.is_active or endpoint.consecutive_failures < DISABLE_AFTER:
        return
    # Conditional: of two heartbeats getting here at once, one switches it off and writes.
    if set_active(endpoint, False, via="webhooks", reason=DisabledReason.FAILURES):
        log.warning("webhook endpoint %s switched off after %s failed deliveries in a row",
                    endpoint.pk, endpoint.consecutive_failures)  # fmt: skip
        notify_admins(endpoint)


def notify_admins(endpoint: Endpoint) -> int:
    """E-mail the workspace's administrators that the endpoint was switched off; how many."""
    workspace = endpoint.workspace
    recipients = sorted(
        {
            email
            for email in Membership.objects.filter(
                workspace=workspace, role=Role.ADMIN, user__is_active=True
            ).values_list("user__email", flat=True)
            if email
        }
    )
    if not recipients:
        return 0
    link = settings.SITE_URL + reverse("webhooks:detail", args=[endpoint.pk])
    with translation.override(workspace.default_language):
        subject = _("Webhook endpoint %(endpoint)s switched off") % {
            "endpoint": endpoint.audit_repr
        }
        body = _(
            "cxloop switched off the webhook endpoint %(endpoint)s of the workspace "
            "%(workspace)s: its last %(count)s deliveries failed after every retry.\n\n"
            "Its events are kept and go out when you switch it on again, once the receiver "
            "answers: %(link)s\n"
        ) % {
            "endpoint": endpoint.audit_repr,
            "workspace": workspace.name,
            "count": DISABLE_AFTER,
            "link": link,
        }
    try:
        send_mail(subject, body, None, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        # The endpoint is off and audited whatever the mail server says.
        log.warning("webhook endpoint %s: notice not sent (%s)", endpoint.pk, type(exc).__name__)
        return 0
    return len(recipients)
