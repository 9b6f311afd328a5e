"""One interaction at a time, reading back, cursors, keys and workspaces."""

from __future__ import annotations

from typing import Any

import pytest

from cxloop.accounts.models import ApiKey, Workspace
from cxloop.accounts.services import revoke_api_key
from cxloop.customers.services import upsert_customers
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Channel

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def customers(workspace: Workspace) -> None:
    upsert_customers(workspace, [{"external_id": "C1"}, {"external_id": "C2"}])
    Channel.objects.create(workspace=workspace, code="store", name="Store")


def one(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"source": "crm", "external_id": f"I{n}", "customer": "C1", "type": "call",
            "occurred_at": f"2026-10-{n:02d}T10:00:00Z", **extra}  # fmt: skip


def test_posting_one_interaction_answers_201_with_it(api: Any) -> None:
    response = api.post("/interactions", one(channel="store", attributes={"duration_s": 95}))

    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "I1"
    assert body["customer"] == "C1"
    assert body["channel"] == "store"
    assert body["occurred_at"] == "2026-10-01T10:00:00Z"
    assert body["attributes"] == {"duration_s": 95}


def test_posting_it_again_answers_200_with_the_stored_one_unchanged(api: Any) -> None:
    api.post("/interactions", one())
    response = api.post("/interactions", one(type="store_visit"))

    assert response.status_code == 200
    assert response.json()["type"] == "call"
    assert Interaction.objects.count() == 1


def test_an_unknown_reference_answers_422_naming_the_code(api: Any) -> None:
    response = api.post("/interactions", one(channel="telegraph"))

    assert response.status_code == 422
    assert response.json()["errors"] == {"channel": ["unknown channel code 'telegraph'"]}
    assert Interaction.objects.count() == 0


def test_a_wrong_type_answers_422_with_the_field(api: Any) -> None:
    response = api.post("/interactions", one(occurred_at=12.5, attributes="x"))
    assert response.status_code == 422
    assert "attributes" in response.json()["errors"]


def test_the_list_pages_through_everything_once_in_time_order(api: Any) -> None:
    api.post("/interactions/batch", {"items": [one(n) for n in (5, 3, 9, 1, 7, 2, 8)]})
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.get("/interactions", **params).json()
        seen += [i["external_id"] for i in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == ["I1", "I2", "I3", "I5", "I7", "I8", "I9"]


def test_since_is_inclusive_and_until_exclusive(api: Any) -> None:
    api.post("/interactions/batch", {"items": [one(n) for n in range(1, 6)]})
    body = api.get(
        "/interactions", since="2026-10-02T10:00:00Z", until="2026-10-04T10:00:00Z"
    ).json()
    assert [i["external_id"] for i in body["items"]] == ["I2", "I3"]
    assert body["next"] is None


def test_list_items_use_the_input_field_names(api: Any) -> None:
    sent = one(channel="store", attributes={"a": 1})
    api.post("/interactions", sent)
    got = api.get("/interactions").json()["items"][0]
    assert {k: got[k] for k in sent} == {**sent, "occurred_at": "2026-10-01T10:00:00Z"}


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", ""])
def test_a_forged_cursor_answers_422(api: Any, cursor: str) -> None:
    response = api.get("/interactions", cursor=cursor)
    assert response.status_code in (200, 422)
    if cursor:
        assert response.status_code == 422
        assert "cursor" in response.json()["errors"]


def test_bad_query_values_answer_422(api: Any) -> None:
    assert api.get("/interactions", since="last tuesday").status_code == 422
    assert api.get("/interactions", limit=5000).status_code == 422


def test_fetching_one_by_source_and_id(api: Any) -> None:
    api.post("/interactions", one())
    assert api.get("/interactions/crm/I1").json()["external_id"] == "I1"
    missing = api.get("/interactions/crm/I404")
    assert missing.status_code == 404
    assert missing.json()["detail"]


def test_requests_without_a_valid_key_get_401(api: Any, client: Any) -> None:
    assert client.get("/api/v1/interactions").status_code == 401
    wrong = client.get("/api/v1/interactions", headers={"Authorization": "Bearer cxl_nope"})
    assert wrong.status_code == 401
    basic = client.get("/api/v1/interactions", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401
    assert wrong.json()["detail"]


def test_a_revoked_key_stops_working_at_once(api: Any) -> None:
    assert api.get("/interactions").status_code == 200
    revoke_api_key(ApiKey.objects.get(), via="cli")
    assert api.get("/interactions").status_code == 401


def test_scopes_limit_what_a_key_may_do(workspace: Workspace, make_api: Any) -> None:
    reader = make_api(workspace, scopes=("read",))
    ingester = make_api(workspace, scopes=("ingest",))
    admin = make_api(workspace, scopes=("admin",))

    assert reader.post("/interactions", one()).status_code == 403
    assert ingester.get("/interactions").status_code == 403
    assert ingester.post("/interactions", one()).status_code == 201
    assert reader.get("/interactions").status_code == 200
    assert admin.get("/interactions").status_code == 200
    assert Interaction.objects.count() == 1


def test_using_a_key_records_when_it_was_last_used(api: Any) -> None:
    key = ApiKey.objects.get()
    assert key.last_used_at is None
    api.get("/interactions")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_key_of_another_workspace_sees_nothing_of_this_one(
    api: Any, other_workspace: Workspace, make_api: Any
) -> None:
    api.post("/interactions", one())
    other = make_api(other_workspace)

    assert other.get("/interactions/crm/I1").status_code == 404
    assert other.get("/interactions").json() == {"items": [], "next": None}
    assert other.get("/customers/C1").status_code == 404
    # and its ingest cannot point at this workspace's customers
    response = other.post("/interactions", one(2))
    assert response.status_code == 422
    assert response.json()["errors"] == {"customer": ["unknown customer external_id 'C1'"]}


def test_the_same_external_id_may_exist_in_two_workspaces(
    api: Any, other_workspace: Workspace, make_api: Any
) -> None:
    upsert_customers(other_workspace, [{"external_id": "C1"}])
    other = make_api(other_workspace)
    assert api.post("/interactions", one()).status_code == 201
    assert other.post("/interactions", one()).status_code == 201
    assert Interaction.objects.count() == 2


def test_openapi_and_docs_are_served(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/interactions/batch" in spec["paths"]
    assert "/api/v1/customers/batch" in spec["paths"]
    body = spec["paths"]["/api/v1/interactions/batch"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/InteractionIn"}
    assert "InteractionIn" in spec["components"]["schemas"]
    assert client.get("/api/v1/docs").status_code == 200


def test_the_api_docs_load_no_script_from_another_host(client: Any) -> None:
    page = client.get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn." not in page and "https://" not in page.split("<body")[0]
