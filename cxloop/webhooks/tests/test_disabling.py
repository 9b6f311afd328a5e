"""An endpoint whose last DISABLE_AFTER deliveries all failed is switched off: audited, its
administrators told by e-mail, its pending deliveries kept for when it is on again."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.core import clock
from cxloop.testing import Mailbox
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery, DisabledReason, Endpoint
from cxloop.webhooks.services import set_active

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db
Status = Delivery.Status


def run_until_switched_off(endpoint: Endpoint, start: dt.datetime) -> dt.datetime:
    """Heartbeats at each next due time, as the clock would bring them."""
    at = start
    for _ in range(200):
        delivery.deliver_due(at)
        endpoint.refresh_from_db()
        if not endpoint.is_active:
            return at
        due = (
            Delivery.objects.filter(endpoint=endpoint, status=Status.PENDING)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        assert due is not None, "nothing left to try, yet the endpoint is still on"
        at = max(at, due)
    raise AssertionError("never switched off")


def test_persistent_failure_switches_the_endpoint_off_and_tells_the_admins(
    workspace: Workspace, receiver: Receiver, smtp: Mailbox, make_user: Any, settings: Any
) -> None:
    settings.SITE_URL = "https://cx.example.com"
    admin = make_user(workspace, Role.ADMIN, username="ana")
    make_user(workspace, Role.ANALYST, username="ion")
    endpoint = hook(workspace, receiver.url + "?token=TOPSECRET")
    receiver.default = 500
    total = delivery.DISABLE_AFTER + 1
    events.emit_many(workspace.pk, events.CASE_UPDATED, [{"n": n} for n in range(total)])
    t0 = clock.now()

    switched_off_at = run_until_switched_off(endpoint, t0)

    # Each failed delivery had all its attempts, over more than a day.
    assert switched_off_at - t0 >= dt.timedelta(seconds=sum(delivery.BACKOFF))
    assert endpoint.disabled_reason == DisabledReason.FAILURES
    assert endpoint.disabled_at is not None
    assert endpoint.consecutive_failures == delivery.DISABLE_AFTER
    statuses = sorted(Delivery.objects.values_list("status", flat=True))
    assert statuses == [Status.FAILED] * delivery.DISABLE_AFTER + [Status.PENDING]

    entry = AuditLog.objects.get(action="webhook.disabled")
    assert (entry.workspace, entry.via, entry.actor) == (workspace, "webhooks", None)
    assert entry.changes == {"is_active": False, "reason": "failures"}
    assert "TOPSECRET" not in entry.object_repr and "127.0.0.1" in entry.object_repr

    (message,) = smtp.messages
    assert smtp.envelopes == [[admin.email]]  # the analyst is not told
    assert "switched off" in message["Subject"]
    text = message.get_content()
    assert f"https://cx.example.com/settings/webhooks/{endpoint.pk}" in text
    assert "TOPSECRET" not in text

    # Off: the pending delivery stays pending, however long, even once the receiver is fixed.
    receiver.default = 200
    posts = len(receiver.received)
    assert delivery.deliver_due(switched_off_at + dt.timedelta(days=3)) == {}
    assert len(receiver.received) == posts
    assert Delivery.objects.filter(status=Status.PENDING).count() == 1

    # On again: it goes.
    assert set_active(endpoint, True, via="web", actor=admin)
    assert delivery.deliver_due(switched_off_at + dt.timedelta(days=3)) == {"delivered": 1}
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled_reason, endpoint.consecutive_failures) == (
        True, "", 0,
    )  # fmt: skip
    assert AuditLog.objects.filter(action="webhook.enabled", actor=admin).count() == 1
    assert len(smtp.messages) == 1


def _at_last_attempt(endpoint: Endpoint, workspace: Workspace) -> Delivery:
    events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})
    stored = Delivery.objects.filter(endpoint=endpoint).latest("pk")
    stored.attempts = len(delivery.BACKOFF)  # the next failure gives it up
    stored.save()
    return stored


def test_one_failure_short_of_the_limit_stays_on(
    workspace: Workspace, receiver: Receiver, smtp: Mailbox
) -> None:
    endpoint = hook(workspace, receiver.url, consecutive_failures=delivery.DISABLE_AFTER - 2)
    _at_last_attempt(endpoint, workspace)
    receiver.default = 500

    assert delivery.deliver_due() == {"failed": 1}

    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.consecutive_failures == delivery.DISABLE_AFTER - 1
    assert smtp.messages == []
    assert not AuditLog.objects.filter(action="webhook.disabled").exists()


def test_a_delivery_answered_2xx_resets_the_count(
    workspace: Workspace, receiver: Receiver, smtp: Mailbox
) -> None:
    endpoint = hook(workspace, receiver.url, consecutive_failures=delivery.DISABLE_AFTER - 1)
    events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})

    assert delivery.deliver_due() == {"delivered": 1}
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.last_success_at is not None

    _at_last_attempt(endpoint, workspace)
    receiver.default = 500
    assert delivery.deliver_due() == {"failed": 1}
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.consecutive_failures == 1


def test_the_endpoint_is_switched_off_even_when_the_mail_server_is_down(
    workspace: Workspace, receiver: Receiver, make_user: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    make_user(workspace, Role.ADMIN)
    endpoint = hook(workspace, receiver.url, consecutive_failures=delivery.DISABLE_AFTER - 1)
    _at_last_attempt(endpoint, workspace)
    receiver.default = 500

    assert delivery.deliver_due() == {"failed": 1}

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert AuditLog.objects.filter(action="webhook.disabled").count() == 1
