"""The funnel's counts and the accounts-at-risk flags, on invitations built by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.customers.models import Account, Customer
from cxloop.organisation.models import Branch
from cxloop.surveys import funnel as funnels
from cxloop.surveys.models import AtRiskAccount, Invitation, InvitationStatus, Survey
from cxloop.surveys.tests.factories import make_customer, make_org, make_survey

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def invite(
    survey: Survey,
    customer: Customer | None = None,
    *,
    channel: str = "email",
    branch: Branch | None = None,
    sent_at: dt.datetime | None = NOW,
    delivered: bool = False,
    opened: bool = False,
    clicked: bool = False,
    answered: bool = False,
    bounced: bool = False,
    is_test: bool = False,
) -> Invitation:
    later = (sent_at or NOW) + dt.timedelta(minutes=5)
    return Invitation.objects.create(
        workspace=survey.workspace,
        survey=survey,
        customer=customer,
        delivery_channel=channel,
        language="en",
        is_test=is_test,
        branch=branch,
        status=InvitationStatus.SENT if sent_at else InvitationStatus.SCHEDULED,
        scheduled_for=sent_at or NOW,
        expires_at=(sent_at or NOW) + dt.timedelta(days=14),
        sent_at=sent_at,
        delivered_at=later if delivered else None,
        opened_at=later if opened else None,
        clicked_at=later if clicked else None,
        answered_at=later if answered else None,
        bounced_at=later if bounced else None,
    )


@pytest.fixture
def hand_built(workspace: Workspace) -> dict[str, Any]:
    """Eleven invitations; seven of them sent in the last 30 days count (see each line)."""
    org = make_org(workspace)
    b1 = org["branch"]
    b2 = Branch.objects.create(workspace=workspace, code="B02", name="Bălți", region=org["region"])
    survey = make_survey(workspace)
    other = make_survey(workspace, "other")
    customer = make_customer(workspace)
    invite(survey, customer, branch=b1)  # 1 sent, nothing heard since
    invite(survey, customer, branch=b1, delivered=True)  # 2 delivered
    invite(survey, customer, branch=b1, delivered=True, opened=True)  # 3 opened
    invite(survey, customer, branch=b2, delivered=True, opened=True, clicked=True, answered=True)
    # 5: answered by SMS, which reports no delivery, open or click: it still passed them all.
    invite(survey, customer, channel="sms", branch=b1, answered=True)
    invite(survey, customer, bounced=True)  # 6 bounced, no branch
    invite(survey, customer, delivered=True, bounced=True)  # 7 "delivered", then bounced
    # Not counted: a test, one not sent yet, one sent 40 days ago, another survey's.
    invite(survey, None, delivered=True, opened=True, answered=True, is_test=True)
    invite(survey, customer, sent_at=None)
    invite(survey, customer, sent_at=NOW - dt.timedelta(days=40), answered=True)
    invite(other, customer, answered=True)
    return {"survey": survey, "b1": b1, "b2": b2}


def counts(row: funnels.FunnelRow) -> tuple[int, ...]:
    return (row.sent, row.delivered, row.opened, row.clicked, row.answered, row.bounced)


def test_the_overall_funnel_counts_exactly_and_never_widens(
    hand_built: dict[str, Any], django_assert_num_queries: Any
) -> None:
    since = NOW - dt.timedelta(days=30)
    with django_assert_num_queries(1):
        rows = funnels.funnel(hand_built["survey"], since=since)
    assert len(rows) == 1
    row = rows[0]
    #                 sent delivered opened clicked answered bounced
    assert counts(row) == (7, 4, 3, 2, 2, 2)
    stages = [n for _stage, n in row.stages()]
    assert stages == sorted(stages, reverse=True)
    assert row.response_rate == pytest.approx(2 / 7)


def test_the_period_bounds_are_on_the_send_time(hand_built: dict[str, Any]) -> None:
    survey = hand_built["survey"]
    (all_time,) = funnels.funnel(survey)
    assert counts(all_time) == (8, 5, 4, 3, 3, 2)  # the one sent 40 days ago, answered
    (old,) = funnels.funnel(survey, until=NOW - dt.timedelta(days=30))
    assert counts(old) == (1, 1, 1, 1, 1, 0)
    (nothing,) = funnels.funnel(survey, since=NOW + dt.timedelta(seconds=1))
    assert counts(nothing) == (0, 0, 0, 0, 0, 0)
    assert nothing.response_rate is None


def test_the_funnel_by_channel(hand_built: dict[str, Any], django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        rows = funnels.funnel(
            hand_built["survey"], since=NOW - dt.timedelta(days=30), by="delivery_channel"
        )
    assert [(r.key, r.label) for r in rows] == [("email", "E-mail"), ("sms", "SMS")]
    assert counts(rows[0]) == (6, 3, 2, 1, 1, 2)
    assert counts(rows[1]) == (1, 1, 1, 1, 1, 0)


def test_the_funnel_by_branch(hand_built: dict[str, Any], django_assert_num_queries: Any) -> None:
    b1, b2 = hand_built["b1"], hand_built["b2"]
    with django_assert_num_queries(1):
        rows = funnels.funnel(hand_built["survey"], since=NOW - dt.timedelta(days=30), by="branch")
    assert [(r.key, r.label) for r in rows] == [
        (str(b1.pk), "Chișinău Centru"),
        ("", "No branch"),
        (str(b2.pk), "Bălți"),
    ]
    assert counts(rows[0]) == (4, 3, 2, 1, 1, 0)
    assert counts(rows[1]) == (2, 0, 0, 0, 0, 2)
    assert counts(rows[2]) == (1, 1, 1, 1, 1, 0)


def test_survey_totals_are_per_survey_and_per_workspace(
    hand_built: dict[str, Any], other_workspace: Workspace
) -> None:
    survey = hand_built["survey"]
    theirs = make_survey(other_workspace)
    invite(theirs, make_customer(other_workspace), answered=True)
    totals = funnels.survey_totals(survey.workspace, since=NOW - dt.timedelta(days=30))
    other = Survey.objects.get(workspace=survey.workspace, code="other")
    assert set(totals) == {survey.pk, other.pk}
    assert (totals[survey.pk].sent, totals[survey.pk].answered) == (7, 2)
    assert (totals[other.pk].sent, totals[other.pk].answered) == (1, 1)


def test_decisions_by_reason_leave_out_test_sends(workspace: Workspace) -> None:
    from cxloop.surveys.models import Decision

    survey = make_survey(workspace)
    customer = make_customer(workspace)
    test = invite(survey, None, is_test=True)
    common = {"workspace": workspace, "survey": survey, "created_at": NOW}
    Decision.objects.bulk_create(
        [
            Decision(**common, customer=customer, outcome="skipped", reason="quiet_period"),
            Decision(**common, customer=customer, outcome="skipped", reason="quiet_period"),
            Decision(**common, customer=customer, outcome="skipped", reason="no_consent"),
            Decision(**common, customer=customer, outcome="failed", reason="transient"),
            Decision(**common, invitation=test, outcome="sent", reason="delivered"),
            Decision(
                **{**common, "created_at": NOW - dt.timedelta(days=40)},
                customer=customer,
                outcome="skipped",
                reason="sampled_out",
            ),
        ]
    )
    reasons = funnels.decisions_by_reason(survey, since=NOW - dt.timedelta(days=30))
    assert [(r.outcome, r.reason, r.count) for r in reasons] == [
        ("skipped", "quiet_period", 2),
        ("failed", "transient", 1),
        ("skipped", "no_consent", 1),
    ]
    assert [r.reason for r in reasons if r.not_surveyed] == ["quiet_period", "no_consent"]
    assert reasons[0].label == "Quiet period"


# --- accounts at risk ----------------------------------------------------------------------


def b2b(workspace: Workspace, name: str, contacts: int = 2) -> tuple[Account, list[Customer]]:
    account = Account.objects.create(workspace=workspace, external_id=name, name=f"{name} SRL")
    people = [
        make_customer(workspace, f"{name}-{n}", account=account, is_b2b=True)
        for n in range(contacts)
    ]
    return account, people


def history(survey: Survey, contacts: list[Customer], answered: list[bool]) -> list[Invitation]:
    """Invitations a day apart, oldest first, to the contacts in turn, all expired by NOW."""
    start = NOW - dt.timedelta(days=30 + len(answered))
    return [
        invite(
            survey,
            contacts[n % len(contacts)],
            sent_at=start + dt.timedelta(days=n),
            answered=was_answered,
        )
        for n, was_answered in enumerate(answered)
    ]


def open_flags(workspace: Workspace) -> dict[str, int]:
    return {
        flag.account.external_id: flag.unanswered
        for flag in AtRiskAccount.objects.filter(
            workspace=workspace, cleared_at__isnull=True
        ).select_related("account")
    }


def test_an_account_is_flagged_after_n_unanswered_and_cleared_by_an_answer(
    workspace: Workspace,
) -> None:
    survey = make_survey(workspace)  # unanswered_in_row: 3 (the default)
    account, contacts = b2b(workspace, "ACME")
    history(survey, contacts, [True, False, False, False])
    # Not part of the run: a test send, and one not sent yet.
    invite(survey, None, is_test=True, answered=False)
    invite(survey, contacts[0], sent_at=None)

    assert funnels.flag_silent_accounts(workspace, now=NOW) == 1
    assert open_flags(workspace) == {"ACME": 3}
    # Again: nothing new, still one open flag.
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert AtRiskAccount.objects.filter(account=account).count() == 1

    # The silence goes on: the open flag follows it.
    invite(survey, contacts[1], sent_at=NOW + dt.timedelta(hours=1))
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert open_flags(workspace) == {"ACME": 3}  # still open: it may yet be answered
    assert funnels.flag_silent_accounts(workspace, now=NOW + dt.timedelta(days=15)) == 0
    assert open_flags(workspace) == {"ACME": 4}

    # A contact answers the latest invitation: cleared.
    latest = Invitation.objects.filter(customer__account=account, sent_at__isnull=False).latest(
        "sent_at"
    )
    Invitation.objects.filter(pk=latest.pk).update(answered_at=NOW + dt.timedelta(hours=2))
    later = NOW + dt.timedelta(days=16)
    assert funnels.flag_silent_accounts(workspace, now=later) == 0
    assert open_flags(workspace) == {}
    flag = AtRiskAccount.objects.get(account=account)
    assert flag.cleared_at == later

    # Silent again for three invitations: a new flag opens beside the cleared one.
    for hours in (3, 4, 5):
        invite(survey, contacts[0], sent_at=NOW + dt.timedelta(hours=hours))
    assert funnels.flag_silent_accounts(workspace, now=later) == 1
    assert AtRiskAccount.objects.filter(account=account).count() == 2
    assert open_flags(workspace) == {"ACME": 3}


def test_n_minus_one_unanswered_is_not_at_risk(workspace: Workspace) -> None:
    survey = make_survey(workspace)
    b2b_account, contacts = b2b(workspace, "ACME")
    history(survey, contacts, [False, True, False, False])  # the last two only
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert open_flags(workspace) == {}
    assert funnels.unanswered_runs(workspace) == {b2b_account.pk: 2}


def test_n_is_the_smallest_of_the_active_surveys(workspace: Workspace) -> None:
    survey = make_survey(workspace, unanswered_in_row=5)
    make_survey(workspace, "strict", unanswered_in_row=2)
    off = make_survey(workspace, "off", unanswered_in_row=2)
    _account, contacts = b2b(workspace, "ACME")
    history(survey, contacts, [False, False])
    assert funnels.unanswered_threshold(workspace) == 2
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 1

    Survey.objects.filter(code="strict").update(is_active=False)
    assert off.is_active and funnels.unanswered_threshold(workspace) == 2
    Survey.objects.filter(code="off").update(is_active=False)
    assert funnels.unanswered_threshold(workspace) == 5
    # N went up: two unanswered are no longer a risk.
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert open_flags(workspace) == {}


def test_without_surveys_n_is_three(workspace: Workspace) -> None:
    assert funnels.unanswered_threshold(workspace) == 3


def test_workspaces_are_flagged_apart(workspace: Workspace, other_workspace: Workspace) -> None:
    ours = make_survey(workspace)
    theirs = make_survey(other_workspace)
    _a, our_contacts = b2b(workspace, "ACME")
    _b, their_contacts = b2b(other_workspace, "GLOBEX")
    history(ours, our_contacts, [True, True, False])
    history(theirs, their_contacts, [False, False, False, False])

    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert AtRiskAccount.objects.count() == 0
    assert funnels.flag_silent_accounts(other_workspace, now=NOW) == 1
    assert open_flags(workspace) == {}
    assert open_flags(other_workspace) == {"GLOBEX": 4}


def test_invitations_still_open_do_not_count_as_unanswered(workspace: Workspace) -> None:
    survey = make_survey(workspace)
    _account, contacts = b2b(workspace, "ACME")
    history(survey, contacts, [False, False])
    # Sent yesterday, answerable for two more weeks: not silence yet.
    invite(survey, contacts[0], sent_at=NOW - dt.timedelta(days=1))
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    # Two weeks on it has expired unanswered: the third in a row.
    assert funnels.flag_silent_accounts(workspace, now=NOW + dt.timedelta(days=14)) == 1


def test_customers_without_an_account_are_not_flagged(workspace: Workspace) -> None:
    survey = make_survey(workspace)
    history(survey, [make_customer(workspace, "B2C")], [False] * 5)
    assert funnels.flag_silent_accounts(workspace, now=NOW) == 0
    assert AtRiskAccount.objects.count() == 0


def test_the_number_of_queries_does_not_grow_with_accounts(
    workspace: Workspace, django_assert_max_num_queries: Any
) -> None:
    survey = make_survey(workspace)
    for n in range(30):
        _account, contacts = b2b(workspace, f"A{n:02}", contacts=1)
        history(survey, contacts, [n % 2 == 0, False, False, False])
    with django_assert_max_num_queries(8):
        assert funnels.flag_silent_accounts(workspace, now=NOW) == 30
    # The even ones answered their first invitation: a run of 3; the odd ones never did: 4.
    assert open_flags(workspace) == {f"A{n:02}": 3 if n % 2 == 0 else 4 for n in range(30)}
    for flag in AtRiskAccount.objects.all():
        assert flag.flagged_at == NOW


def test_contacts_read_in_batches_give_the_same_runs(
    workspace: Workspace, other_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    survey = make_survey(workspace)
    theirs = make_survey(other_workspace)
    expected = {}
    for n in range(11):
        account, contacts = b2b(workspace, f"A{n:02}", contacts=1 + n % 3)
        # Runs of 0 to 4; an answer further back changes nothing.
        history(survey, contacts, [n % 2 == 0] + [True] + [False] * (n % 5))
        expected[account.pk] = n % 5
        # Another workspace's silent accounts have ids in the same ranges.
        _other, their_contacts = b2b(other_workspace, f"G{n:02}")
        history(theirs, their_contacts, [False] * 6)
    whole = funnels.unanswered_runs(workspace)
    assert whole == expected
    monkeypatch.setattr(funnels, "CONTACT_BATCH", 4)
    assert funnels.unanswered_runs(workspace) == expected
