"""Whatever JSON arrives, the API answers 2xx or a clear 4xx, never a 500, and loses nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.accounts.models import Workspace
from cxloop.customers.services import upsert_customers
from cxloop.interactions.models import Interaction

pytestmark = pytest.mark.django_db

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
items = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "source": st.just("crm"),
            "external_id": st.text(min_size=1, max_size=8),
            "customer": st.sampled_from(["C1", "C2", "nope"]),
            "type": st.just("call"),
            "occurred_at": st.sampled_from(["2026-01-01T10:00:00Z", "2026-02-30", "x", ""]),
        },
        optional={name: json_values for name in ("branch", "attributes", "employee", "extra")},
    ),
)


@pytest.fixture
def ready(workspace: Workspace) -> None:
    upsert_customers(workspace, [{"external_id": "C1"}, {"external_id": "C2"}])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(items, max_size=6))
def test_any_batch_is_answered_exactly(api: Any, ready: None, batch: list[Any]) -> None:
    before = Interaction.objects.count()
    response = api.post("/interactions/batch", {"items": batch})

    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] + body["duplicates"] + body["rejected"] == len(batch)
    assert [e["index"] for e in body["errors"]] == sorted(e["index"] for e in body["errors"])
    assert len(body["errors"]) == body["rejected"]
    assert Interaction.objects.count() == before + body["accepted"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_values)
def test_any_json_body_gets_a_json_answer_below_500(api: Any, ready: None, body: Any) -> None:
    for path in ("/interactions", "/interactions/batch", "/customers", "/customers/batch"):
        response = api.post(path, json.dumps(body))
        assert response.status_code < 500, (path, body)
        assert isinstance(response.json(), dict)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=64))
def test_any_bytes_get_a_4xx(api: Any, ready: None, raw: bytes) -> None:
    response = api.client.post(
        "/api/v1/interactions/batch", raw, content_type="application/json",
        headers={"Authorization": f"Bearer {api.key}"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/csv", ""])
def test_a_body_that_is_not_json_gets_a_4xx(api: Any, ready: None, content_type: str) -> None:
    response = api.client.post(
        "/api/v1/interactions/batch", "items=1", content_type=content_type,
        headers={"Authorization": f"Bearer {api.key}"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    assert Interaction.objects.count() == 0
