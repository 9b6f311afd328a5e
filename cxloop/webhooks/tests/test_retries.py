"""Failed attempts are retried after each wait of BACKOFF, logged, then given up."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.testing import free_port
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery, DeliveryAttempt

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db
Status = Delivery.Status
CASE = {"id": 3, "status": "open"}


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_two_failures_then_success_at_the_backoff_times(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_OPENED, CASE)
    receiver.plan = [500, 500, 200]
    t0 = clock.now()

    assert delivery.deliver_due(t0) == {"retry": 1}
    stored = Delivery.objects.get()
    assert stored.next_attempt_at == t0 + seconds(30)
    assert delivery.deliver_due(t0 + seconds(29)) == {}  # not before its time
    assert delivery.deliver_due(t0 + seconds(30)) == {"retry": 1}
    stored.refresh_from_db()
    assert stored.next_attempt_at == t0 + seconds(30 + 120)
    assert delivery.deliver_due(t0 + seconds(149)) == {}
    assert delivery.deliver_due(t0 + seconds(150)) == {"delivered": 1}
    assert delivery.deliver_due(t0 + dt.timedelta(days=3)) == {}  # delivered once, done

    assert len(receiver.received) == 3
    assert len({body for _, body in receiver.received}) == 1  # the same bytes each time
    assert len({h["X-Cxloop-Event-Id"] for h, _ in receiver.received}) == 1
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.last_status_code, stored.last_error) == (
        Status.DELIVERED, 3, 200, "",
    )  # fmt: skip
    assert stored.delivered_at is not None
    log = list(DeliveryAttempt.objects.filter(delivery=stored).order_by("at", "pk"))
    assert [a.status_code for a in log] == [500, 500, 200]
    assert all(a.error == "" and a.duration_ms >= 0 for a in log)


def test_given_up_after_the_last_wait(workspace: Workspace, receiver: Receiver) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_UPDATED, CASE)
    receiver.default = 503
    at = clock.now()
    waits = []
    outcomes = []
    for _ in range(10):
        outcomes.append(delivery.deliver_due(at))
        stored = Delivery.objects.get()
        if stored.status != Status.PENDING:
            break
        waits.append(round((stored.next_attempt_at - at).total_seconds()))
        at = stored.next_attempt_at

    assert waits == list(delivery.BACKOFF)
    assert outcomes[-1] == {"failed": 1}
    assert (stored.status, stored.attempts, stored.last_error) == (Status.FAILED, 7, "HTTP 503")
    assert len(receiver.received) == 7
    assert DeliveryAttempt.objects.filter(delivery=stored).count() == 7
    assert delivery.deliver_due(at + dt.timedelta(days=30)) == {}


def test_no_answer_is_logged_by_its_kind_never_with_the_url(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on this port: the connection is refused.
    hook(workspace, f"http://127.0.0.1:{free_port()}/hook?token=TOPSECRET")
    events.emit(workspace.pk, events.CASE_OPENED, {"customer_email": "ana@example.com"})
    at = clock.now()
    caplog.set_level(logging.DEBUG)

    for _ in range(len(delivery.BACKOFF) + 1):
        delivery.deliver_due(at)
        at += dt.timedelta(days=2)

    stored = Delivery.objects.get()
    assert (stored.status, stored.last_status_code, stored.last_error) == (
        Status.FAILED, None, "ConnectionError",
    )  # fmt: skip
    assert set(DeliveryAttempt.objects.values_list("status_code", "error")) == {
        (None, "ConnectionError")
    }
    assert "given up" in caplog.text
    assert "TOPSECRET" not in caplog.text and "ana@example.com" not in caplog.text


def test_a_redirect_is_a_failure_not_followed(workspace: Workspace, receiver: Receiver) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_OPENED, CASE)
    receiver.plan = [302]

    assert delivery.deliver_due() == {"retry": 1}
    assert len(receiver.received) == 1
    assert Delivery.objects.get().last_error == "HTTP 302"


def test_after_a_failure_the_endpoints_later_events_wait_without_an_attempt(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    events.emit_many(workspace.pk, events.CASE_UPDATED, [{"n": 1}, {"n": 2}, {"n": 3}])
    receiver.plan = [502]
    now = clock.now()

    assert delivery.deliver_due(now) == {"retry": 1, "deferred": 2}
    assert len(receiver.received) == 1  # a receiver that is down costs one request
    assert list(Delivery.objects.order_by("pk").values_list("attempts", flat=True)) == [1, 0, 0]
    assert DeliveryAttempt.objects.count() == 1

    # 30 s later the first one's retry is due, and the others after it, in order.
    assert delivery.deliver_due(now + seconds(30)) == {"delivered": 3}
    assert [b["data"]["n"] for b in receiver.bodies()] == [1, 1, 2, 3]
