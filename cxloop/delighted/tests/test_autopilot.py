"""Autopilot: the configuration and memberships through the *official* Delighted client, and
the heartbeat's ``schedule_due`` surveying members once per period."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import delighted  # imported first by conftest.py, which silences its FutureWarning
import pytest
from django.db import connections

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.delighted import autopilot
from cxloop.delighted.models import AutopilotConfig, AutopilotMembership, SurveyRequest
from cxloop.surveys.models import (
    Decision,
    DecisionOutcome,
    Invitation,
    InvitationStatus,
    Reason,
    Survey,
    SurveyKind,
)
from cxloop.surveys.suppression import unsubscribe
from cxloop.surveys.tests.factories import make_customer, make_survey

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

DAY = 86400


def members(client: Any, platform: str = "email", **params: Any) -> list[Any]:
    resource = (
        delighted.AutopilotMembership.forEmail()
        if platform == "email"
        else delighted.AutopilotMembership.forSms()
    )
    return list(resource.list(client=client, **params).auto_paging_iter())


# --- the configuration ---------------------------------------------------------------------


def test_configuration_reports_frequency_in_seconds(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    made = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    AutopilotConfig.objects.create(
        workspace=workspace, platform="email", frequency_days=30, active=True,
        created_at=made, updated_at=made + dt.timedelta(days=2),
    )  # fmt: skip

    config = delighted.AutopilotConfiguration.retrieve("email", client=delighted_client)

    assert config["platform_id"] == "email"
    assert config["active"] is True
    assert config["frequency"] == 30 * DAY
    assert config["created_at"] == int(made.timestamp())
    assert config["updated_at"] == int(made.timestamp()) + 2 * DAY


def test_a_platform_without_configuration_is_off(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    AutopilotConfig.objects.create(workspace=workspace, platform="email", frequency_days=30)

    sms = delighted.AutopilotConfiguration.retrieve("sms", client=delighted_client)

    assert sms["platform_id"] == "sms"
    assert sms["active"] is False  # the e-mail configuration does not leak into SMS


# --- memberships ----------------------------------------------------------------------------


def test_adding_a_person_creates_the_customer_and_a_due_membership(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    before = clock.now()

    result = delighted.AutopilotMembership.forEmail().create(
        client=delighted_client,
        person_email="Jony@Appleseed.COM",
        person_name="Jony Ive",
        properties={"Purchase Experience": "Mobile App", "State": "CA"},
    )

    customer = Customer.objects.get(workspace=workspace)
    assert (customer.email, customer.name) == ("Jony@appleseed.com", "Jony Ive")
    assert result["person"]["id"] == str(customer.pk)
    assert result["person"]["email"] == "Jony@appleseed.com"
    assert result["properties"] == {"Purchase Experience": "Mobile App", "State": "CA"}
    membership = AutopilotMembership.objects.get(workspace=workspace, platform="email")
    assert membership.customer == customer
    assert membership.next_survey_at is not None
    assert before - dt.timedelta(seconds=1) <= membership.next_survey_at <= clock.now()
    assert result["next_survey_scheduled_at"] == int(membership.next_survey_at.timestamp())


def test_adding_again_replaces_properties_and_keeps_the_schedule(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    existing = make_customer(workspace, "CRM-7", email="jony@appleseed.com", name="")
    later = clock.now() + dt.timedelta(days=40)
    AutopilotMembership.objects.create(
        workspace=workspace, platform="email", customer=existing,
        properties={"State": "CA", "Plan": "Pro"}, next_survey_at=later,
    )  # fmt: skip

    result = delighted.AutopilotMembership.forEmail().create(
        client=delighted_client, person_email="JONY@appleseed.com", properties={"State": "NY"}
    )

    assert Customer.objects.filter(workspace=workspace).count() == 1  # found, not duplicated
    existing.refresh_from_db()
    assert existing.external_id == "CRM-7"  # the CRM's key is kept
    membership = AutopilotMembership.objects.get(workspace=workspace)
    assert membership.properties == {"State": "NY"}  # replaced, not merged
    assert membership.next_survey_at == later
    assert result["next_survey_request"]["survey_scheduled_at"] == int(later.timestamp())


def test_sms_membership_needs_a_phone_number(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    with pytest.raises(delighted.errors.ResourceValidationError):
        delighted.AutopilotMembership.forSms().create(
            client=delighted_client, person_email="only@mail.example"
        )
    assert not AutopilotMembership.objects.filter(workspace=workspace).exists()
    assert not Customer.objects.filter(workspace=workspace).exists()  # nothing half-written

    delighted.AutopilotMembership.forSms().create(
        client=delighted_client, person_phone_number="+37369123456"
    )

    membership = AutopilotMembership.objects.get(workspace=workspace)
    assert (membership.platform, membership.customer.phone) == ("sms", "+37369123456")


def test_bad_phone_number_is_a_validation_error(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    with pytest.raises(delighted.errors.ResourceValidationError):
        delighted.AutopilotMembership.forSms().create(
            client=delighted_client, person_phone_number="12"
        )


def test_list_walks_every_page_once_in_order(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    for i in range(5):
        customer = make_customer(workspace, f"C{i}", email=f"p{i}@example.com")
        AutopilotMembership.objects.create(
            workspace=workspace, platform="email", customer=customer,
            properties={"n": i}, next_survey_at=clock.now(),
        )  # fmt: skip
    other = make_customer(workspace, "SMS1")
    AutopilotMembership.objects.create(workspace=workspace, platform="sms", customer=other)

    listed = members(delighted_client, per_page=2)

    assert [m["person"]["email"] for m in listed] == [f"p{i}@example.com" for i in range(5)]
    assert [m["properties"] for m in listed] == [{"n": i} for i in range(5)]
    assert all(isinstance(m["next_survey_scheduled_at"], int) for m in listed)
    assert [m["person"]["email"] for m in members(delighted_client, "sms")] == [other.email]


def test_list_for_one_person(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    for i in range(3):
        customer = make_customer(workspace, f"C{i}", email=f"p{i}@example.com")
        AutopilotMembership.objects.create(workspace=workspace, platform="email", customer=customer)

    listed = members(delighted_client, person_email="P1@example.com")

    assert [m["person"]["email"] for m in listed] == ["p1@example.com"]


def test_removing_a_person_withdraws_their_autopilot_survey_only(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    relationship = make_survey(workspace, "relationship", kind=SurveyKind.RELATIONSHIP)
    AutopilotConfig.objects.create(workspace=workspace, platform="email", survey=relationship)
    delighted.AutopilotMembership.forEmail().create(
        client=delighted_client, person_email="jony@appleseed.com"
    )
    assert autopilot.schedule_due(clock.now()) == 1
    invitation = Invitation.objects.get(workspace=workspace)
    assert invitation.status == InvitationStatus.SCHEDULED
    # A survey the person asked for elsewhere is not Autopilot's to withdraw.
    other = Invitation.objects.create(
        workspace=workspace, survey=Survey.objects.get(workspace=workspace, code="after-visit"),
        customer=invitation.customer, delivery_channel="email", language="ro",
        scheduled_for=clock.now(), expires_at=clock.now() + dt.timedelta(days=3),
    )  # fmt: skip

    result = delighted.AutopilotMembership.forEmail().delete(
        client=delighted_client, person_email="jony@appleseed.com"
    )

    assert result == {"person": {**result["person"], "email": "jony@appleseed.com"}}
    assert result["person"]["id"] == str(invitation.customer_id)
    assert not AutopilotMembership.objects.filter(workspace=workspace).exists()
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.CANCELLED
    assert Decision.objects.filter(
        invitation=invitation, outcome=DecisionOutcome.CANCELLED, reason=autopilot.WITHDRAWN
    ).exists()
    other.refresh_from_db()
    assert other.status == InvitationStatus.SCHEDULED
    assert Customer.objects.filter(invitations=invitation).exists()  # the person stays


def test_removing_needs_exactly_one_identifier_and_a_member(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str]
) -> None:
    workspace, _ = delighted_workspace
    customer = make_customer(workspace, "C1", email="a@example.com")
    membership = AutopilotMembership.objects.create(
        workspace=workspace, platform="email", customer=customer
    )
    ap = delighted.AutopilotMembership.forEmail()
    with pytest.raises(delighted.errors.ResourceValidationError):
        ap.delete(client=delighted_client)
    with pytest.raises(delighted.errors.ResourceValidationError):
        ap.delete(client=delighted_client, person_email="a@example.com", person_id=customer.pk)
    with pytest.raises(delighted.errors.GeneralAPIError) as info:
        delighted.AutopilotMembership.forSms().delete(
            client=delighted_client, person_id=str(customer.pk)
        )
    assert info.value.response.status_code == 404  # a member of e-mail, not of SMS
    assert AutopilotMembership.objects.filter(pk=membership.pk).exists()

    ap.delete(client=delighted_client, person_id=str(customer.pk))

    assert not AutopilotMembership.objects.filter(pk=membership.pk).exists()


def test_another_workspace_members_are_invisible(
    delighted_client: Any, delighted_workspace: tuple[Workspace, str], other_workspace: Workspace
) -> None:
    stranger = make_customer(other_workspace, "X1", email="x@example.com")
    AutopilotMembership.objects.create(
        workspace=other_workspace, platform="email", customer=stranger
    )

    assert members(delighted_client) == []
    with pytest.raises(delighted.errors.GeneralAPIError):
        delighted.AutopilotMembership.forEmail().delete(
            client=delighted_client, person_email="x@example.com"
        )
    assert AutopilotMembership.objects.filter(workspace=other_workspace).count() == 1


# --- schedule_due ---------------------------------------------------------------------------


@pytest.fixture
def relationship(workspace: Workspace) -> Survey:
    return make_survey(workspace, "relationship", kind=SurveyKind.RELATIONSHIP)


def member(
    workspace: Workspace, external_id: str, due: dt.datetime | None, **properties: Any
) -> AutopilotMembership:
    customer = make_customer(workspace, external_id)
    return AutopilotMembership.objects.create(
        workspace=workspace, platform="email", customer=customer,
        properties=properties, next_survey_at=due,
    )  # fmt: skip


def test_due_members_are_invited_once_per_period(
    workspace: Workspace, relationship: Survey
) -> None:
    AutopilotConfig.objects.create(workspace=workspace, platform="email", frequency_days=90)
    now = clock.now()
    due = member(workspace, "C1", now - dt.timedelta(hours=1), Plan="Pro")
    later = member(workspace, "C2", now + dt.timedelta(days=5))
    unscheduled = member(workspace, "C3", None)

    assert autopilot.schedule_due(now) == 1

    invitation = Invitation.objects.get()
    assert (invitation.customer_id, invitation.survey_id) == (due.customer_id, relationship.pk)
    assert invitation.delivery_channel == "email"
    decision = Decision.objects.get(invitation=invitation)
    assert decision.detail.endswith("requested by autopilot")
    # The member's properties go with the survey, for the response's person_properties.
    assert SurveyRequest.objects.get(invitation=invitation).properties == {"Plan": "Pro"}
    due.refresh_from_db()
    assert due.next_survey_at == now - dt.timedelta(hours=1) + dt.timedelta(days=90)
    later.refresh_from_db()
    unscheduled.refresh_from_db()
    assert later.next_survey_at == now + dt.timedelta(days=5)
    assert unscheduled.next_survey_at is None

    # A second heartbeat (or a task delivered twice) finds nobody due.
    assert autopilot.schedule_due(now) == 0
    assert autopilot.schedule_due(now + dt.timedelta(minutes=5)) == 0
    assert Invitation.objects.count() == 1


def test_a_stale_read_loses_the_claim(workspace: Workspace, relationship: Survey) -> None:
    """Two heartbeats that read the same due member: the one whose UPDATE comes second finds
    ``next_survey_at`` moved and invites nobody."""
    now = clock.now()
    due = member(workspace, "C1", now - dt.timedelta(minutes=1))
    first = AutopilotMembership.objects.select_related("customer").get(pk=due.pk)
    second = AutopilotMembership.objects.select_related("customer").get(pk=due.pk)
    week = dt.timedelta(days=7)

    assert autopilot._survey_member(first, relationship, week, now) == 1
    assert autopilot._survey_member(second, relationship, week, now) == 0

    assert Invitation.objects.count() == 1
    assert Decision.objects.count() == 1


def test_a_member_overdue_by_more_than_a_period_restarts_from_now(
    workspace: Workspace, relationship: Survey
) -> None:
    AutopilotConfig.objects.create(workspace=workspace, platform="email", frequency_days=30)
    now = clock.now()
    long_ago = member(workspace, "C1", now - dt.timedelta(days=400))

    assert autopilot.schedule_due(now) == 1

    long_ago.refresh_from_db()
    assert long_ago.next_survey_at == now + dt.timedelta(days=30)
    assert autopilot.schedule_due(now + dt.timedelta(minutes=1)) == 0


def test_skipped_member_is_tried_again_next_period(
    workspace: Workspace, relationship: Survey
) -> None:
    AutopilotConfig.objects.create(workspace=workspace, platform="email", frequency_days=90)
    now = clock.now()
    gone = member(workspace, "C1", now)
    unsubscribe(gone.customer, via="api", source="test")

    assert autopilot.schedule_due(now) == 1

    assert not Invitation.objects.exists()
    assert Decision.objects.get().reason == Reason.UNSUBSCRIBED
    gone.refresh_from_db()
    assert gone.next_survey_at == now + dt.timedelta(days=90)


def test_inactive_configuration_and_other_platform_are_left_alone(
    workspace: Workspace, relationship: Survey
) -> None:
    AutopilotConfig.objects.create(workspace=workspace, platform="email", active=False)
    now = clock.now()
    due = member(workspace, "C1", now - dt.timedelta(days=1))
    sms = AutopilotMembership.objects.create(
        workspace=workspace, platform="sms", customer=make_customer(workspace, "C2"),
        next_survey_at=now - dt.timedelta(days=1),
    )  # fmt: skip

    assert autopilot.schedule_due(now) == 0

    due.refresh_from_db()
    sms.refresh_from_db()
    assert due.next_survey_at == now - dt.timedelta(days=1)
    assert sms.next_survey_at == now - dt.timedelta(days=1)
    assert not Decision.objects.exists()


def test_configured_survey_wins_over_the_relationship_default(
    workspace: Workspace, relationship: Survey
) -> None:
    chosen = make_survey(workspace, "yearly", kind=SurveyKind.RELATIONSHIP)
    AutopilotConfig.objects.create(workspace=workspace, platform="email", survey=chosen)
    member(workspace, "C1", clock.now())

    autopilot.schedule_due(clock.now())

    assert Invitation.objects.get().survey == chosen


def test_no_survey_to_send_leaves_members_due(workspace: Workspace) -> None:
    AutopilotConfig.objects.create(workspace=workspace, platform="email")
    make_survey(workspace, "after-visit")  # transactional: not an Autopilot survey
    due = member(workspace, "C1", clock.now() - dt.timedelta(days=1))

    assert autopilot.schedule_due(clock.now()) == 0

    due.refresh_from_db()
    assert due.next_survey_at is not None and due.next_survey_at < clock.now()


def test_heartbeat_runs_autopilot(workspace: Workspace, relationship: Survey) -> None:
    from cxloop.delighted.tasks import heartbeat

    AutopilotConfig.objects.create(workspace=workspace, platform="email")
    member(workspace, "C1", clock.now() - dt.timedelta(minutes=1))

    stats = heartbeat()

    assert stats["autopilot"] == 1
    assert Invitation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_heartbeats_invite_each_member_once(workspace: Workspace) -> None:
    """Two heartbeats at the same moment, on their own connections, as two dispatchers would."""
    if connections["default"].vendor != "postgresql":
        pytest.skip("SQLite serialises writers: no race to lose")
    make_survey(workspace, "relationship", kind=SurveyKind.RELATIONSHIP)
    AutopilotConfig.objects.create(workspace=workspace, platform="email")
    now = clock.now()
    for i in range(40):
        member(workspace, f"C{i}", now - dt.timedelta(minutes=1))
    start = threading.Barrier(2)
    handled: list[int] = []

    def beat() -> None:
        try:
            start.wait()
            handled.append(autopilot.schedule_due(now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(handled) == 40
    assert Invitation.objects.count() == 40
    assert Invitation.objects.values("customer").distinct().count() == 40
