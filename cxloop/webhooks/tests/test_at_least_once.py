"""A delivery is claimed before it is posted: two heartbeats never post it at once; one that
dies after claiming lets it go again when the lease ends (at least once)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery

from .helpers import Receiver, hook

Status = Delivery.Status


@pytest.mark.django_db
def test_two_heartbeats_reading_the_same_due_rows_post_them_once(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    events.emit_many(workspace.pk, events.CASE_UPDATED, [{"n": 1}, {"n": 2}])
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    now = clock.now()

    mine = delivery._claim(ids, now)  # both read the same due ids; the first UPDATE wins
    theirs = delivery._claim(ids, now)

    assert [d.pk for d in mine] == ids
    assert theirs == []
    assert list(Delivery.objects.values_list("attempts", flat=True)) == [1, 1]


@pytest.mark.django_db
def test_a_claimed_delivery_waits_for_its_lease_then_goes_once(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})
    now = clock.now()
    (claimed,) = delivery._claim(list(Delivery.objects.values_list("pk", flat=True)), now)
    # ...and that heartbeat dies here, before posting or recording anything.

    assert delivery.deliver_due(now) == {}
    assert delivery.deliver_due(now + delivery.LEASE - dt.timedelta(seconds=1)) == {}
    assert receiver.received == []

    assert delivery.deliver_due(now + delivery.LEASE) == {"delivered": 1}
    assert delivery.deliver_due(now + delivery.LEASE + dt.timedelta(hours=1)) == {}
    assert len(receiver.received) == 1
    stored = Delivery.objects.get()
    assert (stored.status, stored.attempts) == (Status.DELIVERED, 2)
    assert stored.claim != claimed.claim


@pytest.mark.django_db
def test_a_late_heartbeat_cannot_record_over_the_one_holding_the_claim(
    workspace: Workspace, receiver: Receiver
) -> None:
    """The first heartbeat outlived its lease; the second took the delivery and delivered it.
    The first's failure, recorded late, changes nothing but the log."""
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})
    now = clock.now()
    ids = list(Delivery.objects.values_list("pk", flat=True))
    (stale,) = delivery._claim(ids, now)
    later = now + delivery.LEASE
    assert delivery.deliver_due(later) == {"delivered": 1}

    attempt = delivery.Attempt(stale, at=now, status=500)
    delivery._record(attempt, now)

    stored = Delivery.objects.get()
    assert (stored.status, stored.last_status_code) == (Status.DELIVERED, 200)


@pytest.mark.django_db(transaction=True)
def test_heartbeats_racing_in_threads_post_each_delivery_once(
    workspace: Workspace, receiver: Receiver
) -> None:
    if connection.vendor != "postgresql":
        # The in-memory SQLite test database locks a table per writer ("database table is
        # locked"), whatever busy_timeout says; the claim is the same SQL on both.
        pytest.skip("a race of connections needs PostgreSQL")
    hook(workspace, receiver.url)
    events.emit_many(workspace.pk, events.CASE_UPDATED, [{"n": n} for n in range(40)])
    now = clock.now()
    start = threading.Barrier(4)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def heartbeat() -> None:
        try:
            start.wait()
            results.append(delivery.deliver_due(now))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=heartbeat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r.get("delivered", 0) for r in results) == 40
    assert len(receiver.received) == 40
    assert sorted(b["data"]["n"] for b in receiver.bodies()) == list(range(40))
