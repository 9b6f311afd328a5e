"""Outgoing webhooks in Delighted's format, posted to a real HTTP receiver on localhost."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import delighted  # imported first by conftest.py, which silences its FutureWarning
import pytest
from django.db import connections, transaction
from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.core import clock
from cxloop.delighted import webhooks
from cxloop.delighted.models import WebhookDelivery, WebhookEndpoint
from cxloop.surveys.models import Invitation, Response, Survey
from cxloop.surveys.responses import record
from cxloop.surveys.suppression import unsubscribe
from cxloop.surveys.tests.factories import make_customer, make_survey

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

Status = WebhookDelivery.Status


class Receiver:
    """A receiver written for Delighted: notes each POST, answers the next planned status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.plan: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                receiver.paths.append(self.path)
                self.send_response(receiver.plan.pop(0) if receiver.plan else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/delighted-hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    return make_survey(workspace, "after-visit")


def invite(workspace: Workspace, survey: Survey, *, is_test: bool = False) -> Invitation:
    customer = make_customer(workspace, "C1", email="ana@example.com", name="Ana Rusu")
    now = clock.now()
    return Invitation.objects.create(
        workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
        language="ro", scheduled_for=now, expires_at=now + dt.timedelta(days=7), is_test=is_test,
    )  # fmt: skip


def hook(workspace: Workspace, url: str, *types: str, **fields: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        workspace=workspace, url=url, event_types=list(types), secret="s3cret", **fields
    )


def answer(invitation: Invitation, capture: Any, **given: Any) -> Response:
    """Answer as the respondent does; the signal fires on commit, as in production."""
    with capture(execute=True):
        return record(invitation, **given)


def test_response_events_have_delighted_shape_and_signature(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint = hook(workspace, receiver.url)
    invitation = invite(workspace, survey)

    response = answer(invitation, django_capture_on_commit_callbacks, score=9)
    answer(invitation, django_capture_on_commit_callbacks, comment="Fast and friendly")
    assert webhooks.deliver_due(clock.now()) == {"delivered": 2}

    created, updated = receiver.bodies()
    assert set(created) == {"event_type", "event_id", "event_data"}
    assert created["event_type"] == "survey_response.created"
    assert updated["event_type"] == "survey_response.updated"
    assert created["event_id"] != updated["event_id"]
    data = created["event_data"]
    assert data["id"] == str(response.pk)
    assert data["score"] == 9 and data["comment"] is None
    assert data["person"]["email"] == "ana@example.com"  # expanded, as Delighted sent it
    assert data["person"]["name"] == "Ana Rusu"
    assert updated["event_data"]["comment"] == "Fast and friendly"
    headers, raw = receiver.received[0]
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Cxloop-Signature"] == expected
    stored = WebhookDelivery.objects.get(endpoint=endpoint, event_type="survey_response.created")
    assert created["event_id"] == stored.event_id.hex
    assert stored.status == Status.DELIVERED and stored.delivered_at is not None


def test_event_data_is_what_the_api_shows(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str], receiver: Receiver
) -> None:
    """A response added through the API reaches the receiver as ``GET survey_responses/{id}``
    with the person expanded shows it."""
    workspace, _ = delighted_workspace
    hook(workspace, receiver.url)
    customer = make_customer(workspace, "C1", email="ana@example.com", name="Ana Rusu")

    made = delighted.SurveyResponse.create(
        client=delighted_client, person=str(customer.pk), score=3, comment="Slow",
        person_properties={"Store": "Centru"},
    )  # fmt: skip
    webhooks.deliver_due(clock.now())

    (body,) = receiver.bodies()
    assert body["event_type"] == "survey_response.created"
    shown = delighted.SurveyResponse.retrieve(
        made["id"], client=delighted_client, expand=["person"]
    )
    assert body["event_data"] == dict(shown)
    assert body["event_data"]["person_properties"] == {"Store": "Centru"}


def test_a_failed_post_is_retried_later_with_the_same_event(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    hook(workspace, receiver.url)
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=10)
    receiver.plan = [500]
    now = clock.now()

    assert webhooks.deliver_due(now) == {"retry": 1}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        Status.PENDING, 1, "HTTP 500",
    )  # fmt: skip
    assert delivery.next_attempt_at == now + dt.timedelta(minutes=1)

    assert webhooks.deliver_due(now + dt.timedelta(seconds=30)) == {}  # not yet
    assert webhooks.deliver_due(now + dt.timedelta(seconds=61)) == {"delivered": 1}

    first, second = receiver.received
    assert first[1] == second[1]  # the same body: receivers de-duplicate by event_id
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 2)


def test_after_a_failure_the_endpoint_later_events_wait_their_turn(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    hook(workspace, receiver.url)
    invitation = invite(workspace, survey)
    answer(invitation, django_capture_on_commit_callbacks, score=10)
    answer(invitation, django_capture_on_commit_callbacks, comment="Great")
    receiver.plan = [502]
    now = clock.now()

    assert webhooks.deliver_due(now) == {"retry": 1, "deferred": 1}

    assert len(receiver.received) == 1  # a receiver that is down costs one request
    created = WebhookDelivery.objects.get(event_type="survey_response.created")
    updated = WebhookDelivery.objects.get(event_type="survey_response.updated")
    assert (created.attempts, updated.attempts) == (1, 0)
    assert updated.status == Status.PENDING
    assert webhooks.deliver_due(now + dt.timedelta(minutes=2)) == {"delivered": 2}
    assert [b["event_type"] for b in receiver.bodies()[1:]] == [
        "survey_response.created", "survey_response.updated",
    ]  # fmt: skip


def test_no_double_delivery(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    hook(workspace, receiver.url)
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)
    now = clock.now()

    webhooks.deliver_due(now)
    webhooks.deliver_due(now)
    webhooks.deliver_due(now + dt.timedelta(hours=7))

    assert len(receiver.received) == 1


def test_two_dispatchers_claiming_the_same_rows_post_once(
    workspace: Workspace, survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    hook(workspace, "http://127.0.0.1:9/unused")
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)
    ids = list(WebhookDelivery.objects.values_list("pk", flat=True))
    now = clock.now()

    mine = webhooks._claim(ids, now)  # both read the same due ids; the first UPDATE wins
    theirs = webhooks._claim(ids, now)

    assert [d.pk for d in mine] == ids
    assert theirs == []
    assert WebhookDelivery.objects.get().attempts == 1


def test_given_up_after_the_last_backoff(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    hook(workspace, receiver.url)
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)
    receiver.plan = [503] * 10
    at = clock.now()
    waits = []
    for _ in range(6):
        webhooks.deliver_due(at)
        delivery = WebhookDelivery.objects.get()
        if delivery.status != Status.PENDING:
            break
        waits.append(int((delivery.next_attempt_at - at).total_seconds()))
        at = delivery.next_attempt_at

    assert waits == [60, 300, 1800, 7200, 21600]
    assert (delivery.status, delivery.attempts) == (Status.FAILED, 6)
    webhooks.deliver_due(at + dt.timedelta(days=2))
    assert len(receiver.received) == 6


def test_unreachable_receiver_is_retried(
    workspace: Workspace, survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    closed = Receiver()
    url = closed.url
    closed.close()  # nothing listens there any more
    hook(workspace, url)
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)

    assert webhooks.deliver_due(clock.now()) == {"retry": 1}
    assert WebhookDelivery.objects.get().last_error == "ConnectionError"


def test_only_active_subscribed_endpoints_of_the_workspace_get_the_event(
    workspace: Workspace, other_workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    everything = hook(workspace, receiver.url + "/all")
    responses_only = hook(workspace, receiver.url + "/r", "survey_response.created")
    hook(workspace, receiver.url + "/u", "unsubscribe.created")
    hook(workspace, receiver.url + "/off", is_active=False)
    hook(other_workspace, receiver.url + "/elsewhere")

    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)

    assert {d.endpoint_id for d in WebhookDelivery.objects.all()} == {
        everything.pk, responses_only.pk,
    }  # fmt: skip
    event_ids = {d.event_id for d in WebhookDelivery.objects.all()}
    assert len(event_ids) == 1  # one event, whichever endpoint receives it
    webhooks.deliver_due(clock.now())
    assert sorted(receiver.paths) == ["/delighted-hook/all", "/delighted-hook/r"]


def test_test_responses_send_nothing(
    workspace: Workspace, survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    hook(workspace, "http://127.0.0.1:9/unused")
    answer(invite(workspace, survey, is_test=True), django_capture_on_commit_callbacks, score=8)

    assert not WebhookDelivery.objects.exists()


def test_unsubscribe_created(
    workspace: Workspace, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook(workspace, receiver.url)
    customer = make_customer(workspace, "C1", email="ana@example.com", name="Ana Rusu")

    with django_capture_on_commit_callbacks(execute=True):
        assert unsubscribe(customer, via="link", source="link")
    with django_capture_on_commit_callbacks(execute=True):
        assert not unsubscribe(customer, via="link", source="link")  # already: no event
    webhooks.deliver_due(clock.now())

    (body,) = receiver.bodies()
    assert body["event_type"] == "unsubscribe.created"
    data = body["event_data"]
    assert {k: data[k] for k in ("person_id", "email", "name")} == {
        "person_id": str(customer.pk), "email": "ana@example.com", "name": "Ana Rusu",
    }  # fmt: skip
    assert isinstance(data["unsubscribed_at"], int)
    assert abs(data["unsubscribed_at"] - clock.now().timestamp()) < 60


def test_a_switched_off_endpoint_keeps_its_deliveries_for_later(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint = hook(workspace, receiver.url)
    answer(invite(workspace, survey), django_capture_on_commit_callbacks, score=8)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)

    assert webhooks.deliver_due(clock.now()) == {}
    assert receiver.received == []

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=True)
    assert webhooks.deliver_due(clock.now()) == {"delivered": 1}


@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_post_each_event_once(workspace: Workspace, receiver: Receiver) -> None:
    """Two ``deliver_due`` at the same moment, on their own connections."""
    if connections["default"].vendor != "postgresql":
        pytest.skip("SQLite serialises writers: no race to lose")
    hook(workspace, receiver.url)
    for i in range(30):
        customer = make_customer(workspace, f"C{i}", email=f"p{i}@example.com")
        with transaction.atomic():
            webhooks.record(
                workspace.pk, webhooks.UNSUBSCRIBE_CREATED, webhooks.unsubscribe_data(customer)
            )
    start = threading.Barrier(2)
    now = clock.now()

    def dispatch() -> None:
        try:
            start.wait()
            webhooks.deliver_due(now)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    event_ids = [body["event_id"] for body in receiver.bodies()]
    assert len(event_ids) == 30
    assert len(set(event_ids)) == 30
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_admin_adds_an_endpoint_for_chosen_event_types(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    hook(other_workspace, "https://globex.example/hook")
    client = Client()
    client.force_login(make_user(workspace, Role.ADMIN))

    page = client.post(
        "/admin/delighted/webhookendpoint/add/",
        {"workspace": workspace.pk, "url": "https://crm.example/delighted",
         "event_types": ["survey_response.created", "unsubscribe.created"], "is_active": "on"},
    )  # fmt: skip

    assert page.status_code == 302, page.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get(workspace=workspace)
    assert endpoint.event_types == ["survey_response.created", "unsubscribe.created"]
    assert len(endpoint.secret) >= 32
    detail = client.get(f"/admin/delighted/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret in detail  # to be copied into the receiver
    listing = client.get("/admin/delighted/webhookendpoint/").content.decode()
    assert "crm.example" in listing and "globex.example" not in listing
    for page_url in ("/admin/delighted/webhookdelivery/", "/admin/delighted/autopilotconfig/add/",
                     "/admin/delighted/compatsettings/add/"):  # fmt: skip
        assert client.get(page_url).status_code == 200
