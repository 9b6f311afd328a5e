"""``emit`` records deliveries in the caller's transaction, for the endpoints that want them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from cxloop.accounts.models import Workspace
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def never() -> dict[str, Any]:
    raise AssertionError("serialised although nobody listens")


def test_a_rolled_back_change_sends_nothing(workspace: Workspace, receiver: Receiver) -> None:
    hook(workspace, receiver.url)

    with pytest.raises(Boom), transaction.atomic():
        assert events.emit(workspace.pk, events.CASE_OPENED, {"id": 1}) == 1
        raise Boom

    assert not Delivery.objects.exists()
    assert delivery.deliver_due() == {}
    assert receiver.received == []


def test_a_committed_change_is_sent(workspace: Workspace, receiver: Receiver) -> None:
    hook(workspace, receiver.url)

    with transaction.atomic():
        events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})

    assert delivery.deliver_due() == {"delivered": 1}


def test_without_endpoints_nothing_is_recorded_nor_serialised(
    workspace: Workspace, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):  # who listens; nobody
        assert events.emit(workspace.pk, events.CASE_OPENED, never) == 0
    with django_assert_num_queries(1):
        assert events.emit_many(workspace.pk, events.CASE_OPENED, lambda: [never()]) == 0
    assert events.emit_many(workspace.pk, events.CASE_OPENED, [never, never]) == 0
    assert not Delivery.objects.exists()


def test_a_switched_off_endpoint_gets_no_new_events(workspace: Workspace) -> None:
    hook(workspace, "https://crm.example.com/hook", is_active=False)

    assert events.emit(workspace.pk, events.CASE_OPENED, never) == 0


def test_only_subscribed_endpoints_get_an_event(workspace: Workspace) -> None:
    cases = hook(workspace, "https://crm.example.com/cases", events.CASE_OPENED, events.CASE_CLOSED)
    everything = hook(workspace, "https://warehouse.example.com/all")
    responses = hook(workspace, "https://bi.example.com/r", events.RESPONSE_CREATED)

    assert events.emit(workspace.pk, events.CASE_OPENED, {"id": 1}) == 2
    assert events.emit(workspace.pk, events.CASE_UPDATED, {"id": 1}) == 1
    assert events.emit(workspace.pk, events.RESPONSE_CREATED, {"external_id": "R1"}) == 2

    def got(endpoint: Any) -> list[str]:
        return list(
            Delivery.objects.filter(endpoint=endpoint)
            .order_by("pk")
            .values_list("event_type", flat=True)
        )

    assert got(cases) == ["case.opened"]
    assert got(everything) == ["case.opened", "case.updated", "response.created"]
    assert got(responses) == ["response.created"]


def test_another_workspaces_endpoint_never_receives(
    workspace: Workspace, other_workspace: Workspace, receiver: Receiver
) -> None:
    hook(other_workspace, receiver.url)

    assert events.emit(workspace.pk, events.CASE_OPENED, never) == 0
    assert events.emit_many(workspace.pk, events.RESPONSE_CREATED, [never]) == 0
    assert delivery.deliver_due() == {}
    assert receiver.received == []


def test_emit_many_gives_each_event_its_id_shared_by_the_endpoints(workspace: Workspace) -> None:
    hook(workspace, "https://a.example.com/hook")
    hook(workspace, "https://b.example.com/hook")
    made: list[int] = []

    def data(n: int) -> Any:
        def make() -> dict[str, int]:
            made.append(n)
            return {"n": n}

        return make

    assert events.emit_many(workspace.pk, events.CASE_UPDATED, [data(1), {"n": 2}, data(3)]) == 6

    assert made == [1, 3]
    ids = Delivery.objects.values_list("event_id", flat=True)
    assert len(set(ids)) == 3
    by_event = {i: Delivery.objects.filter(event_id=i).count() for i in ids}
    assert set(by_event.values()) == {2}


def test_an_unknown_event_type_is_a_programming_error(workspace: Workspace) -> None:
    with pytest.raises(ValueError, match="unknown webhook event type"):
        events.emit(workspace.pk, "case.reopened", {})
    with pytest.raises(ValueError):
        events.emit(workspace.pk, events.PING, {})  # ping is for the test button only
