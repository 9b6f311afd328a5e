"""Survey configuration by API: the web's validation and audit, through a key with `admin`."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Survey

from .factories import make_survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(workspace: Workspace, make_api: Callable[..., Any]) -> Any:
    return make_api(workspace, ("admin",))


def put(api: Any, path: str, body: Any) -> Any:
    return api.client.put(
        f"/api/v1{path}", json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {api.key}"},
    )  # fmt: skip


def body(**changes: Any) -> dict[str, Any]:
    return {
        "code": "after-visit",
        "name": "After the store visit",
        "kind": "transactional",
        "definition": default_definition("Acme"),
        "rules": {"touchpoints": ["store-visit"], "quiet_period_days": 14},
        **changes,
    }


def test_creating_a_survey_answers_it_as_stored_with_defaults_and_its_link(
    admin: Any, workspace: Workspace
) -> None:
    response = admin.post("/surveys", body())

    assert response.status_code == 201
    got = response.json()
    stored = Survey.objects.get(workspace=workspace, code="after-visit")
    assert got["public_link"] == f"{settings.SITE_URL}/s/p/{stored.public_code}"
    assert (got["code"], got["name"], got["kind"], got["is_active"]) == (
        "after-visit", "After the store visit", "transactional", True,
    )  # fmt: skip
    # Defaults filled in: those left out are there, those given kept.
    assert got["rules"]["quiet_period_days"] == 14
    assert got["rules"]["expiry_days"] == 14
    assert got["rules"]["send_window"] == {"start": "09:00:00", "end": "20:00:00"}
    assert got["definition"]["questions"][0]["required"] is True
    assert got["definition"]["questions"][1]["required"] is False
    assert got["definition"] == stored.definition and got["rules"] == stored.rules


def test_creating_and_replacing_are_audited_with_the_key(admin: Any, workspace: Workspace) -> None:
    admin.post("/surveys", body())
    put(admin, "/surveys/after-visit", body(name="After a visit", is_active=False))

    entries = list(
        AuditLog.objects.filter(workspace=workspace, action__startswith="survey.")
        .order_by("pk")
        .values("action", "via", "api_key__prefix", "object_repr", "changes")
    )
    assert [(e["action"], e["via"], e["api_key__prefix"]) for e in entries] == [
        ("survey.create", "api", admin.key[:12]),
        ("survey.update", "api", admin.key[:12]),
    ]
    assert entries[1]["changes"]["name"] == ["After the store visit", "After a visit"]
    assert entries[1]["changes"]["is_active"] == [True, False]


def test_an_unknown_placeholder_answers_422_under_the_text_s_path(admin: Any) -> None:
    definition = default_definition("Acme")
    definition["questions"][2]["text"]["en"] = "Why, {first_name}?"

    response = admin.post("/surveys", body(definition=definition))

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors["definition.questions.2.text"] == [
        "unknown placeholder {first_name}; use {company}, {branch}, {product}, {touchpoint}, "
        "{employee}"
    ]
    assert Survey.objects.count() == 0


def test_texts_missing_in_romanian_are_named_each(admin: Any) -> None:
    definition = default_definition("Acme")
    del definition["title"]["ro"]
    del definition["questions"][1]["options"][0]["text"]["ro"]

    errors = admin.post("/surveys", body(definition=definition)).json()["errors"]

    assert errors == {
        "definition": [
            "texts missing for some languages — title: ro; question reasons option staff: ro"
        ]
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "After Visit"}, "code"),
        ({"kind": "weekly"}, "kind"),
        ({"name": " "}, "name"),
        ({"rules": {"touchpoints": ["x"], "sampling_rate": 2}}, "rules.sampling_rate"),
        ({"rules": {}}, "rules"),  # a transactional survey needs a trigger
        ({"definition": {"languages": ["en"]}}, "definition.questions"),
        ({"definition": "nps please"}, "definition"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_each_invalid_field_answers_422_naming_it(
    admin: Any, changes: dict[str, Any], field: str
) -> None:
    response = admin.post("/surveys", body(**changes))

    assert response.status_code == 422
    assert field in response.json()["errors"], response.json()
    assert Survey.objects.count() == 0


def test_a_code_in_use_answers_422(admin: Any) -> None:
    admin.post("/surveys", body())
    response = admin.post("/surveys", body(name="Another"))
    assert response.status_code == 422
    assert response.json()["errors"] == {"code": ["another survey of this workspace has this code"]}
    assert Survey.objects.get().name == "After the store visit"


def test_replacing_changes_the_survey_and_an_invalid_body_changes_nothing(admin: Any) -> None:
    admin.post("/surveys", body())
    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2

    replaced = put(admin, "/surveys/after-visit", body(definition=definition, rules={
        "interaction_types": ["repair"]}))  # fmt: skip

    assert replaced.status_code == 200
    survey = Survey.objects.get()
    assert survey.definition["questions"][0]["type"] == "csat"
    assert survey.rules["touchpoints"] == [] and survey.rules["interaction_types"] == ["repair"]
    assert survey.rules["quiet_period_days"] == 30  # left out: the default again
    before = Survey.objects.values().get()

    broken = copy.deepcopy(definition)
    broken["questions"][0]["type"] = "stars"
    refused = put(admin, "/surveys/after-visit", body(definition=broken))

    assert refused.status_code == 422
    assert "definition.questions.0.type" in refused.json()["errors"]
    assert Survey.objects.values().get() == before


def test_replacing_with_another_code_renames_unless_it_is_taken(admin: Any) -> None:
    admin.post("/surveys", body())
    admin.post("/surveys", body(code="support"))

    taken = put(admin, "/surveys/after-visit", body(code="support"))
    renamed = put(admin, "/surveys/after-visit", body(code="store-visit"))

    assert taken.status_code == 422
    assert renamed.status_code == 200
    assert sorted(Survey.objects.values_list("code", flat=True)) == ["store-visit", "support"]


def test_lists_and_fetches_surveys_of_this_workspace_only(
    api: Any, workspace: Workspace, other_workspace: Workspace
) -> None:
    make_survey(workspace, "zeta")
    make_survey(workspace, "alpha")
    make_survey(other_workspace, "beta")

    listed = api.get("/surveys").json()

    assert [s["code"] for s in listed["items"]] == ["alpha", "zeta"]
    assert listed["next"] is None
    assert api.get("/surveys/alpha").json()["name"] == "Alpha"
    missing = api.get("/surveys/beta")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no survey with code 'beta'"}


def test_another_workspace_cannot_replace_a_survey_by_its_code(
    admin: Any, other_workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    admin.post("/surveys", body())
    outsider = make_api(other_workspace, ("admin",))

    response = put(outsider, "/surveys/after-visit", body(name="Mine now"))

    assert response.status_code == 404
    assert Survey.objects.get().name == "After the store visit"


@pytest.mark.parametrize("scopes", [("read",), ("ingest", "read")])
def test_changing_surveys_needs_the_admin_scope(
    workspace: Workspace, make_api: Callable[..., Any], scopes: tuple[str, ...]
) -> None:
    key = make_api(workspace, scopes)
    make_survey(workspace, "after-visit")

    created = key.post("/surveys", body(code="new"))
    replaced = put(key, "/surveys/after-visit", body(name="Changed"))

    assert created.status_code == replaced.status_code == 403
    assert created.json() == {"detail": "this API key lacks the 'admin' scope"}
    assert list(Survey.objects.values_list("code", "name")) == [("after-visit", "After Visit")]
    assert key.get("/surveys").status_code == 200


def test_reading_surveys_needs_the_read_scope(
    workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    assert make_api(workspace, ("ingest",)).get("/surveys").status_code == 403
