"""Survey responses and metrics, driven by the official ``delighted`` client over real HTTP.

What a script written for Delighted relies on: the fields and their types, paging with
``page``/``per_page``, ``since``/``until``, ``order``, ``expand[]=person``, ``save()`` (PUT),
the 401/422 errors the client turns into exceptions, and metrics that are cxloop's own
numbers. Plus what cxloop relies on: the responses are ordinary responses (cxloop's API lists
them, ``response_saved`` announces them) and a page costs the same few queries at any size.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import create_api_key, create_workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.delighted.models import CompatSettings, ResponseMeta, SurveyRequest
from cxloop.surveys import signals
from cxloop.surveys.definition import default_definition
from cxloop.surveys.metrics import nps_summary
from cxloop.surveys.models import Invitation, Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_customer, make_survey

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # Delighted's sunset notice on import
    import delighted
    from delighted.errors import AuthenticationError, GeneralAPIError, ResourceValidationError

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def survey_of(workspace: Workspace, code: str = "after-visit") -> Survey:
    return Survey.objects.get(workspace=workspace, code=code)


def stored(
    survey: Survey,
    score: int,
    at: dt.datetime,
    customer: Customer | None = None,
    **fields: Any,
) -> Response:
    """A response as cxloop stores one, however it came (web, e-mail, import)."""
    return Response.objects.create(
        workspace=survey.workspace,
        external_id=uuid.uuid4().hex,
        survey=survey,
        customer=customer,
        score=score,
        answered_at=at,
        source=ResponseSource.WEB,
        **fields,
    )


@pytest.fixture
def world(delighted_workspace: tuple[Workspace, str]) -> dict[str, Any]:
    workspace, raw = delighted_workspace
    return {
        "workspace": workspace,
        "raw": raw,
        "survey": survey_of(workspace),
        "ana": make_customer(workspace, "C1", name="Ana Popescu", email="ana@example.com"),
        "ion": make_customer(workspace, "C2", name="Ion Rusu", email="ion@example.com"),
    }


@pytest.fixture
def saved_events() -> Iterator[list[tuple[int, bool]]]:
    """(response id, created) for every ``response_saved`` sent while the test runs."""
    events: list[tuple[int, bool]] = []

    def receiver(sender: Any, response: Response, created: bool, **_: Any) -> None:
        events.append((response.pk, created))

    signals.response_saved.connect(receiver, weak=False, dispatch_uid="test_delighted_saved")
    try:
        yield events
    finally:
        signals.response_saved.disconnect(dispatch_uid="test_delighted_saved")


# --- POST, GET one, PUT ------------------------------------------------------------------------


def test_create_then_retrieve(delighted_client: delighted.Client, world: dict[str, Any]) -> None:
    ana = world["ana"]
    created = delighted.SurveyResponse.create(
        client=delighted_client,
        person=str(ana.pk),
        score=9,
        comment="  Fast and friendly ",
        person_properties={"plan": "pro", "country": "MD"},
    )
    assert isinstance(created, delighted.SurveyResponse)
    assert isinstance(created.id, str)
    assert created.person == str(ana.pk)
    assert (created.survey_type, created.score, created.comment) == ("nps", 9, "Fast and friendly")
    assert created.permalink.endswith(f"/surveys/responses/{created.id}")
    assert isinstance(created.created_at, int) and isinstance(created.updated_at, int)
    assert abs(created.created_at - ts(clock.now())) < 60
    assert created.person_properties == {"plan": "pro", "country": "MD"}
    assert (created.notes, created.tags, created.additional_answers) == ([], [], [])

    again = delighted.SurveyResponse.retrieve(created.id, client=delighted_client)
    assert dict(again) == dict(created)

    response = Response.objects.get(pk=int(created.id))
    assert response.survey == world["survey"]
    assert response.customer == ana
    assert response.invitation is None
    assert response.source == ResponseSource.IMPORT
    assert response.external_id.startswith("delighted-")
    assert response.language == "ro"  # the customer's, which the survey speaks
    assert ResponseMeta.objects.get(response=response).person_properties["plan"] == "pro"


def test_create_with_a_past_date_and_properties_by_either_name(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    created = delighted.SurveyResponse.create(
        client=delighted_client,
        person=world["ion"].pk,  # an integer works too
        score=3,
        created_at=ts(T0),
        properties={"source": "kiosk"},
    )
    assert created.created_at == ts(T0)
    assert created.comment is None
    assert created.person_properties == {"source": "kiosk"}
    assert Response.objects.get(pk=int(created.id)).answered_at == T0
    by_email = delighted.SurveyResponse.create(
        client=delighted_client, person_email="ION@example.com", score=10
    )
    assert by_email.person == str(world["ion"].pk)


def test_the_chosen_survey_is_fed(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    other = make_survey(world["workspace"], "relationship-nps")
    CompatSettings.objects.create(workspace=world["workspace"], survey=other)
    created = delighted.SurveyResponse.create(
        client=delighted_client, person=str(world["ana"].pk), score=10
    )
    assert Response.objects.get(pk=int(created.id)).survey == other


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"score": 11}, "score"),
        ({"score": -1}, "score"),
        ({"score": "ten"}, "score"),
        ({}, "score"),
        ({"score": 7, "person": "999999"}, "person"),
        ({"score": 7, "person": "9" * 30}, "person"),
        ({"score": 7, "person": "email:nobody@example.com"}, "person"),
        ({"score": 7, "person_properties": ["not", "an", "object"]}, "person_properties"),
        ({"score": 7, "created_at": "yesterday"}, "created_at"),
    ],
)
def test_invalid_creations_are_422(
    delighted_client: delighted.Client, world: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    params = {"person": str(world["ana"].pk), **params}
    with pytest.raises(ResourceValidationError) as caught:
        delighted.SurveyResponse.create(client=delighted_client, **params)
    assert caught.value.response.status_code == 422
    data = json.loads(caught.value.response.body)
    assert data["status"] == 422
    assert isinstance(data["message"], str) and data["message"]
    assert [e["field"] for e in data["errors"]] == [field]
    assert not Response.objects.exists()


def test_a_bad_key_is_401(world: dict[str, Any], live_server: Any) -> None:
    client = delighted.Client(
        api_key="cxl_not-a-key", api_base_url=live_server.url + "/delighted/v1/"
    )
    with pytest.raises(AuthenticationError):
        delighted.SurveyResponse.all(client=client)
    with pytest.raises(AuthenticationError):
        delighted.Metrics.retrieve(client=client)


def test_save_changes_comment_tags_and_updated_at(
    delighted_client: delighted.Client, world: dict[str, Any], saved_events: list[Any]
) -> None:
    created = delighted.SurveyResponse.create(
        client=delighted_client, person=str(world["ana"].pk), score=6, comment="Slow"
    )
    pk = int(created.id)
    Response.objects.filter(pk=pk).update(updated_at=T0)  # so that the bump shows in seconds

    response = delighted.SurveyResponse.retrieve(created.id, client=delighted_client)
    assert response.updated_at == ts(T0)
    response.comment = "Slow, but they called me back"
    response.tags = ["called-back", "vip"]
    response.notes = [{"text": "Called on Monday"}]
    response.score = 8
    response.permalink = "https://elsewhere.example/ignored"  # read-only: ignored
    saved = response.save(client=delighted_client)

    assert isinstance(saved, delighted.SurveyResponse)
    assert saved.comment == "Slow, but they called me back"
    assert saved.tags == ["called-back", "vip"]
    assert saved.notes == [{"text": "Called on Monday"}]
    assert saved.score == 8
    assert saved.updated_at > ts(T0)
    assert saved.created_at == created.created_at
    assert saved.permalink == created.permalink
    again = delighted.SurveyResponse.retrieve(created.id, client=delighted_client)
    assert (again.comment, again.tags, again.score) == (saved.comment, saved.tags, 8)
    assert saved_events == [(pk, True), (pk, False)]


def test_save_of_an_expanded_response_keeps_the_person_expanded(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    response = stored(world["survey"], 10, T0, world["ana"])
    fetched = delighted.SurveyResponse.retrieve(
        str(response.pk), client=delighted_client, expand=["person"]
    )
    assert isinstance(fetched.person, delighted.Person)
    fetched.tags = ["promoter"]
    saved = fetched.save(client=delighted_client)
    assert isinstance(saved.person, delighted.Person)
    assert saved.person.email == "ana@example.com"
    assert saved.tags == ["promoter"]


def test_save_rejects_an_invalid_score(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    response = stored(world["survey"], 10, T0, world["ana"])
    fetched = delighted.SurveyResponse.retrieve(str(response.pk), client=delighted_client)
    fetched.score = 12
    with pytest.raises(ResourceValidationError):
        fetched.save(client=delighted_client)
    response.refresh_from_db()
    assert response.score == 10


def test_other_workspaces_and_test_responses_are_not_found(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    elsewhere = create_workspace("globex", "Globex", via="cli")
    theirs = stored(make_survey(elsewhere, "after-visit"), 10, T0)
    test_one = stored(world["survey"], 10, T0, is_test=True)
    for pk in (theirs.pk, test_one.pk, 999999, "9" * 30):
        with pytest.raises(GeneralAPIError) as caught:
            delighted.SurveyResponse.retrieve(str(pk), client=delighted_client)
        assert caught.value.response.status_code == 404
    assert delighted.SurveyResponse.all(client=delighted_client) == []


# --- GET list ---------------------------------------------------------------------------------


def test_pages_since_until_and_order(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    survey = world["survey"]
    made = [stored(survey, i, T0 + dt.timedelta(hours=i), world["ana"]) for i in range(5)]
    ids = [str(r.pk) for r in made]

    def listed(**params: Any) -> list[str]:
        return [r.id for r in delighted.SurveyResponse.all(client=delighted_client, **params)]

    assert listed() == ids  # a GET with a body of {} (what the client sends without params)
    assert listed(per_page=2) == ids[:2]
    assert listed(per_page=2, page=2) == ids[2:4]
    assert listed(per_page=2, page=3) == ids[4:]
    assert listed(per_page=2, page=4) == []
    assert listed(order="desc", per_page=2) == ids[::-1][:2]
    # Inclusive on both ends, in whole seconds.
    assert (
        listed(since=ts(T0 + dt.timedelta(hours=1)), until=ts(T0 + dt.timedelta(hours=3)))
        == (ids[1:4])
    )
    assert listed(since=ts(T0 + dt.timedelta(hours=4))) == ids[4:]


def test_order_and_filters_by_update(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    survey = world["survey"]
    first = stored(survey, 9, T0, world["ana"])
    second = stored(survey, 7, T0 + dt.timedelta(hours=1), world["ion"])
    Response.objects.filter(pk=first.pk).update(updated_at=T0 + dt.timedelta(days=2))
    Response.objects.filter(pk=second.pk).update(updated_at=T0 + dt.timedelta(days=1))

    def listed(**params: Any) -> list[int]:
        return [int(r.id) for r in delighted.SurveyResponse.all(client=delighted_client, **params)]

    assert listed(order="asc:updated_at") == [second.pk, first.pk]
    assert listed(order="desc:updated_at") == [first.pk, second.pk]
    assert listed(updated_since=ts(T0 + dt.timedelta(days=2))) == [first.pk]
    assert listed(updated_until=ts(T0 + dt.timedelta(days=1))) == [second.pk]
    assert listed(person_id=str(world["ion"].pk)) == [second.pk]
    assert listed(person_email="ANA@example.com") == [first.pk]
    with pytest.raises(ResourceValidationError):
        listed(order="sideways")


def test_expand_person(delighted_client: delighted.Client, world: dict[str, Any]) -> None:
    stored(world["survey"], 10, T0, world["ana"])
    stored(world["survey"], 3, T0 + dt.timedelta(minutes=1))  # anonymous (public link)
    named, anonymous = delighted.SurveyResponse.all(client=delighted_client, expand=["person"])
    assert isinstance(named.person, delighted.Person)
    assert named.person.id == str(world["ana"].pk)
    assert (named.person.email, named.person.name) == ("ana@example.com", "Ana Popescu")
    assert anonymous.person is None
    plain = delighted.SurveyResponse.all(client=delighted_client)
    assert plain[0].person == str(world["ana"].pk)


def test_only_the_fed_survey_unless_another_is_named(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    other = make_survey(world["workspace"], "relationship-nps")
    ours = stored(world["survey"], 10, T0)
    theirs = stored(other, 2, T0)
    assert [int(r.id) for r in delighted.SurveyResponse.all(client=delighted_client)] == [ours.pk]
    for params in ({"survey": "relationship-nps"}, {"trend": str(other.pk)}):
        listed = delighted.SurveyResponse.all(client=delighted_client, **params)
        assert [int(r.id) for r in listed] == [theirs.pk]
    with pytest.raises(ResourceValidationError):
        delighted.SurveyResponse.all(client=delighted_client, trend="4242")


def test_additional_answers_in_delighted_shape(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    response = stored(
        world["survey"],
        4,
        T0,
        world["ana"],
        comment="Queue too long",
        language="en",
        answers={"reasons": ["waiting", "staff"], "contact": {"may_contact": True, "phone": ""}},
    )
    fetched = delighted.SurveyResponse.retrieve(str(response.pk), client=delighted_client)
    assert fetched.comment == "Queue too long"
    reasons, contact = fetched.additional_answers
    assert reasons["question"] == {
        "id": "reasons",
        "type": "select_many",
        "text": "What influenced your score most?",
    }
    assert reasons["value"] == {
        "free_response": None,
        "scale": None,
        "select_one": None,
        "select_many": [
            {"id": "waiting", "text": "Waiting time"},
            {"id": "staff", "text": "Staff"},
        ],
    }
    assert isinstance(reasons["id"], str)
    assert contact["question"]["type"] == "select_one"
    assert contact["value"]["select_one"] == {"id": "yes", "text": "Yes"}


def test_person_properties_of_the_survey_request(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    """A survey asked for with ``POST people`` answers with the properties given then."""
    workspace, survey, ana = world["workspace"], world["survey"], world["ana"]
    invitation = Invitation.objects.create(
        workspace=workspace,
        survey=survey,
        customer=ana,
        delivery_channel="email",
        language="en",
        scheduled_for=T0,
        expires_at=T0 + dt.timedelta(days=7),
    )
    SurveyRequest.objects.create(
        workspace=workspace, customer=ana, invitation=invitation, properties={"order": "A-17"}
    )
    stored(survey, 9, T0, ana, invitation=invitation)
    (listed,) = delighted.SurveyResponse.all(client=delighted_client)
    assert listed.person_properties == {"order": "A-17"}


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_are_cxloops_own(delighted_client: delighted.Client, world: dict[str, Any]) -> None:
    survey = world["survey"]
    for i, score in enumerate([9, 10, 10, 9, 10, 7, 8, 7, 0, 6]):
        stored(survey, score, T0 + dt.timedelta(minutes=i))
    stored(survey, 0, T0, is_test=True)  # never counted
    stored(make_survey(world["workspace"], "other"), 0, T0)  # another survey: not fed

    result = delighted.Metrics.retrieve(client=delighted_client)
    assert isinstance(result, delighted.Metrics)
    # 5 promoters, 3 passives, 2 detractors, counted by hand.
    assert dict(result) == {
        "nps": 30,
        "promoter_count": 5,
        "promoter_percent": 50,
        "passive_count": 3,
        "passive_percent": 30,
        "detractor_count": 2,
        "detractor_percent": 20,
        "response_count": 10,
    }
    assert dict(result) == nps_summary(Response.objects.filter(survey=survey)).as_dict()

    # since/until: inclusive, whole seconds; here the first four minutes (9, 10, 10, 9).
    window = delighted.Metrics.retrieve(
        client=delighted_client, since=ts(T0), until=ts(T0 + dt.timedelta(minutes=3))
    )
    assert (window.nps, window.response_count, window.promoter_percent) == (100, 4, 100)
    assert dict(window) == (
        nps_summary(
            Response.objects.filter(survey=survey, answered_at__lte=T0 + dt.timedelta(minutes=3))
        ).as_dict()
    )


def test_metrics_through_the_api_match_after_posting(
    delighted_client: delighted.Client, world: dict[str, Any]
) -> None:
    for score in (10, 10, 8, 2):
        delighted.SurveyResponse.create(
            client=delighted_client, person=str(world["ana"].pk), score=score
        )
    result = delighted.Metrics.retrieve(client=delighted_client)
    assert (result.nps, result.response_count) == (25, 4)
    assert dict(result) == nps_summary(Response.objects.all()).as_dict()


# --- cxloop's side ----------------------------------------------------------------------------


def test_api_responses_appear_in_cxloops_own_api(
    delighted_client: delighted.Client, world: dict[str, Any], saved_events: list[Any]
) -> None:
    created = delighted.SurveyResponse.create(
        client=delighted_client, person=str(world["ana"].pk), score=4, comment="Rude"
    )
    answer = Client().get("/api/v1/responses", headers={"Authorization": f"Bearer {world['raw']}"})
    assert answer.status_code == 200
    (item,) = answer.json()["items"]
    assert item["external_id"] == Response.objects.get(pk=int(created.id)).external_id
    assert (item["survey"], item["customer"], item["score"]) == ("after-visit", "C1", 4)
    assert (item["comment"], item["source"]) == ("Rude", "import")
    assert saved_events == [(int(created.id), True)]


def _basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


@pytest.fixture
def local(workspace: Workspace) -> tuple[Workspace, str, Survey]:
    """For in-process requests (Django's test client), whose queries can be counted."""
    survey = make_survey(workspace, "after-visit")
    _, raw = create_api_key(workspace, "delighted", ["ingest", "read"], via="cli")
    return workspace, raw, survey


def _fill(workspace: Workspace, survey: Survey, n: int, start: int) -> None:
    """n responses with everything a page reads: a person, Delighted fields, a survey request."""
    for i in range(start, start + n):
        customer = make_customer(workspace, f"Q{i}")
        invitation = Invitation.objects.create(
            workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
            language="en", scheduled_for=T0, expires_at=T0 + dt.timedelta(days=7),
        )  # fmt: skip
        SurveyRequest.objects.create(
            workspace=workspace, customer=customer, invitation=invitation, properties={"i": i}
        )
        response = stored(
            survey, i % 11, T0 + dt.timedelta(minutes=i), customer, invitation=invitation,
            answers={"reasons": ["staff"]},
        )  # fmt: skip
        if i % 2:
            ResponseMeta.objects.create(response=response, tags=["t"], person_properties={"m": i})


def test_a_page_costs_the_same_queries_at_any_size(
    local: tuple[Workspace, str, Survey], django_assert_max_num_queries: Any
) -> None:
    workspace, raw, survey = local
    client = Client()
    url = "/delighted/v1/survey_responses.json?per_page=100&expand[]=person"
    client.get(url, headers=_basic(raw))  # the key's last_used_at is written once
    _fill(workspace, survey, 3, 0)
    with django_assert_max_num_queries(4):
        small = client.get(url, headers=_basic(raw))
    _fill(workspace, survey, 40, 3)
    with django_assert_max_num_queries(4):
        large = client.get(url, headers=_basic(raw))
    assert (len(small.json()), len(large.json())) == (3, 43)
    first = large.json()[0]
    assert first["person"]["email"] == "q0@example.com"
    assert first["person_properties"] == {"i": 0}
    assert large.json()[1]["person_properties"] == {"m": 1}
    assert large.json()[1]["tags"] == ["t"]


def test_link_header_to_the_next_page(local: tuple[Workspace, str, Survey], settings: Any) -> None:
    _workspace, raw, survey = local
    settings.SITE_URL = "https://cx.example"
    for i in range(3):
        stored(survey, 9, T0 + dt.timedelta(minutes=i))
    client = Client()
    first = client.get(
        "/delighted/v1/survey_responses?per_page=2&expand[]=person", headers=_basic(raw)
    )
    assert first.status_code == 200
    assert first["Link"] == (
        "<https://cx.example/delighted/v1/survey_responses"
        '?per_page=2&expand%5B%5D=person&page=2>; rel="next"'
    )
    last = client.get("/delighted/v1/survey_responses?per_page=2&page=2", headers=_basic(raw))
    assert len(last.json()) == 1
    assert "Link" not in last


def test_per_page_is_capped_at_100(local: tuple[Workspace, str, Survey]) -> None:
    workspace, raw, survey = local
    Response.objects.bulk_create(
        Response(
            workspace=workspace, external_id=f"r{i}", survey=survey, score=9,
            answered_at=T0, source=ResponseSource.WEB,
        )
        for i in range(101)
    )  # fmt: skip
    answer = Client().get("/delighted/v1/survey_responses?per_page=500", headers=_basic(raw))
    assert len(answer.json()) == 100
    assert 'rel="next"' in answer["Link"]


def test_a_key_without_ingest_cannot_write(local: tuple[Workspace, str, Survey]) -> None:
    workspace, _, _survey = local
    _, read_only = create_api_key(workspace, "reader", ["read"], via="cli")
    customer = make_customer(workspace, "C9")
    answer = Client().post(
        "/delighted/v1/survey_responses",
        {"person": str(customer.pk), "score": 9},
        content_type="application/json",
        headers=_basic(read_only),
    )
    assert answer.status_code == 401
    assert not Response.objects.exists()


def test_a_csat_feed_reports_its_type_and_no_nps(
    local: tuple[Workspace, str, Survey],
) -> None:
    workspace, raw, _survey = local
    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2
    csat = make_survey(workspace, "support-csat", definition=definition)
    CompatSettings.objects.create(workspace=workspace, survey=csat)
    customer = make_customer(workspace, "C9")
    client = Client()
    posted = client.post(
        "/delighted/v1/survey_responses.json",
        {"person": str(customer.pk), "score": 5},
        content_type="application/json",
        headers=_basic(raw),
    )
    assert posted.status_code == 201
    assert posted.json()["survey_type"] == "csat"
    too_high = client.post(
        "/delighted/v1/survey_responses.json",
        {"person": str(customer.pk), "score": 6},
        content_type="application/json",
        headers=_basic(raw),
    )
    assert too_high.status_code == 422
    # NPS is an NPS-scale number: a CSAT feed has none to report.
    assert client.get("/delighted/v1/metrics", headers=_basic(raw)).json()["response_count"] == 0
