"""The cases and problems API: a detractor's case read back by its response, exactly once;
pages, filters and their 422s; scopes and the phone number; the call-back, attempts and close
flow with its 409s; the problem register; another workspace's rows answer 404."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.cases import services
from cxloop.cases.models import Case, CaseEvent, Problem, ReasonCode
from cxloop.conftest import Api
from cxloop.core import clock
from cxloop.core.api import iso
from cxloop.organisation.models import Branch, Employee
from cxloop.surveys.models import Response
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

pytestmark = pytest.mark.django_db

MakeApi = Callable[..., Api]
CONTRACT_KEYS = {"id", "status", "response", "assignee", "due_at"}
PHONE = "+37369111222"


# --- fixtures and helpers -------------------------------------------------------------------


def build_org(workspace: Workspace) -> dict[str, Any]:
    """Branch B01 (supervisor S1 over E1) and B02 (supervisor S2 over E2), surveys
    after-visit and support, customers C1-C3, reason codes waiting and staff."""
    org = make_org(workspace)
    b2 = Branch.objects.create(workspace=workspace, code="B02", name="Bălți", region=org["region"])
    s1 = Employee.objects.create(workspace=workspace, code="S1", name="Ana", branch=org["branch"])
    e1 = Employee.objects.create(
        workspace=workspace, code="E1", name="Ion", branch=org["branch"], supervisor=s1
    )
    s2 = Employee.objects.create(workspace=workspace, code="S2", name="Dan", branch=b2)
    e2 = Employee.objects.create(
        workspace=workspace, code="E2", name="Eva", branch=b2, supervisor=s2
    )
    for code in ("C1", "C2", "C3"):
        make_customer(workspace, code)
    make_survey(workspace, "after-visit")
    make_survey(workspace, "support")
    for code in ("waiting", "staff"):
        ReasonCode.objects.create(workspace=workspace, code=code, labels={"en": code.title()})
    return {**org, "b2": b2, "s1": s1, "e1": e1, "s2": s2, "e2": e2}


@pytest.fixture
def api_world(workspace: Workspace) -> dict[str, Any]:
    return build_org(workspace)


@pytest.fixture
def api_admin(workspace: Workspace, make_api: MakeApi) -> Api:
    return make_api(workspace, ("admin",))


@pytest.fixture
def api_reader(workspace: Workspace, make_api: MakeApi) -> Api:
    return make_api(workspace, ("read",))


def item(n: int, score: int = 3, **extra: Any) -> dict[str, Any]:
    """A response to import: a detractor about E1 who left a call-back number."""
    return {
        "external_id": f"R{n}",
        "survey": "after-visit",
        "customer": "C1",
        "score": score,
        "answered_at": iso(clock.now() - dt.timedelta(hours=1)),
        "employee": "E1",
        "answers": {"contact": {"may_contact": True, "phone": PHONE}},
        **extra,
    }


def send(api: Api, *items: dict[str, Any]) -> None:
    answer = api.post("/responses/batch", {"items": list(items)})
    assert answer.status_code == 200, answer.content
    assert answer.json()["rejected"] == 0, answer.json()


def open_case(api: Api, n: int, now: dt.datetime | None = None, **extra: Any) -> Case:
    """Import detractor R<n> and open its case (at ``now``: its opened_at)."""
    send(api, item(n, **extra))
    response = Response.objects.get(workspace=api_workspace(api), external_id=f"R{n}")
    case = services.open_for_response(response.pk, now=now)
    assert case is not None
    return case


def api_workspace(api: Api) -> Workspace:
    from cxloop.accounts.services import authenticate_api_key

    key = authenticate_api_key(api.key)
    assert key is not None
    return key.workspace


def patch(api: Api, path: str, body: Any) -> Any:
    return api.client.patch(
        f"/api/v1{path}",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.key}"},
    )


def listed(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Every case the list gives, following the cursor."""
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        answer = api.get("/cases", **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.content
        seen += answer.json()["items"]
        cursor = answer.json()["next"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [i["id"] for i in items]


# --- a detractor's case, once ---------------------------------------------------------------


def test_a_detractor_opens_one_case_listed_by_its_response(api: Api, api_world: Any) -> None:
    send(api, item(1), item(2, score=9))

    assert services.tick()["cases_opened"] == 1

    case = Case.objects.get()
    answer = api.get("/cases", response="R1")
    assert answer.status_code == 200
    body = answer.json()
    assert body["next"] is None
    [got] = body["items"]
    assert got.keys() >= CONTRACT_KEYS
    assert got["id"] == case.pk
    assert got["status"] == "open"
    assert got["response"] == "R1"
    assert got["survey"] == "after-visit"
    assert got["customer"] == "C1"
    assert got["score"] == 3
    # Routed to the supervisor of the employee involved.
    assert got["assignee"] == "S1"
    assert got["queue"] is None
    assert got["due_at"] == iso(case.due_at)
    assert "contact" not in got
    # The promoter opened nothing, and listing by its response says so.
    assert api.get("/cases", response="R2").json() == {"items": [], "next": None}


def test_processing_a_response_again_still_gives_one_case(api: Api, api_world: Any) -> None:
    send(api, item(1))
    services.tick()
    response = Response.objects.get(external_id="R1")

    # Again through the heartbeat, the worker task, the import (a duplicate) and a changed
    # answer.
    services.tick()
    again = services.open_for_response(response.pk)
    send(api, item(1))
    Response.objects.filter(pk=response.pk).update(comment="still angry", updated_at=clock.now())
    services.sweep(response.workspace_id)

    assert Case.objects.count() == 1
    assert again is not None and again.pk == Case.objects.get().pk
    assert ids(api.get("/cases", response="R1").json()["items"]) == [again.pk]


def test_a_case_reads_back_with_its_history(api: Api, api_world: Any) -> None:
    case = open_case(api, 1)

    answer = api.get(f"/cases/{case.pk}")

    assert answer.status_code == 200
    got = answer.json()
    assert got.keys() >= CONTRACT_KEYS
    assert got["id"] == case.pk and got["response"] == "R1"
    assert [e["kind"] for e in got["events"]] == ["opened"]
    assert got["events"][0]["to_assignee"] == "S1"
    assert got["events"][0]["via"] == "system"
    assert api.get("/cases/999999").status_code == 404


# --- contact data ---------------------------------------------------------------------------


def test_only_admin_keys_get_the_customers_phone(
    api: Api, api_reader: Api, api_admin: Api, api_world: Any
) -> None:
    case = open_case(api, 1)

    for key in (api, api_reader):
        assert "contact" not in key.get("/cases").json()["items"][0]
        detail = key.get(f"/cases/{case.pk}").json()
        assert "contact" not in detail
        assert PHONE not in json.dumps(detail)

    [listed_item] = api_admin.get("/cases").json()["items"]
    assert listed_item["contact"] == {"may_contact": True, "phone": PHONE}
    assert api_admin.get(f"/cases/{case.pk}").json()["contact"]["phone"] == PHONE


# --- pages and filters ----------------------------------------------------------------------


def test_five_cases_in_pages_of_two_come_once_each(
    api: Api, api_world: Any, other_workspace: Workspace, make_api: MakeApi
) -> None:
    # Three cases opened in one sweep share their opened_at: the id breaks the tie.
    send(api, item(1), item(2), item(3))
    services.sweep(api_world["branch"].workspace_id)
    base = clock.now()
    opened = [c.pk for c in Case.objects.all()]
    opened += [open_case(api, n, now=base + dt.timedelta(minutes=n)).pk for n in (4, 5)]
    build_org(other_workspace)
    open_case(make_api(other_workspace), 9)

    pages = []
    cursor = None
    while True:
        body = api.get("/cases", limit=2, **({"cursor": cursor} if cursor else {})).json()
        pages.append(ids(body["items"]))
        cursor = body["next"]
        if cursor is None:
            break

    seen = [pk for page in pages for pk in page]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(seen) == sorted(opened)
    assert seen[-2:] == opened[-2:]


def test_a_page_costs_the_same_queries_whatever_its_size(api_admin: Api, api_world: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_admin.get("/cases").status_code == 200
        return len(queries)

    case = open_case(api_admin, 1)
    services.log_attempt(case, "busy")
    one = cost()
    for n in range(2, 7):
        services.log_attempt(open_case(api_admin, n), "busy")

    assert cost() == one


def test_filters_keep_exactly_the_matching_cases(api: Api, api_world: Any) -> None:
    base = clock.now() - dt.timedelta(minutes=30)
    at = {n: base + dt.timedelta(minutes=n) for n in range(1, 6)}
    c1 = open_case(api, 1, now=at[1])  # E1 → S1, B01-less, after-visit
    c2 = open_case(api, 2, now=at[2], employee="E2", branch="B02")  # → S2 at B02
    c3 = open_case(api, 3, now=at[3], employee=None, survey="support")  # no one: CX queue
    c4 = open_case(api, 4, now=at[4], employee=None, branch="B01")  # B01 has no manager: queue
    services.log_attempt(c2, "no_answer", via="api")
    Case.objects.filter(pk=c4.pk).update(breached=True)

    def only(**params: Any) -> set[int]:
        return set(ids(listed(api, **params)))

    assert only() == {c1.pk, c2.pk, c3.pk, c4.pk}
    assert only(status="in_progress") == {c2.pk}
    assert only(status="open") == {c1.pk, c3.pk, c4.pk}
    assert only(status="open,in_progress") == {c1.pk, c2.pk, c3.pk, c4.pk}
    assert only(status=["resolved", "in_progress"]) == {c2.pk}
    assert only(status="resolved") == set()
    assert only(assignee="S1") == {c1.pk}
    assert only(assignee="S2") == {c2.pk}
    assert only(assignee="none") == {c3.pk, c4.pk}
    assert only(branch="B02") == {c2.pk}
    assert only(branch="B01") == {c4.pk}
    assert only(survey="support") == {c3.pk}
    assert only(survey="after-visit") == {c1.pk, c2.pk, c4.pk}
    assert only(breached="true") == {c4.pk}
    assert only(breached="false") == {c1.pk, c2.pk, c3.pk}
    assert only(since=iso(at[2]), until=iso(at[4])) == {c2.pk, c3.pk}
    assert only(response="R3") == {c3.pk}
    assert only(assignee="none", survey="after-visit") == {c4.pk}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("response", "R404"),
        ("status", "closed"),
        ("status", "open,done"),
        ("assignee", "E404"),
        ("branch", "B404"),
        ("survey", "nps-typo"),
        ("since", "2026-10-01T00:00:00"),
        ("cursor", "not-a-cursor"),
    ],
)
def test_an_unknown_filter_value_answers_422_naming_it(
    api: Api, api_world: Any, field: str, value: str
) -> None:
    open_case(api, 1)

    answer = api.get("/cases", **{field: value})

    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {field}
    assert answer.json()["detail"]


def test_a_code_of_another_workspace_is_unknown_here(
    api: Api, api_world: Any, other_workspace: Workspace
) -> None:
    Employee.objects.create(workspace=other_workspace, code="X9", name="Other")
    answer = api.get("/cases", assignee="X9")
    assert answer.status_code == 422
    assert answer.json()["errors"] == {"assignee": ["no assignee with code 'X9'"]}


# --- keys and scopes ------------------------------------------------------------------------


def test_no_key_or_a_wrong_key_is_401(api: Api, api_world: Any) -> None:
    case = open_case(api, 1)
    for path in ("/api/v1/cases", f"/api/v1/cases/{case.pk}", "/api/v1/problems"):
        assert Client().get(path).status_code == 401
        assert Client().get(path, headers={"Authorization": "Bearer cxl_nope"}).status_code == 401
    answer = Client().post(
        f"/api/v1/cases/{case.pk}/close", {"status": "declined"}, content_type="application/json"
    )
    assert answer.status_code == 401


def test_a_read_key_cannot_act_on_cases_or_problems(
    api: Api, api_reader: Api, api_world: Any
) -> None:
    case = open_case(api, 1)
    before = (Case.objects.get().status, CaseEvent.objects.count())

    writes = [
        patch(api_reader, f"/cases/{case.pk}", {"apologised": True, "solved": "yes",
                                                 "reasons": ["waiting"]}),
        api_reader.post(f"/cases/{case.pk}/assign", {"assignee": "E2"}),
        api_reader.post(f"/cases/{case.pk}/attempts", {"result": "no_answer"}),
        api_reader.post(f"/cases/{case.pk}/close", {"status": "declined"}),
        api_reader.post("/problems", {"title": "Queues"}),
    ]  # fmt: skip

    assert [w.status_code for w in writes] == [403] * 5
    assert all("scope" in w.json()["detail"] for w in writes)
    assert (Case.objects.get().status, CaseEvent.objects.count()) == before
    assert not Problem.objects.exists()
    # Reading is what it may do.
    assert api_reader.get(f"/cases/{case.pk}").status_code == 200


def test_an_ingest_key_acts_on_cases_but_not_on_problems(
    api_world: Any, workspace: Workspace, make_api: MakeApi
) -> None:
    ingest = make_api(workspace, ("ingest",))
    case = open_case(ingest, 1)

    assert ingest.post(f"/cases/{case.pk}/attempts", {"result": "busy"}).status_code == 200
    assert ingest.get("/cases").status_code == 403  # reading needs `read`
    assert ingest.post("/problems", {"title": "Queues"}).status_code == 403
    assert not Problem.objects.exists()


# --- the call-back, attempts and close ------------------------------------------------------


def test_attempts_then_unreachable_once_there_are_enough(api: Api, api_world: Any) -> None:
    case = open_case(api, 1)
    path = f"/cases/{case.pk}"

    first = api.post(f"{path}/attempts", {"result": "no_answer", "note": "rang 10 times"})
    assert first.status_code == 200
    assert first.json()["status"] == "in_progress"
    assert first.json()["attempts"][0]["result"] == "no_answer"
    api.post(f"{path}/attempts", {"result": "busy"})

    early = api.post(f"{path}/close", {"status": "unreachable"})
    assert early.status_code == 409
    assert "3 logged call attempts" in early.json()["detail"]
    assert Case.objects.get().status == "in_progress"

    api.post(f"{path}/attempts", {"result": "voicemail"})
    closed = api.post(f"{path}/close", {"status": "unreachable", "note": "gave up"})

    assert closed.status_code == 200
    got = closed.json()
    assert got["status"] == "unreachable"
    assert got["closed_at"] is not None
    assert [e["kind"] for e in got["events"]] == ["opened", "attempt", "attempt", "attempt",
                                                   "closed"]  # fmt: skip
    assert got["events"][-1]["result"] == "unreachable" and got["events"][-1]["note"] == "gave up"
    assert set(CaseEvent.objects.exclude(kind="opened").values_list("via", flat=True)) == {"api"}
    # Closed is closed: neither another close nor an attempt.
    assert api.post(f"{path}/close", {"status": "declined"}).status_code == 409
    assert api.post(f"{path}/attempts", {"result": "reached"}).status_code == 409
    assert CaseEvent.objects.filter(kind="attempt").count() == 3


def test_resolving_needs_the_callback_first(api: Api, api_world: Any) -> None:
    case = open_case(api, 1)
    path = f"/cases/{case.pk}"

    refused = api.post(f"{path}/close", {"status": "resolved"})

    assert refused.status_code == 409
    assert refused.json() == {"detail": "record the call-back before closing the case as resolved"}
    assert Case.objects.get().status == "open"
    assert not CaseEvent.objects.filter(kind="closed").exists()

    recorded = patch(api, path, {"apologised": True, "solved": "partly",
                                 "reasons": ["waiting", "staff"], "expected": "a call back",
                                 "notes": "promised a discount"})  # fmt: skip
    assert recorded.status_code == 200
    assert recorded.json()["status"] == "in_progress"
    assert recorded.json()["callback"] == {
        "apologised": True, "solved": "partly", "reasons": ["staff", "waiting"],
        "expected": "a call back", "notes": "promised a discount",
    }  # fmt: skip

    resolved = api.post(f"{path}/close", {"status": "resolved"})
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert Case.objects.get().status == "resolved"
    assert [e["kind"] for e in resolved.json()["events"]] == ["opened", "callback", "closed"]
    # A closed case's call-back does not change.
    assert patch(api, path, {"notes": "later"}).status_code == 409
    assert Case.objects.get().notes == "promised a discount"


def test_the_callback_is_checked_and_later_changes_keep_the_rest(
    api: Api, api_world: Any, other_workspace: Workspace
) -> None:
    case = open_case(api, 1)
    path = f"/cases/{case.pk}"
    ReasonCode.objects.create(workspace=other_workspace, code="theirs")
    ReasonCode.objects.create(workspace=case.workspace, code="old", is_active=False)

    unknown = patch(api, path, {"apologised": True, "solved": "yes", "reasons": ["nope"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == {"reasons": ["no reason code 'nope'"]}
    foreign = patch(api, path, {"apologised": True, "solved": "yes", "reasons": ["theirs"]})
    assert foreign.status_code == 422 and "reasons" in foreign.json()["errors"]
    retired = patch(api, path, {"apologised": True, "solved": "yes", "reasons": ["old"]})
    assert retired.status_code == 422 and "reasons" in retired.json()["errors"]
    incomplete = patch(api, path, {"notes": "called"})
    assert incomplete.status_code == 422
    assert set(incomplete.json()["errors"]) == {"apologised", "solved", "reasons"}
    bad_value = patch(api, path, {"apologised": True, "solved": "maybe", "reasons": ["waiting"]})
    assert bad_value.status_code == 422 and "solved" in bad_value.json()["errors"]
    assert patch(api, path, {"colour": "red"}).status_code == 422
    assert patch(api, path, {}).status_code == 422
    assert Case.objects.get().status == "open"
    assert not CaseEvent.objects.filter(kind="callback").exists()

    first = patch(api, path, {"apologised": False, "solved": "no", "reasons": ["waiting"]})
    assert first.status_code == 200
    later = patch(api, path, {"notes": "called again", "apologised": True})

    assert later.status_code == 200
    assert later.json()["callback"] == {
        "apologised": True, "solved": "no", "reasons": ["waiting"], "expected": "",
        "notes": "called again",
    }  # fmt: skip
    stored = Case.objects.get()
    assert list(stored.reasons.values_list("code", flat=True)) == ["waiting"]
    events = CaseEvent.objects.filter(kind="callback")
    assert [(e.via, e.result) for e in events] == [("api", "no"), ("api", "no")]


def test_reassigning_names_the_new_assignee_or_the_queue(
    api: Api, api_world: Any, other_workspace: Workspace
) -> None:
    case = open_case(api, 1)
    path = f"/cases/{case.pk}/assign"
    Employee.objects.create(workspace=other_workspace, code="X1", name="Other")
    Employee.objects.create(workspace=case.workspace, code="GONE", name="Left", is_active=False)

    moved = api.post(path, {"assignee": "E2", "note": "covers B01 today"})
    assert moved.status_code == 200
    assert moved.json()["assignee"] == "E2"
    last = moved.json()["events"][-1]
    assert (last["kind"], last["from_assignee"], last["to_assignee"], last["via"]) == (
        "assigned", "S1", "E2", "api",
    )  # fmt: skip
    assert last["note"] == "covers B01 today"

    queued = api.post(path, {"assignee": None})
    assert queued.status_code == 200
    assert (queued.json()["assignee"], queued.json()["queue"]) == (None, "cx")
    assert Case.objects.get().assignee is None

    for code in ("E404", "X1", "GONE"):
        answer = api.post(path, {"assignee": code})
        assert answer.status_code == 422, code
        assert set(answer.json()["errors"]) == {"assignee"}
    assert api.post(path, {}).status_code == 422  # null is the queue; left out is a mistake
    assert Case.objects.get().assignee is None

    api.post(f"/cases/{case.pk}/attempts", {"result": "reached"})
    api.post(f"/cases/{case.pk}/close", {"status": "declined"})
    assert api.post(path, {"assignee": "S1"}).status_code == 409


def test_attempt_and_close_values_are_checked(api: Api, api_world: Any) -> None:
    case = open_case(api, 1)
    bad_attempt = api.post(f"/cases/{case.pk}/attempts", {"result": "shouted"})
    bad_close = api.post(f"/cases/{case.pk}/close", {"status": "open"})
    assert (bad_attempt.status_code, bad_close.status_code) == (422, 422)
    assert set(bad_attempt.json()["errors"]) == {"result"}
    assert set(bad_close.json()["errors"]) == {"status"}
    assert CaseEvent.objects.count() == 1


# --- another workspace ----------------------------------------------------------------------


def test_another_workspaces_case_is_404_for_every_action(
    api: Api, api_admin: Api, api_world: Any, other_workspace: Workspace, make_api: MakeApi
) -> None:
    build_org(other_workspace)
    theirs = open_case(make_api(other_workspace), 1)
    before = list(CaseEvent.objects.filter(case=theirs).values_list("kind", flat=True))
    path = f"/cases/{theirs.pk}"

    answers = [
        api.get(path),
        patch(api, path, {"apologised": True, "solved": "yes", "reasons": ["waiting"]}),
        api.post(f"{path}/assign", {"assignee": "E2"}),
        api.post(f"{path}/attempts", {"result": "reached"}),
        api.post(f"{path}/close", {"status": "declined"}),
        api_admin.get(path),
    ]

    assert [a.status_code for a in answers] == [404] * 6
    # Told apart from no case at all by nothing but the id.
    assert answers[0].json() == {"detail": f"no case with id {theirs.pk}"}
    assert api.get("/cases").json()["items"] == []
    theirs.refresh_from_db()
    assert (theirs.status, theirs.assignee.code if theirs.assignee else None) == ("open", "S1")
    assert list(CaseEvent.objects.filter(case=theirs).values_list("kind", flat=True)) == before


# --- problems -------------------------------------------------------------------------------


def test_a_problem_is_created_changed_and_audited(
    api_admin: Api, api_reader: Api, api_world: Any
) -> None:
    created = api_admin.post(
        "/problems",
        {"title": "Queues at B01", "function": "Operations", "owner": "S1",
         "deadline": "2026-12-31", "reasons": ["waiting"]},
    )  # fmt: skip

    assert created.status_code == 201, created.content
    got = created.json()
    assert (got["title"], got["owner"], got["reasons"], got["status"]) == (
        "Queues at B01", "S1", ["waiting"], "open",
    )  # fmt: skip
    assert got["deadline"] == "2026-12-31" and got["cases"] == 0
    problem = Problem.objects.get()
    entry = AuditLog.objects.get(action="problem.created")
    assert (entry.via, entry.object_id, entry.api_key is not None) == ("api", str(problem.pk), True)
    assert api_reader.get(f"/problems/{problem.pk}").json()["id"] == problem.pk

    moved = patch(api_admin, f"/problems/{problem.pk}", {"status": "in_progress",
                                                          "reasons": ["staff", "waiting"]})  # fmt: skip
    assert moved.status_code == 200
    assert (moved.json()["status"], moved.json()["reasons"]) == (
        "in_progress",
        ["staff", "waiting"],
    )
    # Only the given fields change.
    assert (moved.json()["owner"], moved.json()["function"]) == ("S1", "Operations")
    fixed = patch(api_admin, f"/problems/{problem.pk}", {"status": "fixed", "owner": None})
    assert fixed.json()["status"] == "fixed"
    assert fixed.json()["fixed_on"] == clock.now().date().isoformat()
    assert fixed.json()["owner"] is None
    assert AuditLog.objects.filter(action="problem.updated").count() == 2

    # Verified comes from measuring, not from a PATCH.
    refused = patch(api_admin, f"/problems/{problem.pk}", {"status": "verified"})
    assert refused.status_code == 409
    assert "measuring" in refused.json()["detail"]
    assert Problem.objects.get().status == "fixed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "title"),
        ({}, "title"),
        ({"title": "Queues", "owner": "E404"}, "owner"),
        ({"title": "Queues", "reasons": ["waiting", "nope"]}, "reasons"),
        ({"title": "Queues", "deadline": "soon"}, "deadline"),
        ({"title": "Queues", "colour": "red"}, "colour"),
    ],
)
def test_an_invalid_problem_is_422(
    api_admin: Api, api_world: Any, body: dict[str, Any], field: str
) -> None:
    answer = api_admin.post("/problems", body)
    assert answer.status_code == 422
    assert field in answer.json()["errors"]
    assert not Problem.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="problem.").exists()


def test_problems_list_by_status_and_other_workspaces_are_404(
    api_admin: Api, api_world: Any, other_workspace: Workspace, make_api: MakeApi
) -> None:
    first = api_admin.post("/problems", {"title": "Queues"}).json()["id"]
    second = api_admin.post("/problems", {"title": "Prices"}).json()["id"]
    patch(api_admin, f"/problems/{second}", {"status": "fixed"})
    theirs = make_api(other_workspace, ("admin",)).post("/problems", {"title": "X"}).json()["id"]

    def listed_ids(**params: Any) -> list[int]:
        answer = api_admin.get("/problems", **params)
        assert answer.status_code == 200
        return ids(answer.json()["items"])

    assert listed_ids() == [first, second]
    assert listed_ids(status="fixed") == [second]
    assert listed_ids(status="open,fixed") == [first, second]
    assert listed_ids(limit=1) == [first]
    assert api_admin.get("/problems", status="done").status_code == 422
    for answer in (
        api_admin.get(f"/problems/{theirs}"),
        patch(api_admin, f"/problems/{theirs}", {"title": "Mine now"}),
        api_admin.post(f"/problems/{theirs}/verify", {}),
    ):
        assert answer.status_code == 404
    assert Problem.objects.get(pk=theirs).title == "X"


def test_verifying_measures_the_fix(api: Api, api_admin: Api, api_world: Any) -> None:
    fixed_on = clock.now().date() - dt.timedelta(days=10)
    noon = dt.datetime.combine(fixed_on, dt.time(12), tzinfo=dt.UTC)
    # Before the fix every detractor ticked "waiting"; after it none did.
    send(api, *[
        item(n, answered_at=iso(noon - dt.timedelta(days=5)),
             answers={"reasons": ["waiting"]}) for n in range(12)
    ], *[
        item(n, answered_at=iso(noon + dt.timedelta(days=2)),
             answers={"reasons": ["price"]}) for n in range(100, 112)
    ])  # fmt: skip
    problem = api_admin.post("/problems", {"title": "Queues", "reasons": ["waiting"]}).json()
    path = f"/problems/{problem['id']}"

    too_early = api_admin.post(f"{path}/verify", {})
    assert too_early.status_code == 409
    assert too_early.json() == {"detail": "only a fixed problem can be verified"}

    patch(api_admin, path, {"status": "fixed", "fixed_on": fixed_on.isoformat()})
    verified = api_admin.post(f"{path}/verify", {})

    assert verified.status_code == 200, verified.content
    got = verified.json()
    assert got["status"] == "verified"
    assert got["effect"]["before"]["citing"] == 12 and got["effect"]["after"]["citing"] == 0
    assert got["effect"]["verdict"] == "verified"
    assert AuditLog.objects.filter(action="problem.verified").count() == 1


def test_a_fix_with_too_few_answers_stays_fixed(api_admin: Api, api_world: Any) -> None:
    problem = api_admin.post("/problems", {"title": "Queues", "reasons": ["waiting"]}).json()
    path = f"/problems/{problem['id']}"
    patch(api_admin, path, {"status": "fixed"})

    measured = api_admin.post(f"{path}/verify", {})

    assert measured.status_code == 200
    assert measured.json()["status"] == "fixed"
    assert measured.json()["effect"]["verdict"] == "insufficient_data"
