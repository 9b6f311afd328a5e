"""The responses API: importing a batch (exact counts, per-item errors, idempotency) and
reading responses back with the same field names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Employee, Product
from cxloop.surveys import importing
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Response

from .factories import make_customer, make_org, make_survey

pytestmark = pytest.mark.django_db

CODES = ("branch", "employee", "product", "channel", "touchpoint")


def csat_definition() -> dict[str, Any]:
    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2
    return definition


@pytest.fixture
def world(workspace: Workspace) -> dict[str, Any]:
    """Two surveys (NPS in en/ru/ro, CSAT), an organisation slice, three customers and three
    interactions, two of them sharing the external_id V1 in different sources."""
    org = make_org(workspace)  # branch B01, channel store, touchpoint store-visit
    employee = Employee.objects.create(
        workspace=workspace, code="E1", name="Ion Rusu", branch=org["branch"]
    )
    product = Product.objects.create(workspace=workspace, code="MOB-L", name="Mobile L")
    customers = {n: make_customer(workspace, n) for n in ("C1", "C2", "C3")}
    make_survey(workspace, "after-visit")
    make_survey(workspace, "support-csat", definition=csat_definition())
    at = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)

    def interaction(source: str, external_id: str, customer: str, **refs: Any) -> Interaction:
        return Interaction.objects.create(
            workspace=workspace, source=source, external_id=external_id,
            customer=customers[customer], type="visit", occurred_at=at, **refs,
        )  # fmt: skip

    interaction(
        "crm", "V1", "C1", branch=org["branch"], employee=employee, product=product,
        channel=org["channel"], touchpoint=org["touchpoint"],
    )  # fmt: skip
    interaction("erp", "V1", "C2")
    interaction("crm", "V2", "C1", branch=org["branch"])
    return {**org, "employee": employee, "product": product, "customers": customers}


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": f"R{n}",
        "survey": "after-visit",
        "customer": "C1",
        "score": 9,
        "answered_at": f"2026-10-{n % 28 + 1:02d}T09:30:00+03:00",
        **extra,
    }


def listed(api: Any, **params: Any) -> list[dict[str, Any]]:
    """Every response the list gives, following the cursor."""
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        body = api.get("/responses", **params, **({"cursor": cursor} if cursor else {})).json()
        seen += body["items"]
        cursor = body["next"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


# --- import and read back -------------------------------------------------------------------


def test_an_imported_batch_reads_back_with_identical_fields(api: Any, world: Any) -> None:
    full = item(
        1, customer="C2", comment="Fast and friendly", language="ru",
        answers={"reasons": ["staff", "waiting"], "contact": {"may_contact": True,
                 "phone": "+37369123456"}},
        branch="B01", employee="E1", product="MOB-L", channel="store", touchpoint="store-visit",
    )  # fmt: skip
    bare = item(2, survey="support-csat", score=4)
    sent = [full, bare]

    answer = api.post("/responses/batch", {"items": sent})

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": []}
    got = {r["external_id"]: r for r in api.get("/responses").json()["items"]}
    assert {k: got["R1"][k] for k in full} == {**full, "answered_at": "2026-10-02T06:30:00Z"}
    assert got["R1"]["interaction"] is None
    assert got["R1"]["source"] == "import"
    assert got["R1"]["may_contact"] is True
    # What was left out reads back as its default: no comment, no answers, the survey's
    # default language, no references.
    assert got["R2"] == {
        **bare, "answered_at": "2026-10-03T06:30:00Z", "comment": "", "answers": {},
        "language": "en", "interaction": None, "source": "import", "may_contact": None,
        "updated_at": got["R2"]["updated_at"], **dict.fromkeys(CODES),
    }  # fmt: skip
    stored = Response.objects.get(external_id="R1")
    assert stored.invitation is None and stored.is_test is False
    assert stored.contact_phone == "+37369123456"


def test_an_interaction_gives_the_response_its_references(api: Any, world: Any) -> None:
    sent = [item(1, interaction="crm:V1", branch="B01"), item(2, interaction="V2")]

    body = api.post("/responses/batch", {"items": sent}).json()

    assert body["accepted"] == 2, body
    got = {r["external_id"]: r for r in api.get("/responses").json()["items"]}
    assert got["R1"]["interaction"] == "crm:V1"
    assert {k: got["R1"][k] for k in CODES} == {
        "branch": "B01", "employee": "E1", "product": "MOB-L", "channel": "store",
        "touchpoint": "store-visit",
    }  # fmt: skip
    assert got["R2"]["interaction"] == "crm:V2"  # a bare id one source alone has
    assert {k: got["R2"][k] for k in CODES} == {**dict.fromkeys(CODES), "branch": "B01"}


def test_interaction_problems_are_explained_per_item(api: Any, world: Any) -> None:
    items = [
        item(1, interaction="V1"),  # crm:V1 and erp:V1
        item(2, interaction="crm:V1", branch="B02"),
        item(3, interaction="crm:V2", employee="E1"),
        item(4, interaction="erp:V1"),  # C2's, not C1's
        item(5, interaction="crm:V404"),
        item(6, interaction="crm:"),
        item(7, interaction="CRM:V1", branch="B01"),
    ]

    body = api.post("/responses/batch", {"items": items}).json()

    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert errors[0] == {
        "interaction": [
            "external_id 'V1' is an interaction of several sources (crm:V1, erp:V1); "
            "write it as source:external_id"
        ]
    }
    assert errors[1] == {"branch": ["the interaction's branch is 'B01'; leave branch out or give the same"]}  # fmt: skip
    assert errors[2] == {"employee": ["the interaction has no employee; leave employee out"]}
    assert errors[3] == {"interaction": ["interaction erp:V1 is not customer 'C1''s"]}
    assert errors[4] == {"interaction": ["unknown interaction crm:V404"]}
    assert errors[5] == {
        "interaction": ["write the interaction as source:external_id, e.g. crm:V-778812"]
    }
    assert (body["accepted"], body["rejected"]) == (1, 6)
    assert Response.objects.get().interaction.external_id == "V1"  # type: ignore[union-attr]


# --- idempotency ----------------------------------------------------------------------------


def test_the_same_batch_twice_is_all_duplicates_and_changes_nothing(api: Any, world: Any) -> None:
    api.post("/responses/batch", {"items": [item(n) for n in range(5)]})
    before = list(Response.objects.order_by("pk").values())

    again = [item(n, score=0, comment="changed my mind") for n in range(5)]
    body = api.post("/responses/batch", {"items": again}).json()

    assert body == {"accepted": 0, "duplicates": 5, "rejected": 0, "errors": []}
    assert list(Response.objects.order_by("pk").values()) == before


def test_a_repeat_inside_one_batch_is_a_duplicate_and_the_first_wins(api: Any, world: Any) -> None:
    body = api.post("/responses/batch", {"items": [item(1), item(1, score=2), item(2)]}).json()

    assert body == {"accepted": 2, "duplicates": 1, "rejected": 0, "errors": []}
    assert Response.objects.get(external_id="R1").score == 9


def test_a_rejected_first_occurrence_does_not_make_the_second_a_duplicate(
    api: Any, world: Any
) -> None:
    body = api.post("/responses/batch", {"items": [item(1, score=11), item(1, score=3)]}).json()

    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 1)
    assert Response.objects.get().score == 3


def test_a_response_stored_meanwhile_by_another_request_counts_as_a_duplicate(
    api: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another request inserts R1 between this one's check and its insert: the check sees
    # nothing, ON CONFLICT skips the row, and the counts still tell the truth.
    api.post("/responses/batch", {"items": [item(1, score=5)]})
    monkeypatch.setattr(importing, "_existing", lambda workspace, ids: set())

    body = api.post("/responses/batch", {"items": [item(1), item(2)]}).json()

    assert body == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}
    assert Response.objects.get(external_id="R1").score == 5


def test_a_large_batch_is_inserted_in_chunks_and_counted_exactly(api: Any, world: Any) -> None:
    api.post("/responses/batch", {"items": [item(n) for n in range(0, 1200, 7)]})

    body = api.post("/responses/batch", {"items": [item(n) for n in range(1200)]}).json()

    already = len(range(0, 1200, 7))
    assert body == {"accepted": 1200 - already, "duplicates": already, "rejected": 0, "errors": []}
    assert Response.objects.count() == 1200


# --- bad items ------------------------------------------------------------------------------


def test_each_bad_item_gets_its_reasons_and_the_good_ones_still_land(api: Any, world: Any) -> None:
    items = [
        item(1),
        item(2, survey="nope"),
        item(3, customer="C404"),
        item(4, branch="B99"),
        item(5, score=11),
        item(6, survey="support-csat", score=6),
        item(7, answered_at="2026-10-01T09:30:00"),
        item(8, answers={"reasons": ["staff", "parking"]}),
        item(9, language="fr"),
        item(10, answered_at="2999-01-01T00:00:00Z"),
        {k: v for k, v in item(11).items() if k != "score"},
        "not an object",
        item(13, colour="blue"),
        item(14, answers={"nps": 3, "shoe_size": 42}),
        item(15, score="ten", customer="C404", channel="fax"),
        item(16, survey="support-csat", score="4"),
    ]

    body = api.post("/responses/batch", {"items": items}).json()

    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert errors == {
        1: {"survey": ["unknown survey code 'nope'"]},
        2: {"customer": ["unknown customer external_id 'C404'"]},
        3: {"branch": ["unknown branch code 'B99'"]},
        4: {"score": ["must be from 0 to 10"]},
        5: {"score": ["must be from 1 to 5"]},
        6: {"answered_at": [
            "needs a time-zone offset, e.g. 2026-10-01T09:30:00+03:00 or …Z"]},
        7: {"answers.reasons": ["unknown options: parking"]},
        8: {"language": ["the survey speaks en, ru, ro, not 'fr'"]},
        9: {"answered_at": ["is more than 24 hours in the future"]},
        10: {"score": ["Field required"]},
        11: {"__all__": ["an item must be a JSON object"]},
        12: {"colour": ["unknown field"]},
        13: {"answers.nps": ["give this as score/comment, not in answers"],
             "answers.shoe_size": ["no such question in this survey"]},
        14: {"customer": ["unknown customer external_id 'C404'"],
             "channel": ["unknown channel code 'fax'"],
             "score": ["must be a whole number from 0 to 10"]},
    }  # fmt: skip
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 14)
    assert set(Response.objects.values_list("external_id", flat=True)) == {"R1", "R16"}
    assert Response.objects.get(external_id="R16").score == 4


def test_answered_at_may_be_up_to_a_day_ahead_of_the_clock(
    api: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime(2026, 10, 10, 12, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(clock, "now", lambda: now)
    ahead = [
        item(1, answered_at="2026-10-11T12:00:00Z"),
        item(2, answered_at="2026-10-11T12:00:01Z"),
    ]

    body = api.post("/responses/batch", {"items": ahead}).json()

    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["index"] == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [("{not json", 400), ('{"items": 5}', 422), ("[]", 422), ('{"things": []}', 422)],
)
def test_malformed_bodies_get_a_clear_4xx(api: Any, world: Any, body: str, status: int) -> None:
    response = api.post("/responses/batch", body)
    assert response.status_code == status
    assert response.json()["detail"]


def test_more_than_ten_thousand_items_is_refused_whole(api: Any, world: Any) -> None:
    response = api.post("/responses/batch", {"items": [item(n) for n in range(10_001)]})
    assert response.status_code == 413
    assert "10,000" in response.json()["detail"]
    assert Response.objects.count() == 0


# --- the list -------------------------------------------------------------------------------


def test_pages_with_since_and_until_have_neither_gaps_nor_repeats(api: Any, world: Any) -> None:
    # Ten moments, three responses each: ties on answered_at are broken by id.
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    items = [
        item(n, answered_at=(start + dt.timedelta(hours=n // 3)).isoformat()) for n in range(30)
    ]
    api.post("/responses/batch", {"items": items[::-1]})

    got = listed(api, limit=4, since="2026-10-01T02:00:00Z", until="2026-10-01T08:00:00+00:00")

    ids = [r["external_id"] for r in got]
    assert sorted(ids) == sorted(f"R{n}" for n in range(6, 24))
    assert len(ids) == len(set(ids)) == 18
    times = [r["answered_at"] for r in got]
    assert times == sorted(times)
    assert times[0] == "2026-10-01T02:00:00Z" and times[-1] == "2026-10-01T07:00:00Z"


def test_a_time_without_offset_in_the_query_answers_422(api: Any, world: Any) -> None:
    response = api.get("/responses", since="2026-10-01T00:00:00", until="2026-10-02T00:00:00Z")
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "since": ["since needs a time-zone offset, e.g. 2026-10-01T00:00:00Z or +03:00"]
    }


def test_the_survey_filter_keeps_one_survey_and_refuses_an_unknown_code(
    api: Any, world: Any
) -> None:
    api.post(
        "/responses/batch", {"items": [item(1), item(2, survey="support-csat", score=3), item(3)]}
    )

    body = api.get("/responses", survey="support-csat").json()
    assert [r["external_id"] for r in body["items"]] == ["R2"]
    unknown = api.get("/responses", survey="suport-csat")
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == {"survey": ["no survey with code 'suport-csat'"]}


def test_test_responses_are_never_listed(api: Any, world: Any) -> None:
    api.post("/responses/batch", {"items": [item(1), item(2)]})
    Response.objects.filter(external_id="R2").update(is_test=True)

    assert [r["external_id"] for r in listed(api)] == ["R1"]


def test_listing_costs_the_same_few_queries_for_a_thousand_responses(
    api: Any, world: Any, django_assert_max_num_queries: Any
) -> None:
    items = [
        item(n, interaction="crm:V1") if n % 2 else item(n, branch="B01", employee="E1")
        for n in range(1000)
    ]
    api.post("/responses/batch", {"items": items})

    with django_assert_max_num_queries(3):  # the key, its last use, the page
        body = api.get("/responses", limit=1000).json()

    assert len(body["items"]) == 1000
    assert {r["branch"] for r in body["items"]} == {"B01"}


# --- references looked up in bulk, workspaces, scopes ---------------------------------------


def test_a_batch_of_500_costs_a_fixed_number_of_queries(
    api: Any, world: Any, django_assert_max_num_queries: Any
) -> None:
    items = []
    for n in range(500):
        kind = n % 4
        if kind == 0:
            items.append(item(n, interaction="crm:V1"))
        elif kind == 1:
            items.append(item(n, customer="C2", interaction="erp:V1"))
        elif kind == 2:
            items.append(item(n, customer="C3", branch="B01", employee="E1", product="MOB-L",
                              channel="store", touchpoint="store-visit"))  # fmt: skip
        else:
            items.append(item(n, survey="support-csat", score=5, customer=f"C{n % 3 + 1}"))

    # key, last use, surveys, stored ids, customers, interactions (one per source),
    # five kinds of codes, the insert and its savepoint, the webhook endpoints and the
    # analytics days to refresh (NPS and reason cells): independent of the batch's size.
    with django_assert_max_num_queries(18):
        body = api.post("/responses/batch", {"items": items}).json()

    assert body == {"accepted": 500, "duplicates": 0, "rejected": 0, "errors": []}


def test_another_workspace_sees_nothing_and_cannot_import_into_this_one(
    api: Any, world: Any, other_workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    api.post("/responses/batch", {"items": [item(1)]})
    other = make_api(other_workspace)
    make_customer(other_workspace, "C1")

    assert other.get("/responses").json() == {"items": [], "next": None}
    assert other.get("/responses", survey="after-visit").status_code == 422
    body = other.post("/responses/batch", {"items": [item(2)]}).json()
    assert body["errors"] == [{"index": 0, "errors": {"survey": ["unknown survey code 'after-visit'"]}}]  # fmt: skip
    # The same external_id in another workspace is another response, not a duplicate.
    make_survey(other_workspace, "after-visit")
    assert other.post("/responses/batch", {"items": [item(1)]}).json()["accepted"] == 1
    assert Response.objects.filter(workspace=other_workspace).count() == 1
    assert [r["external_id"] for r in api.get("/responses").json()["items"]] == ["R1"]


def test_the_key_needs_ingest_to_import_and_read_to_list(
    world: Any, workspace: Workspace, make_api: Callable[..., Any]
) -> None:
    reader = make_api(workspace, ("read",))
    writer = make_api(workspace, ("ingest",))

    refused = reader.post("/responses/batch", {"items": [item(1)]})
    assert refused.status_code == 403
    assert refused.json() == {"detail": "this API key lacks the 'ingest' scope"}
    assert Response.objects.count() == 0
    assert writer.post("/responses/batch", {"items": [item(1)]}).json()["accepted"] == 1
    assert writer.get("/responses").status_code == 403
    assert reader.get("/responses").json()["items"][0]["external_id"] == "R1"


# --- the contract other tools check ---------------------------------------------------------

CONTRACT = {
    "external_id", "survey", "customer", "score", "comment", "answers", "language",
    "answered_at", "branch", "employee", "product", "channel", "touchpoint",
}  # fmt: skip


def test_a_listed_response_has_exactly_the_contract_fields_and_a_few_more(
    api: Any, world: Any
) -> None:
    api.post("/responses/batch", {"items": [item(1, interaction="crm:V1")]})

    [got] = api.get("/responses").json()["items"]

    assert set(got) == CONTRACT | {"interaction", "source", "may_contact", "updated_at"}


def test_the_openapi_document_describes_the_import_item(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").json()

    batch = spec["paths"]["/api/v1/responses/batch"]["post"]
    content = batch["requestBody"]["content"]["application/json"]
    schema = content["schema"]["properties"]["items"]["items"]
    assert set(schema["properties"]) == CONTRACT | {"interaction"}
    assert set(schema["required"]) == {"external_id", "survey", "customer", "score", "answered_at"}
    assert schema["additionalProperties"] is False
    assert content["example"]["items"][0]["survey"] == "after-visit"
    listed = spec["components"]["schemas"]["ResponseOut"]["properties"]
    assert set(listed) >= CONTRACT
    for path in ("/api/v1/surveys", "/api/v1/unsubscribes", "/api/v1/decisions"):
        assert all(op["summary"] and op["description"] for op in spec["paths"][path].values())
