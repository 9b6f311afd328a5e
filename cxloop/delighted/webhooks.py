"""Outgoing webhooks in Delighted's format, for receivers written for Delighted.

Each event is one POST of ``{"event_type", "event_id", "event_data"}`` to every active
endpoint of the workspace subscribed to its type:

* ``survey_response.created`` / ``survey_response.updated`` — ``event_data`` is the response
  exactly as ``GET survey_responses/{id}?expand[]=person`` answers it;
* ``unsubscribe.created`` — ``event_data`` is ``{"person_id", "email", "name",
  "unsubscribed_at"}``.

The receivers below only *record* a ``WebhookDelivery`` per endpoint (the surveys' signals
fire after the commit, inside the respondent's request, which must never wait on someone
else's server). ``deliver_due`` posts them from the heartbeat: claimed by a conditional
UPDATE, as invitations are, so two heartbeats never post the same delivery at once; a 2xx
answer delivers it, anything else is retried after 1 min, 5 min, 30 min, 2 h and 6 h, then
it is given up (``failed``). Delivery is at least once (a worker dying after the POST but
before recording it posts again after the lease): receivers de-duplicate by ``event_id``.

Every POST carries ``X-Cxloop-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with
the endpoint's secret>`` for receivers that verify where a request came from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from django.db.models import F
from django.dispatch import receiver

from cxloop.core import clock, outbox
from cxloop.customers.models import Customer
from cxloop.surveys.models import Response, Suppression, SuppressionReason
from cxloop.surveys.signals import customer_unsubscribed, response_saved

from .http import unix
from .models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

RESPONSE_CREATED = "survey_response.created"
RESPONSE_UPDATED = "survey_response.updated"
UNSUBSCRIBE_CREATED = "unsubscribe.created"
EVENT_TYPES = (RESPONSE_CREATED, RESPONSE_UPDATED, UNSUBSCRIBE_CREATED)

SIGNATURE_HEADER = "X-Cxloop-Signature"
TIMEOUT = 10  # seconds a receiver has to answer
# Waits after the 1st, 2nd, … failed attempt; after the last one the delivery is failed.
BACKOFF = (60, 300, 1800, 7200, 21600)
BATCH = 16
WORKERS = 8
# A claimed delivery not recorded by then (its worker died) is due again.
LEASE = dt.timedelta(minutes=10)
# No new batch is claimed after this many seconds in one heartbeat: a receiver that times out
# must not hold up the survey dispatcher sharing the loop.
TICK_BUDGET = 10.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def subscribed(workspace_id: int, event_type: str) -> list[WebhookEndpoint]:
    """The workspace's active endpoints that want ``event_type`` (none listed: all)."""
    return [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(workspace_id=workspace_id, is_active=True)
        if not endpoint.event_types or event_type in endpoint.event_types
    ]


def record(
    workspace_id: int,
    event_type: str,
    event_data: dict[str, Any] | Callable[[], dict[str, Any]],
) -> int:
    """One delivery of a new event per subscribed endpoint; returns how many.

    ``event_data`` may be a function, so that nothing is serialised when nobody listens.
    """
    endpoints = subscribed(workspace_id, event_type)
    if not endpoints:
        return 0
    data = event_data() if callable(event_data) else event_data
    event_id = uuid.uuid4()
    payload = {"event_type": event_type, "event_id": event_id.hex, "event_data": data}
    now = clock.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                workspace_id=workspace_id,
                endpoint=endpoint,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint in endpoints
        ]
    )
    return len(endpoints)


@receiver(response_saved, sender=Response, dispatch_uid="delighted.webhooks.response_saved")
def on_response_saved(sender: Any, response: Response, created: bool, **kwargs: Any) -> None:
    """``survey_response.created`` for a new response, ``.updated`` for a changed one."""
    if response.is_test:
        return  # a CX manager trying the survey out is not feedback
    event_type = RESPONSE_CREATED if created else RESPONSE_UPDATED
    try:
        from .views_responses import response_json

        record(
            response.workspace_id, event_type, lambda: response_json(response, expand_person=True)
        )
    except Exception:
        # The answer is committed and the respondent is waiting for their thank-you page: a
        # fault here is logged, never theirs.
        log.exception("webhook event %s for response %s not recorded", event_type, response.pk)


@receiver(customer_unsubscribed, sender=Customer, dispatch_uid="delighted.webhooks.unsubscribed")
def on_unsubscribed(sender: Any, customer: Customer, source: str, **kwargs: Any) -> None:
    try:
        record(customer.workspace_id, UNSUBSCRIBE_CREATED, lambda: unsubscribe_data(customer))
    except Exception:
        log.exception("webhook event %s for customer %s not recorded", UNSUBSCRIBE_CREATED,
                      customer.pk)  # fmt: skip


def unsubscribe_data(customer: Customer) -> dict[str, Any]:
    when = (
        Suppression.objects.filter(
            workspace_id=customer.workspace_id,
            customer=customer,
            reason=SuppressionReason.UNSUBSCRIBED,
        )
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return {
        "person_id": str(customer.pk),
        "email": customer.email or None,
        "name": customer.name or None,
        "unsubscribed_at": unix(when or clock.now()),
    }


@dataclass
class Attempt:
    delivery: WebhookDelivery
    status: int | None = None
    error: str = ""
    deferred: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _claim(ids: list[int], now: dt.datetime) -> list[WebhookDelivery]:
    """Take the deliveries still due; only the rows carrying this claim are posted."""
    claim = uuid.uuid4().hex
    WebhookDelivery.objects.filter(
        pk__in=ids, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(claim=claim, next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    return list(
        WebhookDelivery.objects.filter(pk__in=ids, claim=claim)
        .select_related("endpoint")
        .order_by("pk")
    )


def _post(attempt: Attempt) -> Attempt:
    delivery = attempt.delivery
    body = encode(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cxloop-webhooks/1 (Delighted-compatible)",
        SIGNATURE_HEADER: sign(delivery.endpoint.secret, body),
    }
    try:
        answer = requests.post(
            delivery.endpoint.url, data=body, headers=headers, timeout=TIMEOUT,
            allow_redirects=False,
        )  # fmt: skip
        attempt.status = answer.status_code
        if not attempt.ok:
            attempt.error = f"HTTP {answer.status_code}"
    except requests.RequestException as exc:
        # The class only: a message can quote the URL, and URLs can hold tokens.
        attempt.error = type(exc).__name__
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


def _record(attempt: Attempt, now: dt.datetime) -> str:
    delivery = attempt.delivery
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, claim=delivery.claim)
    if attempt.deferred:  # not tried: given back, its attempt not counted
        mine.update(
            next_attempt_at=now + dt.timedelta(seconds=BACKOFF[0]), attempts=F("attempts") - 1
        )
        return "deferred"
    if attempt.ok:
        mine.update(
            status=WebhookDelivery.Status.DELIVERED, delivered_at=clock.now(), last_error=""
        )
        return "delivered"
    if delivery.attempts > len(BACKOFF):
        mine.update(status=WebhookDelivery.Status.FAILED, last_error=attempt.error[:200])
        log.warning("webhook delivery %s given up after %s attempts: %s",
                    delivery.pk, delivery.attempts, attempt.error)  # fmt: skip
        return "failed"
    wait = BACKOFF[delivery.attempts - 1]
    mine.update(next_attempt_at=now + dt.timedelta(seconds=wait), last_error=attempt.error[:200])
    return "retry"


def deliver_due(now: dt.datetime | None = None) -> dict[str, int]:
    """Post the deliveries that are due; counts of delivered, retry, deferred and failed.

    One thread per endpoint posts its events in order (a receiver sees a response's
    ``.created`` before its ``.updated``).
    """
    moment = now or clock.now()

    return outbox.drain(
        due=lambda: outbox.due_ids(WebhookDelivery, moment, BATCH),
        claim=lambda ids: _claim(ids, moment),
        attempt=Attempt,
        post_in_order=_post_in_order,
        record=lambda attempt: _record(attempt, moment),
        batch=BATCH,
        workers=WORKERS,
        budget=TICK_BUDGET,
        thread_name="cxloop-webhooks",
    )
