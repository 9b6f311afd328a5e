"""Unsubscribes by API, and the decisions that explain why a customer was (not) surveyed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.customers.models import Customer
from cxloop.surveys import rules
from cxloop.surveys.models import Decision, Invitation, Reason, Suppression

from .factories import make_customer, make_interaction, make_org, make_survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(workspace: Workspace) -> dict[str, Any]:
    return make_org(workspace)


def visit(workspace: Workspace, org: dict[str, Any], customer: Customer, ext: str) -> Any:
    return make_interaction(
        workspace, customer, ext, touchpoint=org["touchpoint"], branch=org["branch"]
    )


# --- unsubscribing --------------------------------------------------------------------------


def test_unsubscribing_withdraws_consent_and_is_audited_with_the_key(
    api: Any, workspace: Workspace
) -> None:
    customer = make_customer(workspace, "C1", consent={"email": True, "sms": True})

    response = api.post("/unsubscribes", {"customer": "C1"})

    assert response.status_code == 201
    got = response.json()
    assert (got["customer"], got["already"]) == ("C1", False)
    suppression = Suppression.objects.get(customer=customer, address="")
    assert got["unsubscribed_at"] == suppression.created_at.isoformat().replace("+00:00", "Z")
    assert suppression.source == "api"
    customer.refresh_from_db()
    assert customer.consent == {"email": False, "sms": False}
    entry = AuditLog.objects.get(workspace=workspace, action="customer.unsubscribe")
    assert (entry.via, entry.api_key.prefix, entry.object_id) == (  # type: ignore[union-attr]
        "api", api.key[:12], str(customer.pk),
    )  # fmt: skip
    assert entry.changes["source"] == "api"


def test_unsubscribing_again_answers_200_with_the_first_moment(
    api: Any, workspace: Workspace
) -> None:
    make_customer(workspace, "C1")
    first = api.post("/unsubscribes", {"customer": "C1"}).json()

    again = api.post("/unsubscribes", {"customer": "C1"})

    assert again.status_code == 200
    assert again.json() == {**first, "already": True}
    assert AuditLog.objects.filter(action="customer.unsubscribe").count() == 1


def test_an_unsubscribed_customer_is_skipped_by_later_invitations(
    api: Any, workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace)
    customer = make_customer(workspace, "C1")
    api.post("/unsubscribes", {"customer": "C1"})
    # The CRM sends consent again afterwards: the unsubscribe still wins.
    Customer.objects.filter(pk=customer.pk).update(consent={"email": True, "sms": True})
    interaction = visit(workspace, org, customer, "I1")

    rules.evaluate_new(workspace)

    decision = Decision.objects.get(interaction=interaction)
    assert (decision.outcome, decision.reason) == ("skipped", Reason.UNSUBSCRIBED)
    assert Invitation.objects.count() == 0


def test_an_unknown_customer_answers_404_and_changes_nothing(
    api: Any, workspace: Workspace, other_workspace: Workspace
) -> None:
    make_customer(other_workspace, "C1")

    response = api.post("/unsubscribes", {"customer": "C1"})

    assert response.status_code == 404
    assert response.json() == {"detail": "no customer with external_id 'C1'"}
    assert Suppression.objects.count() == 0
    assert Customer.objects.get().consent == {}


def test_a_body_without_customer_answers_422(api: Any) -> None:
    response = api.post("/unsubscribes", {"email": "ana@example.md"})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"customer", "email"}


def test_unsubscribing_needs_the_ingest_scope(
    workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    make_customer(workspace, "C1")
    response = make_api(workspace, ("read",)).post("/unsubscribes", {"customer": "C1"})
    assert response.status_code == 403
    assert Suppression.objects.count() == 0


def test_the_list_shows_each_unsubscribed_customer_once_by_time(
    api: Any, workspace: Workspace, other_workspace: Workspace
) -> None:
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    for n in (3, 0, 4, 1, 2):
        customer = make_customer(workspace, f"C{n}")
        api.post("/unsubscribes", {"customer": f"C{n}"})
        Suppression.objects.filter(customer=customer).update(
            created_at=start + dt.timedelta(days=n)
        )
    # A bounce is not an unsubscribe; another workspace's unsubscribe is not listed.
    Suppression.objects.create(
        workspace=workspace, delivery_channel="email", address="x@example.com", reason="bounced"
    )
    from cxloop.surveys.suppression import unsubscribe

    unsubscribe(make_customer(other_workspace, "C9"), via="cli", source="test")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, "since": "2026-10-02T00:00:00Z", **({"cursor": cursor} if cursor else {})}  # fmt: skip
        body = api.get("/unsubscribes", **params).json()
        seen += body["items"]
        if (cursor := body["next"]) is None:
            break

    assert seen == [
        {"customer": f"C{n}", "channel": "email", "created_at": f"2026-10-0{n + 1}T00:00:00Z",
         "source": "api"}
        for n in range(1, 5)
    ]  # fmt: skip


def test_listing_unsubscribes_needs_read_and_an_offset(
    workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    assert make_api(workspace, ("ingest",)).get("/unsubscribes").status_code == 403
    naive = make_api(workspace, ("read",)).get("/unsubscribes", since="2026-10-01T00:00:00")
    assert naive.status_code == 422
    assert "since" in naive.json()["errors"]


# --- why (not) surveyed ---------------------------------------------------------------------


def test_decisions_tell_why_a_customer_was_or_was_not_surveyed(
    api: Any, workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace)
    invited, unsubscribed = make_customer(workspace, "C1"), make_customer(workspace, "C2")
    api.post("/unsubscribes", {"customer": "C2"})
    visit(workspace, org, invited, "I1")
    visit(workspace, org, unsubscribed, "I2")
    rules.evaluate_new(workspace)

    skipped = api.get("/decisions", customer="C2").json()
    scheduled = api.get("/decisions", customer="C1").json()

    assert skipped == {
        "items": [
            {"survey": "after-visit", "interaction": "crm:I2", "outcome": "skipped",
             "reason": "unsubscribed", "detail": "the customer unsubscribed",
             "created_at": skipped["items"][0]["created_at"], "invitation_status": None}
        ],
        "next": None,
    }  # fmt: skip
    [decision] = scheduled["items"]
    assert (decision["outcome"], decision["reason"], decision["invitation_status"]) == (
        "scheduled", "matched", "scheduled",
    )  # fmt: skip
    assert decision["interaction"] == "crm:I1"


def test_decisions_page_by_time_and_filter_by_survey(
    api: Any, workspace: Workspace, org: dict[str, Any]
) -> None:
    first = make_survey(workspace, "after-visit")
    second = make_survey(workspace, "store-csat")
    customer = make_customer(workspace, "C1")
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    for n in range(6):
        Decision.objects.create(
            workspace=workspace, survey=first if n % 2 else second, customer=customer,
            outcome="skipped", reason="quiet_period", detail=f"d{n}",
            created_at=start + dt.timedelta(hours=n // 2),  # pairs share a moment
        )  # fmt: skip

    seen: list[str] = []
    cursor = None
    while True:
        params = {"customer": "C1", "limit": 4, **({"cursor": cursor} if cursor else {})}
        body = api.get("/decisions", **params).json()
        seen += [d["detail"] for d in body["items"]]
        if (cursor := body["next"]) is None:
            break
    only = api.get("/decisions", customer="C1", survey="after-visit").json()["items"]

    assert sorted(seen) == [f"d{n}" for n in range(6)] and len(seen) == 6
    assert [d["detail"] for d in only] == ["d1", "d3", "d5"]
    assert api.get("/decisions", customer="C1", survey="nope").status_code == 422


def test_decisions_need_a_known_customer_of_this_workspace(
    api: Any, other_workspace: Workspace
) -> None:
    theirs = make_customer(other_workspace, "C1")
    Decision.objects.create(
        workspace=other_workspace, survey=make_survey(other_workspace), customer=theirs,
        outcome="skipped", reason="no_consent",
    )  # fmt: skip

    missing = api.get("/decisions")
    unknown = api.get("/decisions", customer="C1")

    assert missing.status_code == 422
    assert missing.json()["errors"] == {"customer": ["Field required"]}
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no customer with external_id 'C1'"}


def test_decisions_need_the_read_scope(workspace: Workspace, make_api: Callable[..., Any]) -> None:
    make_customer(workspace, "C1")
    assert make_api(workspace, ("ingest",)).get("/decisions", customer="C1").status_code == 403
