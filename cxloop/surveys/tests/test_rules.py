"""Who gets which survey, when, and why not: the trigger rules."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from pydantic import ValidationError

from cxloop.accounts.models import Workspace
from cxloop.surveys import rules
from cxloop.surveys.definition import Rules, SendWindow, default_definition, parse_definition
from cxloop.surveys.models import Decision, Invitation, InvitationStatus, Reason, TriggerCursor
from cxloop.surveys.render import context_of
from cxloop.surveys.schedule import local_zone, next_send_time
from cxloop.surveys.services import SurveyInvalid, save_survey
from cxloop.surveys.suppression import suppress_address, unsubscribe

from .factories import make_customer, make_interaction, make_org, make_survey

UTC = dt.UTC
CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def visit(ws: Workspace, org: dict[str, Any], customer: Any, ext: str, at: dt.datetime) -> Any:
    return make_interaction(
        ws, customer, ext, occurred_at=at, touchpoint=org["touchpoint"], branch=org["branch"]
    )


def reasons(**filters: Any) -> list[tuple[str, str]]:
    return list(Decision.objects.filter(**filters).order_by("pk").values_list("outcome", "reason"))


@pytest.fixture
def org(workspace: Workspace) -> dict[str, Any]:
    return make_org(workspace)


def test_first_visit_schedules_and_second_inside_quiet_period_is_skipped_with_reason(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace)
    customer = make_customer(workspace)
    first = visit(workspace, org, customer, "I1", NOW - dt.timedelta(minutes=5))
    assert rules.evaluate_new(workspace, now=NOW) == 1
    invitation = Invitation.objects.get()
    assert invitation.interaction == first
    assert invitation.delivery_channel == "email"
    assert invitation.language == "ro"  # the customer's language
    assert invitation.scheduled_for == NOW  # no delay, no window
    assert invitation.expires_at == NOW + dt.timedelta(days=14)
    assert invitation.branch == org["branch"]

    second = visit(workspace, org, customer, "I2", NOW + dt.timedelta(days=10))
    assert rules.evaluate_new(workspace, now=NOW + dt.timedelta(days=10)) == 1
    decision = Decision.objects.get(interaction=second)
    assert (decision.outcome, decision.reason) == ("skipped", Reason.QUIET_PERIOD)
    assert "after-visit" in decision.detail and "2026-11-27" in decision.detail
    assert Invitation.objects.count() == 1


def test_quiet_period_applies_across_surveys(workspace: Workspace, org: dict[str, Any]) -> None:
    make_survey(workspace, "after-visit")
    make_survey(workspace, "service-csat", touchpoints=[], interaction_types=["repair"])
    customer = make_customer(workspace)
    visit(workspace, org, customer, "I1", NOW)
    make_interaction(workspace, customer, "I2", occurred_at=NOW, type="repair")
    rules.evaluate_new(workspace, now=NOW)
    # One survey wins (the earlier interaction), the other is skipped for the quiet period.
    assert sorted(r for _, r in reasons()) == [Reason.MATCHED, Reason.QUIET_PERIOD]
    assert Invitation.objects.count() == 1


def test_quiet_period_ends(workspace: Workspace, org: dict[str, Any]) -> None:
    make_survey(workspace, quiet_period_days=30, max_period_days=20)
    customer = make_customer(workspace)
    visit(workspace, org, customer, "I1", NOW)
    rules.evaluate_new(workspace, now=NOW)
    later = NOW + dt.timedelta(days=31)
    visit(workspace, org, customer, "I2", later)
    rules.evaluate_new(workspace, now=later)
    assert Invitation.objects.count() == 2


def test_survey_limit_per_customer(workspace: Workspace, org: dict[str, Any]) -> None:
    make_survey(workspace, quiet_period_days=0, max_per_customer=2, max_period_days=90)
    customer = make_customer(workspace)
    for n in range(3):
        at = NOW + dt.timedelta(days=n)
        visit(workspace, org, customer, f"I{n}", at)
        rules.evaluate_new(workspace, now=at)
    assert [r for _, r in reasons()] == [Reason.MATCHED, Reason.MATCHED, Reason.SURVEY_LIMIT]


def test_branch_daily_cap_counts_the_branch_local_day(workspace: Workspace) -> None:
    org = make_org(workspace, branch_tz="Europe/Chisinau")
    make_survey(workspace, branch_daily_cap=2)
    # 22:30 UTC on the 27th is already the 28th in Chișinău (UTC+2).
    evening = dt.datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
    for n in range(3):
        customer = make_customer(workspace, f"C{n}")
        visit(workspace, org, customer, f"I{n}", evening)
    rules.evaluate_new(workspace, now=evening)
    assert [r for _, r in reasons()] == [Reason.MATCHED, Reason.MATCHED, Reason.BRANCH_CAP]
    assert "2026-11-28" in Decision.objects.get(reason=Reason.BRANCH_CAP).detail
    # The next local day has room again.
    next_day = evening + dt.timedelta(days=1)
    customer = make_customer(workspace, "C9")
    visit(workspace, org, customer, "I9", next_day)
    rules.evaluate_new(workspace, now=next_day)
    assert Decision.objects.filter(interaction__external_id="I9").get().reason == Reason.MATCHED


def test_consent_unsubscribe_bounce_and_missing_contact_are_never_contacted(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace, channels=["email", "sms"])
    no_consent = make_customer(workspace, "C1", consent={"email": False, "sms": False})
    unsubscribed = make_customer(workspace, "C2")
    bounced = make_customer(workspace, "C3", phone="")
    no_contact = make_customer(workspace, "C4", email="", phone="")
    sms_only = make_customer(workspace, "C5", consent={"email": False, "sms": True})
    unsubscribe(unsubscribed, via="cli", source="test")
    suppress_address(workspace, "email", "C3@example.com", "bounced", source="test")
    for n, customer in enumerate([no_consent, unsubscribed, bounced, no_contact, sms_only]):
        visit(workspace, org, customer, f"I{n}", NOW)
    rules.evaluate_new(workspace, now=NOW)
    got = dict(Decision.objects.values_list("customer__external_id", "reason"))
    assert got == {
        "C1": Reason.NO_CONSENT,
        "C2": Reason.UNSUBSCRIBED,
        "C3": Reason.BOUNCED,
        "C4": Reason.NO_CONTACT,
        "C5": Reason.MATCHED,
    }
    assert Invitation.objects.get().delivery_channel == "sms"


def test_sampling_is_stable_and_near_the_rate(workspace: Workspace, org: dict[str, Any]) -> None:
    make_survey(workspace, sampling_rate=0.3, quiet_period_days=0)
    for n in range(300):
        visit(workspace, org, make_customer(workspace, f"C{n}"), f"I{n}", NOW)
    rules.evaluate_new(workspace, now=NOW)
    sent = Invitation.objects.count()
    assert 60 <= sent <= 120  # 30% of 300 = 90, binomial sd ≈ 8
    assert Decision.objects.filter(reason=Reason.SAMPLED_OUT).count() == 300 - sent
    # Evaluating again decides nothing twice.
    TriggerCursor.objects.update(position=0)
    assert rules.evaluate_new(workspace, now=NOW) == 0
    assert Invitation.objects.count() == sent


def test_old_interactions_and_those_before_the_survey_do_not_trigger(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    survey = make_survey(workspace, max_interaction_age_hours=48)
    customer = make_customer(workspace)
    visit(workspace, org, customer, "OLD", NOW - dt.timedelta(days=3))
    rules.evaluate_new(workspace, now=NOW)
    assert reasons() == [("skipped", Reason.TOO_OLD)]
    # Received before the survey was switched on: not a decision at all. (Received means the
    # interaction's created_at, stamped by the real clock, not NOW: the survey is switched on
    # an hour after the real now, whatever the time of the test run.)
    switched_on = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    type(survey).objects.filter(pk=survey.pk).update(active_since=switched_on)
    visit(workspace, org, make_customer(workspace, "C2"), "EARLY", NOW)
    rules.evaluate_new(workspace, now=NOW)
    assert Decision.objects.count() == 1


def test_interactions_of_other_touchpoints_and_workspaces_are_ignored(
    workspace: Workspace, other_workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace)
    customer = make_customer(workspace)
    make_interaction(workspace, customer, "CALL", occurred_at=NOW, type="call")
    other_org = make_org(other_workspace)
    other_customer = make_customer(other_workspace)
    visit(other_workspace, other_org, other_customer, "X", NOW)
    rules.evaluate_new(workspace, now=NOW)
    assert Decision.objects.count() == 0


def test_sweep_catches_an_interaction_that_committed_behind_the_cursor(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace)
    late = visit(workspace, org, make_customer(workspace, "C1"), "LATE", NOW)
    visit(workspace, org, make_customer(workspace, "C2"), "EARLY", NOW)
    rules.evaluate_new(workspace, now=NOW)
    # Pretend the first row was invisible when the cursor passed it.
    Decision.objects.filter(interaction=late).delete()
    Invitation.objects.filter(interaction=late).delete()
    rules.sweep(workspace, now=NOW)
    assert Decision.objects.filter(interaction=late, reason=Reason.MATCHED).count() == 1
    # A second sweep finds nothing new and the pair is never decided twice.
    rules.sweep(workspace, now=NOW)
    assert Decision.objects.filter(interaction=late).count() == 1


def test_language_falls_back_to_the_workspace_then_the_survey(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace, quiet_period_days=0)
    german = make_customer(workspace, "C1", language="de")
    regional = make_customer(workspace, "C2", language="ru-md")
    visit(workspace, org, german, "I1", NOW)
    visit(workspace, org, regional, "I2", NOW)
    rules.evaluate_new(workspace, now=NOW)
    got = dict(Invitation.objects.values_list("customer__external_id", "language"))
    assert got == {"C1": "en", "C2": "ru"}


# --- send windows, time zones and DST -------------------------------------------------------


def test_send_window_waits_for_the_next_morning_in_the_customers_zone(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    make_survey(workspace, send_window={"start": "09:00", "end": "20:00"})
    tokyo = make_customer(workspace, "C1", time_zone="Asia/Tokyo")
    chisinau = make_customer(workspace, "C2", time_zone="Europe/Chisinau")
    at = dt.datetime(2026, 11, 27, 19, 0, tzinfo=UTC)  # 04:00 in Tokyo, 21:00 in Chișinău
    visit(workspace, org, tokyo, "I1", at)
    visit(workspace, org, chisinau, "I2", at)
    rules.evaluate_new(workspace, now=at)
    got = dict(Invitation.objects.values_list("customer__external_id", "scheduled_for"))
    assert got["C1"] == dt.datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 09:00 JST
    assert got["C2"] == dt.datetime(2026, 11, 28, 7, 0, tzinfo=UTC)  # 09:00 EET


def test_customer_without_zone_uses_branch_then_workspace(workspace: Workspace) -> None:
    org = make_org(workspace, branch_tz="America/New_York")
    make_survey(workspace, send_window={"start": "09:00", "end": "20:00"})
    customer = make_customer(workspace, time_zone="")
    at = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 07:00 in New York
    visit(workspace, org, customer, "I1", at)
    rules.evaluate_new(workspace, now=at)
    assert Invitation.objects.get().scheduled_for == dt.datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def test_delay_is_added_before_the_window(workspace: Workspace, org: dict[str, Any]) -> None:
    make_survey(workspace, delay_minutes=120, send_window={"start": "09:00", "end": "20:00"})
    customer = make_customer(workspace, time_zone="UTC")
    at = dt.datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    visit(workspace, org, customer, "I1", at)
    rules.evaluate_new(workspace, now=at)
    # 19:30 is inside the window.
    assert Invitation.objects.get().scheduled_for == at + dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("local_evening", "expected_utc"),
    [
        # Spring forward in Moldova: 29 March 2026 03:00 → 04:00 (EET +2 → EEST +3).
        (dt.datetime(2026, 3, 28, 21, 0), dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Fall back: 25 October 2026 04:00 → 03:00 (EEST +3 → EET +2).
        (dt.datetime(2026, 10, 24, 21, 0), dt.datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    ],
)
def test_send_window_across_dst_changes(
    local_evening: dt.datetime, expected_utc: dt.datetime
) -> None:
    at = local_evening.replace(tzinfo=CHISINAU).astimezone(UTC)
    got = next_send_time(at, SendWindow(start=dt.time(9), end=dt.time(20)), CHISINAU)
    assert got == expected_utc
    assert got.astimezone(CHISINAU).time() == dt.time(9, 0)


def test_window_start_inside_the_spring_forward_gap_moves_after_it() -> None:
    # 03:30 does not exist in Chișinău on 29 March 2026.
    window = SendWindow(start=dt.time(3, 30), end=dt.time(20))
    at = dt.datetime(2026, 3, 28, 22, 0, tzinfo=CHISINAU).astimezone(UTC)
    got = next_send_time(at, window, CHISINAU)
    local = got.astimezone(CHISINAU)
    assert local.date() == dt.date(2026, 3, 29)
    assert dt.time(3, 0) <= local.time() <= dt.time(4, 30)
    assert got > at


def test_a_time_inside_the_window_is_kept() -> None:
    at = dt.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 13:00 in Chișinău
    assert next_send_time(at, SendWindow(), CHISINAU) == at
    assert next_send_time(at, None, CHISINAU) == at


def test_unknown_zone_falls_back() -> None:
    assert local_zone("Mars/Olympus", "", "Europe/Chisinau") == CHISINAU
    assert str(local_zone(None, "")) == "UTC"


# --- validation ------------------------------------------------------------------------------


def test_rules_and_definitions_are_validated_with_every_problem_named(
    workspace: Workspace,
) -> None:
    with pytest.raises(ValidationError):
        Rules.model_validate({"send_window": {"start": "20:00", "end": "09:00"}})
    with pytest.raises(ValidationError):
        Rules.model_validate({"sampling_rate": 1.5})
    with pytest.raises(ValidationError):
        Rules.model_validate({"channels": ["email", "email"]})
    with pytest.raises(ValidationError):
        Rules.model_validate({"carrier_pigeon": True})
    broken = default_definition("Acme")
    broken["questions"][1]["text"]["en"] = "Hello {customer_name}"
    with pytest.raises(ValidationError, match=r"unknown placeholder \{customer_name\}"):
        parse_definition(broken)
    incomplete = default_definition("Acme")
    del incomplete["title"]["ro"]
    del incomplete["questions"][0]["text"]["ru"]
    with pytest.raises(ValidationError) as excinfo:
        parse_definition(incomplete)
    message = str(excinfo.value)
    assert "title: ro" in message
    assert "question nps: ru" in message
    with pytest.raises(SurveyInvalid) as bad:
        save_survey(
            workspace, code="Bad Code", name="", kind="weekly", definition={}, rules={},
            via="cli",
        )  # fmt: skip
    assert {"code", "name", "kind"} <= set(bad.value.errors)
    assert any(k.startswith("definition") for k in bad.value.errors)
    with pytest.raises(SurveyInvalid) as no_trigger:
        save_survey(
            workspace, code="t", name="T", kind="transactional",
            definition=default_definition(), rules={}, via="cli",
        )  # fmt: skip
    assert "rules" in no_trigger.value.errors


def test_first_question_must_be_the_score() -> None:
    definition = default_definition()
    definition["questions"] = definition["questions"][1:]
    with pytest.raises(ValidationError, match="first question must be the score"):
        parse_definition(definition)


def test_status_values_stay_known() -> None:
    assert {s.value for s in InvitationStatus} == {
        "scheduled", "sending", "sent", "failed", "cancelled"
    }  # fmt: skip


def test_without_an_sms_provider_sms_is_never_chosen(
    workspace: Workspace, org: dict[str, Any], settings: Any
) -> None:
    settings.SMS_BACKEND = "none"
    make_survey(workspace, channels=["sms", "email"], quiet_period_days=0)
    both = make_customer(workspace, "C1", consent={"email": True, "sms": True})
    sms_only = make_customer(workspace, "C2", email="", consent={"sms": True})
    visit(workspace, org, both, "I1", NOW)
    visit(workspace, org, sms_only, "I2", NOW)
    rules.evaluate_new(workspace, now=NOW)
    assert Invitation.objects.get().delivery_channel == "email"
    skipped = Decision.objects.get(customer=sms_only)
    assert skipped.reason == Reason.NO_CONTACT  # no e-mail is the more telling reason
    assert "no SMS provider" in skipped.detail


def test_scheduling_on_request_keeps_the_same_protections(
    workspace: Workspace, org: dict[str, Any]
) -> None:
    survey = make_survey(workspace, send_window=None)
    customer = make_customer(workspace, consent={"email": True, "sms": True})
    first = rules.schedule_for(survey, customer, now=NOW, delay=dt.timedelta(minutes=10))
    assert (first.outcome, first.reason) == ("scheduled", Reason.MATCHED)
    assert first.invitation is not None
    assert first.invitation.scheduled_for == NOW + dt.timedelta(minutes=10)
    again = rules.schedule_for(survey, customer, now=NOW + dt.timedelta(days=1))
    assert (again.outcome, again.reason) == ("skipped", Reason.QUIET_PERIOD)
    by_sms = rules.schedule_for(
        survey,
        make_customer(workspace, "C2", consent={"sms": True}),
        now=NOW,
        channel="sms",
        placeholders={"product": "Gold card"},
    )
    assert by_sms.invitation is not None and by_sms.invitation.delivery_channel == "sms"
    context = context_of(by_sms.invitation)
    assert context["product"] == "Gold card"  # the caller's name wins
    assert context["branch"] == "Acme"  # no branch: the company's name
    unsubscribe(customer, via="cli", source="t")
    later = rules.schedule_for(survey, customer, now=NOW + dt.timedelta(days=60))
    assert later.reason == Reason.UNSUBSCRIBED
