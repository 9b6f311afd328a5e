"""The batch ingestion contract: exact counts, per-item errors, idempotency."""

from __future__ import annotations

from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.customers.services import upsert_customers
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Employee, Region

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(workspace: Workspace) -> None:
    region = Region.objects.create(workspace=workspace, code="R1", name="Centru")
    branch = Branch.objects.create(workspace=workspace, code="B01", name="Chișinău", region=region)
    Employee.objects.create(workspace=workspace, code="E1", name="Ion Rusu", branch=branch)
    upsert_customers(workspace, [{"external_id": f"C{i}"} for i in range(1, 4)])


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "source": "crm",
        "external_id": f"I{n}",
        "customer": "C1",
        "type": "store_visit",
        "occurred_at": "2026-10-01T09:30:00+03:00",
        **extra,
    }


def test_it_accepts_a_batch_and_stores_every_field(
    api: Any, org: None, workspace: Workspace
) -> None:
    items = [item(1, branch="B01", employee="E1", attributes={"till": 3}), item(2, customer="C2")]

    response = api.post("/interactions/batch", {"items": items})

    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": []}
    stored = Interaction.objects.get(workspace=workspace, external_id="I1")
    assert stored.branch is not None and stored.branch.code == "B01"
    assert stored.employee is not None and stored.employee.code == "E1"
    assert stored.customer.external_id == "C1"
    assert stored.attributes == {"till": 3}
    assert stored.occurred_at.isoformat() == "2026-10-01T06:30:00+00:00"


def test_the_same_batch_twice_is_all_duplicates_and_changes_nothing(api: Any, org: None) -> None:
    items = [item(n) for n in range(5)]
    api.post("/interactions/batch", {"items": items})
    before = list(Interaction.objects.order_by("pk").values())

    again = [item(n, type="call") for n in range(5)]
    response = api.post("/interactions/batch", {"items": again})

    assert response.json() == {"accepted": 0, "duplicates": 5, "rejected": 0, "errors": []}
    assert list(Interaction.objects.order_by("pk").values()) == before


def test_a_repeated_item_inside_one_batch_counts_as_a_duplicate(api: Any, org: None) -> None:
    response = api.post("/interactions/batch", {"items": [item(1), item(1), item(2)]})

    assert response.json()["accepted"] == 2
    assert response.json()["duplicates"] == 1
    assert Interaction.objects.count() == 2


def test_bad_items_are_reported_by_index_and_good_ones_still_land(api: Any, org: None) -> None:
    items = [
        item(1),
        item(2, customer="C404"),
        {"source": "crm", "external_id": "I3"},
        item(4, occurred_at="yesterday"),
        "not an object",
        item(6, branch="B99", employee="E1"),
        item(7, colour="blue"),
        item(8),
    ]

    body = api.post("/interactions/batch", {"items": items}).json()

    assert body["accepted"] == 2
    assert body["rejected"] == 6
    assert body["duplicates"] == 0
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert errors[1] == {"customer": ["unknown customer external_id 'C404'"]}
    assert set(errors[2]) == {"customer", "type", "occurred_at"}
    assert "occurred_at" in errors[3]
    assert errors[4] == {"__all__": ["an item must be a JSON object"]}
    assert errors[5] == {"branch": ["unknown branch code 'B99'"]}
    assert errors[6] == {"colour": ["unknown field"]}
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"I1", "I8"}


def test_only_the_five_fields_are_required(api: Any, org: None) -> None:
    body = api.post("/interactions/batch", {"items": [item(1)]}).json()
    assert body["accepted"] == 1
    stored = Interaction.objects.get()
    assert stored.branch is None and stored.touchpoint is None and stored.attributes == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [("occurred_at", "2999-01-01T00:00:00Z"), ("type", "Store Visit!"), ("source", ""),
     ("external_id", "x" * 129), ("attributes", [1, 2])],
)  # fmt: skip
def test_each_invalid_value_is_rejected_with_its_field(
    api: Any, org: None, field: str, value: Any
) -> None:
    body = api.post("/interactions/batch", {"items": [item(1, **{field: value})]}).json()
    assert body["rejected"] == 1
    assert field in body["errors"][0]["errors"]
    assert Interaction.objects.count() == 0


def test_a_time_without_offset_is_read_in_the_workspace_time_zone(
    api: Any, org: None, workspace: Workspace
) -> None:
    workspace.time_zone = "Europe/Chisinau"
    workspace.save()
    api.post("/interactions/batch", {"items": [item(1, occurred_at="2026-07-01T12:00:00")]})
    assert Interaction.objects.get().occurred_at.isoformat() == "2026-07-01T09:00:00+00:00"


def test_more_than_ten_thousand_items_is_refused_whole(api: Any, org: None) -> None:
    response = api.post("/interactions/batch", {"items": [item(n) for n in range(10_001)]})
    assert response.status_code == 413
    assert "10,000" in response.json()["detail"]
    assert Interaction.objects.count() == 0


def test_exactly_ten_thousand_items_are_taken(api: Any, org: None) -> None:
    body = api.post("/interactions/batch", {"items": [item(n) for n in range(10_000)]}).json()
    assert body["accepted"] == 10_000
    assert Interaction.objects.count() == 10_000


@pytest.mark.parametrize(
    ("body", "status"),
    [("{not json", 400), ('{"items": 5}', 422), ("[]", 422), ('{"things": []}', 422), ("", 422)],
)
def test_malformed_bodies_get_a_clear_4xx(api: Any, org: None, body: str, status: int) -> None:
    response = api.post("/interactions/batch", body)
    assert response.status_code == status
    assert response.json()["detail"]


def test_an_oversize_body_gets_413(api: Any, org: None, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/interactions/batch", {"items": [item(n) for n in range(50)]})
    assert response.status_code == 413
    assert Interaction.objects.count() == 0


def test_blank_references_mean_none_and_words_are_normalised(api: Any, org: None) -> None:
    sent = item(1, source=" CRM ", type="Store_Visit", branch="", employee=None, product="")
    body = api.post("/interactions/batch", {"items": [sent]}).json()
    assert body["accepted"] == 1, body
    stored = Interaction.objects.get()
    assert (stored.source, stored.type, stored.branch_id, stored.product_id) == (
        "crm",
        "store_visit",
        None,
        None,
    )


def test_a_bad_code_is_explained_once_under_its_own_field(api: Any, org: None) -> None:
    body = api.post("/interactions/batch", {"items": [item(1, branch="B 01", channel=7)]}).json()
    errors = body["errors"][0]["errors"]
    assert errors["branch"] == [
        "must be 1-128 letters, digits or _ . : / @ -, starting with a letter or digit"
    ]
    assert errors["channel"] == ["Input should be a valid string"]
