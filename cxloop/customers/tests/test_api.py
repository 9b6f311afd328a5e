"""Upserting customers: normalisation, merge rules, counts and errors."""

from __future__ import annotations

from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.customers.models import Account, Customer

pytestmark = pytest.mark.django_db


def test_creating_a_customer_normalises_phone_and_email(api: Any) -> None:
    response = api.post("/customers", {
        "external_id": "C1", "name": "Ana Popescu", "email": "Ana.Popescu@Example.COM",
        "phone": "+373 (69) 12-34-56", "language": "RO", "time_zone": "Europe/Chisinau",
        "segment": "premium", "consent": {"email": True, "sms": False},
    })  # fmt: skip

    assert response.status_code == 201
    body = response.json()
    assert body["phone"] == "+37369123456"
    assert body["email"] == "Ana.Popescu@example.com"
    assert body["language"] == "ro"
    assert body["consent"] == {"email": True, "sms": False}


def test_a_local_number_is_read_in_the_workspace_phone_region(
    api: Any, workspace: Workspace
) -> None:
    assert api.post("/customers", {"external_id": "C1", "phone": "069123456"}).status_code == 422
    workspace.phone_region = "MD"
    workspace.save()
    response = api.post("/customers", {"external_id": "C1", "phone": "069123456"})
    assert response.status_code == 201
    assert response.json()["phone"] == "+37369123456"


def test_upsert_overwrites_given_fields_keeps_others_and_merges_consent(api: Any) -> None:
    api.post("/customers", {"external_id": "C1", "name": "Ana", "segment": "mass",
                            "consent": {"email": True}, "attributes": {"tier": 1}})  # fmt: skip
    response = api.post("/customers", {"external_id": "C1", "segment": "premium",
                                       "consent": {"sms": True}, "attributes": {"vip": True}})  # fmt: skip

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Ana"
    assert body["segment"] == "premium"
    assert body["consent"] == {"email": True, "sms": True}
    assert body["attributes"] == {"tier": 1, "vip": True}
    assert Customer.objects.count() == 1


def test_consent_falls_back_to_the_workspace_default(workspace: Workspace, api: Any) -> None:
    api.post("/customers", {"external_id": "C1", "consent": {"sms": True}})
    customer = Customer.objects.get()
    assert customer.consents_to("sms") is True
    assert customer.consents_to("email") is True  # the default says e-mail yes
    workspace.default_consent = {"email": False}
    workspace.save()
    customer.refresh_from_db()
    assert customer.consents_to("email") is False
    assert customer.consents_to("whatsapp") is False


def test_batch_counts_created_updated_unchanged_and_rejected(api: Any) -> None:
    api.post("/customers", {"external_id": "C1", "name": "Ana"})
    api.post("/customers", {"external_id": "C2", "name": "Boris"})
    items = [
        {"external_id": "C1", "name": "Ana"},  # unchanged
        {"external_id": "C2", "name": "Борис"},  # updated
        {"external_id": "C3", "name": "Chris"},  # created
        {"external_id": "C4", "email": "not-an-email"},
        {"name": "no id"},
        {"external_id": "C5", "phone": "12"},
        {"external_id": "C6", "time_zone": "Mars/Olympus"},
        {"external_id": "C7", "is_b2b": "maybe"},
    ]

    body = api.post("/customers/batch", {"items": items}).json()

    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
    assert body["accepted"] == 3
    assert body["rejected"] == 5
    errors = {e["index"]: set(e["errors"]) for e in body["errors"]}
    assert errors == {3: {"email"}, 4: {"external_id"}, 5: {"phone"}, 6: {"time_zone"},
                      7: {"is_b2b"}}  # fmt: skip
    assert Customer.objects.get(external_id="C2").name == "Борис"
    assert not Customer.objects.filter(external_id__in=["C4", "C5", "C6", "C7"]).exists()


def test_b2b_contacts_share_their_account(api: Any) -> None:
    items = [
        {"external_id": "C1", "is_b2b": True, "account": "ACME", "account_name": "SRL Acme"},
        {"external_id": "C2", "is_b2b": True, "account": "ACME"},
    ]
    api.post("/customers/batch", {"items": items})

    account = Account.objects.get()
    assert account.name == "SRL Acme"
    assert set(account.contacts.values_list("external_id", flat=True)) == {"C1", "C2"}
    assert api.get("/customers/C2").json()["account"] == "ACME"


def test_the_customer_list_follows_updated_at(api: Any) -> None:
    api.post("/customers/batch", {"items": [{"external_id": f"C{n}"} for n in range(5)]})
    first = api.get("/customers", limit=2).json()
    assert len(first["items"]) == 2 and first["next"]
    rest = api.get("/customers", limit=10, cursor=first["next"]).json()
    ids = [c["external_id"] for c in first["items"] + rest["items"]]
    assert sorted(ids) == [f"C{n}" for n in range(5)]
    assert len(set(ids)) == 5


def test_bad_consent_shapes_are_rejected(api: Any) -> None:
    response = api.post("/customers", {"external_id": "C1", "consent": {"email": "sometimes"}})
    assert response.status_code == 422
    response = api.post("/customers", {"external_id": "C1", "consent": ["email"]})
    assert response.status_code == 422
    assert Customer.objects.count() == 0
