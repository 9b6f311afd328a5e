"""People, survey requests, unsubscribes and bounces through the *official* Delighted client.

Each test drives the compatibility API as a migrating customer's code would: the ``delighted``
package from PyPI, over HTTP, against a live server — and then checks what cxloop stored.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import Any

import delighted  # imported first by conftest.py, which silences its FutureWarning
import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.accounts.services import create_api_key, create_workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.delighted import http
from cxloop.delighted.models import SurveyRequest
from cxloop.surveys.models import (
    Decision,
    DecisionOutcome,
    Invitation,
    InvitationStatus,
    Response,
    Suppression,
    SuppressionReason,
)
from cxloop.surveys.suppression import suppress_address
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

Setup = tuple[Workspace, str]


class Recorder(delighted.HTTPAdapter):
    """The client's own HTTP adapter, noting each request's method, URL and status."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, Any]] = []

    def request(self, method: str, uri: str, headers: Any = None, data: Any = None, params: Any = None) -> Any:  # fmt: skip
        response = super().request(method, uri, headers or {}, data, params)
        self.calls.append((method, uri, response.status_code, response.headers))
        return response


@pytest.fixture
def recorder(delighted_client: Any) -> Recorder:
    adapter = Recorder()
    delighted_client.http_adapter = adapter
    return adapter


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


# ---------------------------------------------------------------------------------------------
# POST people


def test_create_schedules_the_compat_survey_with_properties_and_locale(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    before = int(time.time())
    person = delighted.Person.create(
        client=delighted_client,
        email="Ana.Pop@Example.COM",
        name="Ana Pop",
        properties={"question_product_name": "Gold card", "locale": "ro-MD", "plan": "gold"},
    )
    customer = Customer.objects.get(workspace=workspace)
    assert person.id == str(customer.pk)
    assert person.email == "Ana.Pop@example.com" == customer.email
    assert customer.external_id == "ana.pop@example.com"
    assert person.name == "Ana Pop" == customer.name
    assert before <= person.survey_scheduled_at <= int(time.time()) + 1
    assert person.properties["question_product_name"] == "Gold card"
    invitation = Invitation.objects.get(customer=customer)
    assert invitation.survey.code == "after-visit"
    assert invitation.language == "ro"  # the locale, not the workspace's default "en"
    assert customer.language == "ro-md"  # kept as the person's language
    # Delighted's question_product_name names the product in the survey's texts.
    assert invitation.placeholders == {"product": "Gold card"}
    assert invitation.delivery_channel == "email"
    assert http.unix(invitation.scheduled_for) == person.survey_scheduled_at
    request = SurveyRequest.objects.get(customer=customer)
    assert request.invitation == invitation
    assert request.properties == {
        "question_product_name": "Gold card",
        "locale": "ro-MD",
        "plan": "gold",
    }


def test_create_again_by_email_in_any_case_updates_the_same_person(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    first = delighted.Person.create(
        client=delighted_client, email="ion@example.com", name="Ion", send=False
    )
    second = delighted.Person.create(
        client=delighted_client, email="ION@example.com", name="Ion Rusu", send="false"
    )
    assert second.id == first.id
    customer = Customer.objects.get(workspace=workspace)
    assert customer.name == "Ion Rusu"
    assert customer.email == "ion@example.com"  # the first spelling stays


def test_create_finds_a_crm_customer_by_email_and_keeps_its_external_id(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    crm = make_customer(workspace, "CRM-0042", email="Maria@example.com", phone="", name="")
    person = delighted.Person.create(
        client=delighted_client,
        email="MARIA@EXAMPLE.COM",
        name="Maria",
        phone_number="+37369123456",
    )
    assert person.id == str(crm.pk)
    crm.refresh_from_db()
    assert (crm.external_id, crm.name, crm.email) == ("CRM-0042", "Maria", "Maria@example.com")
    assert crm.phone == "+37369123456"  # a missing identifier is filled in
    assert Customer.objects.filter(workspace=workspace).count() == 1


def test_phone_only_person_in_the_workspace_region_gets_an_sms(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    Workspace.objects.filter(pk=workspace.pk).update(
        phone_region="MD", default_consent={"email": True, "sms": True}
    )
    person = delighted.Person.create(
        client=delighted_client, phone_number="069 123 456", channel="sms"
    )
    customer = Customer.objects.get(workspace=workspace)
    assert customer.phone == "+37369123456" == person.phone_number
    assert customer.external_id == "tel:37369123456"
    assert person.email is None
    assert person.survey_scheduled_at is not None
    assert Invitation.objects.get(customer=customer).delivery_channel == "sms"
    # The same number written differently is the same person.
    again = delighted.Person.create(
        client=delighted_client, phone_number="+373 69 123 456", send=False
    )
    assert again.id == person.id


def test_no_consent_skips_the_survey_without_an_error(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace  # default consent: e-mail yes, SMS no
    person = delighted.Person.create(
        client=delighted_client, phone_number="+37369123456", channel="sms"
    )
    assert person.survey_scheduled_at is None
    assert not Invitation.objects.filter(workspace=workspace).exists()
    decision = Decision.objects.get(workspace=workspace)
    assert (decision.outcome, decision.reason) == (DecisionOutcome.SKIPPED, "no_consent")


def test_send_false_stores_the_person_only(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    person = delighted.Person.create(
        client=delighted_client,
        email="quiet@example.com",
        send=False,
        properties={"plan": "basic"},
    )
    assert person.survey_scheduled_at is None
    assert Customer.objects.filter(workspace=workspace, email="quiet@example.com").exists()
    assert not Invitation.objects.exists()
    assert not Decision.objects.exists()
    assert not SurveyRequest.objects.exists()


def test_delay_postpones_the_survey(delighted_client: Any, delighted_workspace: Setup) -> None:
    before = int(time.time())
    person = delighted.Person.create(client=delighted_client, email="later@example.com", delay=3600)
    assert before + 3600 <= person.survey_scheduled_at <= int(time.time()) + 3601
    invitation = Invitation.objects.get()
    assert invitation.scheduled_for > clock.now() + dt.timedelta(minutes=59)


def test_quiet_period_throttles_the_second_request(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    first = delighted.Person.create(client=delighted_client, email="often@example.com")
    second = delighted.Person.create(client=delighted_client, email="often@example.com")
    assert first.survey_scheduled_at is not None
    assert second.survey_scheduled_at is None
    assert Invitation.objects.count() == 1
    assert Decision.objects.filter(outcome="skipped", reason="quiet_period").count() == 1
    assert SurveyRequest.objects.filter(invitation__isnull=True).count() == 1


def test_invalid_email_is_a_delighted_422_and_stores_nothing(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    with pytest.raises(delighted.errors.ResourceValidationError) as caught:
        delighted.Person.create(client=delighted_client, email="not-an-email", name="X")
    assert caught.value.response.status_code == 422
    body = json.loads(caught.value.response.body)
    assert body["status"] == 422
    assert body["message"]
    assert [e["field"] for e in body["errors"]] == ["email"]
    assert "not-an-email" not in json.dumps(body)  # the value is not echoed
    assert not Customer.objects.exists()
    with pytest.raises(delighted.errors.ResourceValidationError):
        delighted.Person.create(client=delighted_client, name="nobody")
    with pytest.raises(delighted.errors.ResourceValidationError):
        delighted.Person.create(client=delighted_client, email="a@example.com", channel="fax")
    assert not Customer.objects.exists()


# ---------------------------------------------------------------------------------------------
# GET people


def test_list_follows_the_link_header_across_pages_in_order(
    delighted_client: Any, delighted_workspace: Setup, recorder: Recorder, live_server: Any
) -> None:
    workspace, _ = delighted_workspace
    for n in range(5):
        make_customer(workspace, f"P{n}", email=f"p{n}@example.com", name=f"P {n}")
    # P1 and P2 created in the same microsecond, across the first page's end: a cursor on
    # created_at alone would lose P2.
    same = clock.now() - dt.timedelta(days=1)
    Customer.objects.filter(external_id="P0").update(created_at=same - dt.timedelta(hours=1))
    Customer.objects.filter(external_id__in=["P1", "P2"]).update(created_at=same)
    expected = list(
        Customer.objects.filter(workspace=workspace)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
    )

    listed = list(delighted.Person.list(client=delighted_client, per_page=2).auto_paging_iter())

    assert [int(p.id) for p in listed] == expected
    assert len({p.id for p in listed}) == 5
    gets = [c for c in recorder.calls if c[0] == "get"]
    assert len(gets) == 3
    assert all(status == 200 for _, _, status, _ in gets)
    assert gets[1][1].startswith(live_server.url + "/delighted/v1/people")
    assert "Link" not in gets[2][3]


def test_list_reports_activity_dates(delighted_client: Any, delighted_workspace: Setup) -> None:
    workspace, _ = delighted_workspace
    customer = make_customer(workspace, "A1", email="a1@example.com")
    idle = make_customer(workspace, "A2", email="a2@example.com")
    survey = make_survey(workspace, "second")
    now = clock.now().replace(microsecond=0)
    sent = Invitation.objects.create(
        workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
        language="en", status=InvitationStatus.SENT, sent_at=now - dt.timedelta(days=2),
        scheduled_for=now - dt.timedelta(days=2), expires_at=now + dt.timedelta(days=9),
    )  # fmt: skip
    Invitation.objects.create(
        workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
        language="en", scheduled_for=now + dt.timedelta(days=3),
        expires_at=now + dt.timedelta(days=20),
    )  # fmt: skip
    Response.objects.create(
        workspace=workspace, external_id="R1", survey=survey, invitation=sent, customer=customer,
        score=9, answered_at=now - dt.timedelta(days=1), source="web",
    )  # fmt: skip

    listed = {p.id: p for p in delighted.Person.list(client=delighted_client).auto_paging_iter()}

    busy = listed[str(customer.pk)]
    assert busy.last_sent_at == http.unix(now - dt.timedelta(days=2))
    assert busy.last_responded_at == http.unix(now - dt.timedelta(days=1))
    assert busy.next_survey_scheduled_at == http.unix(now + dt.timedelta(days=3))
    quiet = listed[str(idle.pk)]
    assert (quiet.last_sent_at, quiet.last_responded_at, quiet.next_survey_scheduled_at) == (
        None,
        None,
        None,
    )


def test_list_filters_by_since_until_email_and_phone(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    base = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    for n in range(3):
        c = make_customer(workspace, f"T{n}", email=f"t{n}@example.com", phone=f"+3736912345{n}")
        # .4 s past the second: "until" must include the whole second it names.
        Customer.objects.filter(pk=c.pk).update(
            created_at=base + dt.timedelta(seconds=100 * n, milliseconds=400)
        )
    t0 = int(base.timestamp())

    def emails(**params: Any) -> list[str]:
        found = delighted.Person.list(client=delighted_client, **params).auto_paging_iter()
        return [p.email for p in found]

    assert emails(since=t0 + 100, until=t0 + 100) == ["t1@example.com"]
    assert emails(since=t0 + 100) == ["t1@example.com", "t2@example.com"]
    assert emails(until=t0 + 100) == ["t0@example.com", "t1@example.com"]
    assert emails(email="T2@example.com") == ["t2@example.com"]
    assert emails(phone_number="+37369123450") == ["t0@example.com"]
    # A filter survives onto the next page.
    assert emails(since=t0 + 1, per_page=1) == ["t1@example.com", "t2@example.com"]


# ---------------------------------------------------------------------------------------------
# DELETE people/…


@pytest.mark.parametrize("kind", ["email", "id", "phone_number"])
def test_delete_person_by_each_identifier(
    delighted_client: Any, delighted_workspace: Setup, recorder: Recorder, kind: str
) -> None:
    workspace, _ = delighted_workspace
    customer = make_customer(workspace, "D1", email="gone@example.com", phone="+37369123456")
    keep = make_customer(workspace, "D2", email="stay@example.com", phone="+37369000000")
    value = {"email": "gone@example.com", "id": customer.pk, "phone_number": "+37369123456"}[kind]

    answer = delighted.Person.delete(client=delighted_client, **{kind: value})

    assert answer == {"ok": True}
    assert recorder.calls[-1][2] == 202
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert Customer.objects.filter(pk=keep.pk).exists()
    entry = AuditLog.objects.get(action="customer.delete")
    assert entry.object_id == str(customer.pk)
    assert entry.api_key is not None
    assert "gone@example.com" not in entry.object_repr  # no personal data in the audit log


def test_delete_unknown_person_is_404(delighted_client: Any, delighted_workspace: Setup) -> None:
    with pytest.raises(delighted.errors.GeneralAPIError) as caught:
        delighted.Person.delete(client=delighted_client, email="nobody@example.com")
    assert caught.value.response.status_code == 404
    assert json.loads(caught.value.response.body)["status"] == 404


def test_delete_pending_cancels_scheduled_invitations_only(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    delighted.Person.create(client=delighted_client, email="Pend@example.com", delay=86400)
    scheduled = Invitation.objects.get()
    customer = scheduled.customer
    assert customer is not None
    now = clock.now()
    sent = Invitation.objects.create(
        workspace=workspace, survey=scheduled.survey, customer=customer,
        delivery_channel="email", language="en", status=InvitationStatus.SENT, sent_at=now,
        scheduled_for=now - dt.timedelta(days=40), expires_at=now + dt.timedelta(days=1),
    )  # fmt: skip

    answer = delighted.SurveyRequest.delete_pending(
        client=delighted_client, person_email="pend@example.com"
    )

    assert answer == {"ok": True}
    scheduled.refresh_from_db()
    sent.refresh_from_db()
    assert scheduled.status == InvitationStatus.CANCELLED
    assert sent.status == InvitationStatus.SENT
    decision = Decision.objects.get(outcome=DecisionOutcome.CANCELLED)
    assert decision.invitation_id == scheduled.pk
    # Nothing pending any more: the next list shows no scheduled survey.
    (listed,) = delighted.Person.list(client=delighted_client).auto_paging_iter()
    assert listed.next_survey_scheduled_at is None


# ---------------------------------------------------------------------------------------------
# unsubscribes and bounces


def test_unsubscribe_unknown_address_then_create_schedules_nothing(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    workspace, _ = delighted_workspace
    answer = delighted.Unsubscribe.create(
        client=delighted_client, person_email="Leaving@Example.com"
    )
    assert answer == {"ok": True}
    customer = Customer.objects.get(workspace=workspace)
    assert customer.external_id == "leaving@example.com"

    person = delighted.Person.create(client=delighted_client, email="leaving@example.com")

    assert person.id == str(customer.pk)
    assert person.survey_scheduled_at is None
    assert not Invitation.objects.exists()
    assert Decision.objects.get().reason == "unsubscribed"
    (row,) = delighted.Unsubscribe.all(client=delighted_client)
    assert row.person_id == str(customer.pk)
    assert row.email == "Leaving@example.com"
    assert isinstance(row.unsubscribed_at, int)
    # Twice is fine, and still one row.
    delighted.Unsubscribe.create(client=delighted_client, person_email="leaving@example.com")
    assert len(delighted.Unsubscribe.all(client=delighted_client)) == 1


def test_unsubscribes_page_and_since(delighted_client: Any, delighted_workspace: Setup) -> None:
    for n in range(3):
        delighted.Unsubscribe.create(client=delighted_client, person_email=f"u{n}@example.com")
    old = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    Suppression.objects.filter(customer__email="u0@example.com").update(created_at=old)
    page1 = delighted.Unsubscribe.all(client=delighted_client, per_page=2)
    page2 = delighted.Unsubscribe.all(client=delighted_client, per_page=2, page=2)
    assert [r.email for r in page1 + page2] == [
        "u0@example.com",
        "u1@example.com",
        "u2@example.com",
    ]
    recent = delighted.Unsubscribe.all(client=delighted_client, since=int(old.timestamp()) + 1)
    assert [r.email for r in recent] == ["u1@example.com", "u2@example.com"]


def test_bounces_list_email_bounces_only(delighted_client: Any, delighted_workspace: Setup) -> None:
    workspace, _ = delighted_workspace
    customer = make_customer(workspace, "B1", email="Bounce@Example.com", name="Bo")
    suppress_address(workspace, "email", "Bounce@Example.com", "bounced", source="webhook")
    suppress_address(workspace, "email", "orphan@example.com", "bounced", source="webhook")
    suppress_address(workspace, "email", "spam@example.com", "complained", source="webhook")
    suppress_address(workspace, "sms", "+37369123456", "bounced", source="webhook")

    rows = delighted.Bounce.all(client=delighted_client)

    assert [(r.person_id, r.email, r.name) for r in rows] == [
        (str(customer.pk), "bounce@example.com", "Bo"),
        (None, "orphan@example.com", None),
    ]
    assert all(isinstance(r.bounced_at, int) for r in rows)


# ---------------------------------------------------------------------------------------------
# HTTP conventions: auth forms, paths, bodies, rate limits, scopes, isolation


def test_ruby_and_python_auth_forms_and_a_wrong_key(
    delighted_client: Any, delighted_workspace: Setup, client: Client
) -> None:
    _, raw = delighted_workspace
    make_customer(delighted_workspace[0], "R1")
    ruby = client.get("/delighted/v1/people.json", headers={"Authorization": basic(raw + ":")})
    python = client.get("/delighted/v1/people.json", headers={"Authorization": basic(raw)})
    assert ruby.status_code == python.status_code == 200
    assert ruby.json() == python.json()
    assert len(ruby.json()) == 1
    wrong = client.get("/delighted/v1/people.json", headers={"Authorization": basic("cxl_nope:")})
    assert wrong.status_code == 401
    assert wrong.json()["status"] == 401

    bad = delighted.Client(api_key="cxl_wrong", api_base_url=delighted_client.api_base_url)
    with pytest.raises(delighted.errors.AuthenticationError):
        delighted.Person.create(client=bad, email="x@example.com")
    assert not Customer.objects.filter(email="x@example.com").exists()


def test_paths_with_and_without_json_and_a_get_body(
    delighted_workspace: Setup, client: Client
) -> None:
    workspace, raw = delighted_workspace
    auth = {"Authorization": basic(raw)}
    make_customer(workspace, "J1", email="j1@example.com")
    plain = client.get("/delighted/v1/people", headers=auth)
    dotted = client.get("/delighted/v1/people.json", headers=auth)
    with_body = client.generic(
        "GET", "/delighted/v1/people.json", "{}", content_type="application/json", headers=auth
    )
    assert plain.status_code == dotted.status_code == with_body.status_code == 200
    assert plain.json() == dotted.json() == with_body.json()
    assert [p["email"] for p in plain.json()] == ["j1@example.com"]
    created = client.post(
        "/delighted/v1/people",
        {"email": "form@example.com", "send": "0", "properties[plan]": "gold"},
        headers=auth,
    )
    assert created.status_code == 200
    assert created.json()["properties"] == {"plan": "gold"}
    assert created.json()["survey_scheduled_at"] is None


def test_rate_limit_answers_429_with_retry_after(
    delighted_client: Any, delighted_workspace: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "RATE_LIMIT", 2)
    delighted.Unsubscribe.all(client=delighted_client)
    delighted.Bounce.all(client=delighted_client)
    with pytest.raises(delighted.errors.TooManyRequestsError) as caught:
        delighted.Person.create(client=delighted_client, email="late@example.com")
    assert 1 <= caught.value.retry_after <= 60
    assert caught.value.response.status_code == 429
    assert not Customer.objects.exists()


def test_a_read_only_key_cannot_write(
    delighted_workspace: Setup, live_server: Any, settings: Any
) -> None:
    workspace, _ = delighted_workspace
    _, raw = create_api_key(workspace, "reader", ["read"], via="cli")
    reader = delighted.Client(api_key=raw, api_base_url=live_server.url + "/delighted/v1/")
    assert delighted.Person.list(client=reader).auto_paging_iter() is not None
    assert list(delighted.Person.list(client=reader).auto_paging_iter()) == []
    with pytest.raises(delighted.errors.AuthenticationError):
        delighted.Person.create(client=reader, email="w@example.com")
    with pytest.raises(delighted.errors.AuthenticationError):
        delighted.Unsubscribe.create(client=reader, person_email="w@example.com")
    assert not Customer.objects.exists()


def test_workspaces_never_see_each_others_people(
    delighted_client: Any, delighted_workspace: Setup
) -> None:
    mine, _ = delighted_workspace
    other = create_workspace("elsewhere", "Elsewhere", via="cli")
    make_org(other)
    make_survey(other)
    theirs = make_customer(other, "shared@example.com", email="shared@example.com", name="Theirs")
    suppress_address(other, "email", "shared@example.com", "bounced", source="webhook")

    person = delighted.Person.create(
        client=delighted_client, email="shared@example.com", name="Mine"
    )

    assert person.id != str(theirs.pk)
    assert Customer.objects.get(pk=person.id).workspace_id == mine.pk
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    # Their bounce does not stop my survey, nor show in my list.
    assert person.survey_scheduled_at is not None
    assert delighted.Bounce.all(client=delighted_client) == []
    listed = list(delighted.Person.list(client=delighted_client).auto_paging_iter())
    assert [p.id for p in listed] == [person.id]
    with pytest.raises(delighted.errors.GeneralAPIError) as caught:
        delighted.Person.delete(client=delighted_client, id=theirs.pk)
    assert caught.value.response.status_code == 404
    delighted.Unsubscribe.create(client=delighted_client, person_email="shared@example.com")
    assert not Suppression.objects.filter(
        workspace=other, reason=SuppressionReason.UNSUBSCRIBED
    ).exists()
    assert Customer.objects.filter(pk=theirs.pk).exists()


def test_a_page_of_people_costs_a_fixed_number_of_queries(
    delighted_workspace: Setup, client: Client, django_assert_max_num_queries: Any
) -> None:
    workspace, raw = delighted_workspace
    survey = make_survey(workspace, "second")
    now = clock.now()
    for n in range(30):
        customer = make_customer(workspace, f"Q{n}", email=f"q{n}@example.com")
        Invitation.objects.create(
            workspace=workspace, survey=survey, customer=customer, delivery_channel="email",
            language="en", status=InvitationStatus.SENT, sent_at=now,
            scheduled_for=now, expires_at=now + dt.timedelta(days=9),
        )  # fmt: skip
    client.get("/delighted/v1/people.json", headers={"Authorization": basic(raw)})  # warm up
    with django_assert_max_num_queries(4):
        page = client.get(
            "/delighted/v1/people.json?per_page=100", headers={"Authorization": basic(raw)}
        )
    assert len(page.json()) == 30
    assert all(p["last_sent_at"] == http.unix(now) for p in page.json())
