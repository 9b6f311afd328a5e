"""``response.created``: once per new response, answered on the survey page or imported."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys import importing
from cxloop.surveys.api import RESPONSE_FIELDS, serialise_response
from cxloop.surveys.models import Invitation, Response, Survey
from cxloop.surveys.responses import record
from cxloop.surveys.tests.factories import make_customer, make_survey
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    return make_survey(workspace, "after-visit")


def invite(workspace: Workspace, survey: Survey, *, is_test: bool = False) -> Invitation:
    customer = make_customer(workspace, "C1")
    now = clock.now()
    return Invitation.objects.create(
        workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
        language="ro", scheduled_for=now, expires_at=now + dt.timedelta(days=7), is_test=is_test,
    )  # fmt: skip


def api_view(response: Response) -> dict[str, Any]:
    return serialise_response(
        Response.objects.filter(pk=response.pk).values(*RESPONSE_FIELDS).get()
    )


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": f"K{n}",
        "survey": "after-visit",
        "customer": "C1",
        "score": n % 11,
        "answered_at": "2026-10-01T09:30:00+03:00",
        **extra,
    }


def test_a_page_answer_sends_response_created_once(
    workspace: Workspace, survey: Survey, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    hook(workspace, receiver.url, events.RESPONSE_CREATED)
    invitation = invite(workspace, survey)

    with django_capture_on_commit_callbacks(execute=True):
        response = record(invitation, score=9)
    with django_capture_on_commit_callbacks(execute=True):
        record(invitation, comment="Fast and friendly")  # a change, not a new response

    assert delivery.deliver_due() == {"delivered": 1}
    (body,) = receiver.bodies()
    assert body["type"] == "response.created"
    assert body["workspace"] == "acme"
    # JSON-equal to what GET /api/v1/responses shows for it at the time of the answer.
    shown = api_view(response)
    assert body["data"]["external_id"] == response.external_id
    assert body["data"]["score"] == 9 and body["data"]["comment"] == ""
    assert {k: v for k, v in body["data"].items() if k not in ("comment", "updated_at")} == {
        k: v for k, v in json.loads(json.dumps(shown)).items() if k not in ("comment", "updated_at")
    }


def test_a_test_answer_sends_nothing(
    workspace: Workspace, survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    hook(workspace, "https://crm.example.com/hook", events.RESPONSE_CREATED)

    with django_capture_on_commit_callbacks(execute=True):
        record(invite(workspace, survey, is_test=True), score=9)

    assert not Delivery.objects.exists()


def test_an_import_sends_one_event_per_response_inserted(
    workspace: Workspace, survey: Survey, receiver: Receiver
) -> None:
    hook(workspace, receiver.url, events.RESPONSE_CREATED)
    make_customer(workspace, "C1")
    batch = [item(1), item(2), item(1), item(3, survey="nope"), item(4, comment="Slow")]

    result = importing.import_responses(workspace, batch)

    assert (result.accepted, result.duplicates, result.rejected) == (3, 1, 1)
    assert delivery.deliver_due() == {"delivered": 3}
    bodies = receiver.bodies()
    assert [b["data"]["external_id"] for b in bodies] == ["K1", "K2", "K4"]
    assert len({b["id"] for b in bodies}) == 3
    stored = {r.external_id: r for r in Response.objects.all()}
    for body in bodies:
        assert body["data"] == json.loads(json.dumps(api_view(stored[body["data"]["external_id"]])))

    again = importing.import_responses(workspace, batch)  # a client retrying the whole batch

    assert again.duplicates == 4
    assert delivery.deliver_due() == {}
    assert len(receiver.received) == 3


def test_a_row_another_request_inserted_first_is_not_announced_twice(
    workspace: Workspace, survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests carry K1 at once: both pass the duplicate check, the other inserts it
    first, ON CONFLICT skips ours. Only the rows this import inserted are announced."""
    hook(workspace, "https://crm.example.com/hook", events.RESPONSE_CREATED)
    make_customer(workspace, "C1")
    importing.import_responses(workspace, [item(1)])
    assert Delivery.objects.count() == 1
    monkeypatch.setattr(importing, "_existing", lambda workspace, external_ids: set())

    result = importing.import_responses(workspace, [item(1), item(2)])

    assert (result.accepted, result.duplicates) == (1, 1)
    sent = [
        json.loads(b)["data"]["external_id"]
        for b in Delivery.objects.values_list("body", flat=True)
    ]
    assert sorted(sent) == ["K1", "K2"]


def test_an_import_does_no_webhook_work_when_nobody_listens(
    workspace: Workspace, survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook(workspace, "https://crm.example.com/hook", events.CASE_OPENED)  # not for responses
    make_customer(workspace, "C1")

    def fail(*args: Any) -> Any:
        raise AssertionError("responses read back although nobody listens")

    monkeypatch.setattr(events, "_response_rows", fail)

    assert importing.import_responses(workspace, [item(1), item(2)]).accepted == 2
    assert not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_import_sends_nothing(
    workspace: Workspace, survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows and their events share one transaction: no events, no rows. (A transactional
    test: the import's transaction is then a real one, as in production.)"""
    hook(workspace, "https://crm.example.com/hook", events.RESPONSE_CREATED)
    make_customer(workspace, "C1")

    def broken(workspace: Workspace, rows: Any) -> int:
        assert Response.objects.count() == 2  # inserted, not yet committed
        raise RuntimeError("disk full")

    monkeypatch.setattr(events, "emit_imported", broken)

    with pytest.raises(RuntimeError):
        importing.import_responses(workspace, [item(1), item(2)])
    assert not Response.objects.exists()
