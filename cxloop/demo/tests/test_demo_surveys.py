# ruff: noqa: RUF001 - Cyrillic letters in expectations on purpose
"""The demo's surveys: the rules as documented, a consistent history, and findable patterns."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import zoneinfo
from collections.abc import Iterable
from typing import Any

import pytest
from django.db.models import F

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import create_workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.demo import surveys as demo_surveys
from cxloop.demo.generator import (
    WAITING_BRANCH,
    WAITING_FIX_AT,
    DemoOptions,
    DemoSummary,
    default_end,
    generate_demo,
)
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Touchpoint
from cxloop.surveys.definition import parse_definition, parse_rules
from cxloop.surveys.models import (
    AtRiskAccount,
    Decision,
    Invitation,
    Response,
    Suppression,
    Survey,
    Wave,
)
from cxloop.surveys.rules import evaluate_new

pytestmark = pytest.mark.django_db

END = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
FUNNEL = ("sent_at", "delivered_at", "opened_at", "clicked_at", "answered_at")


def demo(workspace: Workspace, customers: int = 300, seed: int = 7, **extra: Any) -> DemoSummary:
    options: dict[str, Any] = {"interactions": 10 * customers, "end": END, **extra}
    return generate_demo(workspace, DemoOptions(customers=customers, seed=seed, **options))


def nps(scores: Iterable[int | None]) -> float:
    values = [s for s in scores if s is not None]
    assert values, "no answers to compute an NPS from"
    return 100 * (sum(s >= 9 for s in values) - sum(s <= 6 for s in values)) / len(values)


def after_visit(workspace: Workspace) -> list[dict[str, Any]]:
    rows = Response.objects.filter(workspace=workspace, survey__code="after-visit").values(
        "score", "branch__code", "employee__code", "interaction__occurred_at", "answers"
    )
    return [dict(row) for row in rows]


@pytest.fixture
def demo_workspace(workspace: Workspace) -> Workspace:
    demo(workspace, customers=1000)
    return workspace


def test_the_after_visit_survey_has_exactly_the_documented_rules(workspace: Workspace) -> None:
    started = clock.now()
    demo(workspace)

    survey = Survey.objects.get(workspace=workspace, code="after-visit")
    assert (survey.kind, survey.is_active) == ("transactional", True)
    expected = {
        "touchpoints": ["store-visit"], "delay_minutes": 0, "sampling_rate": 1.0,
        "quiet_period_days": 30, "send_window": None, "channels": ["email", "sms"],
        "reminder_after_days": 3, "expiry_days": 14,
    }  # fmt: skip
    assert {key: survey.rules[key] for key in expected} == expected
    assert parse_rules(survey.rules).model_dump(mode="json") == survey.rules
    definition = parse_definition(survey.definition)
    assert definition.languages == ["en", "ru", "ro"]
    assert definition.score_question.type == "nps"
    # The year of demo interactions happened before the survey started: none triggers it.
    assert survey.active_since >= started
    assert not Interaction.objects.filter(
        workspace=workspace, created_at__gte=survey.active_since
    ).exists()

    touchpoint = Touchpoint.objects.get(workspace=workspace, code="store-visit")
    assert (touchpoint.name, touchpoint.channel and touchpoint.channel.code) == (
        "Store visit", "store",
    )  # fmt: skip
    visits = Interaction.objects.filter(workspace=workspace, touchpoint=touchpoint)
    assert set(visits.values_list("type", flat=True)) == {"store_visit"}
    assert visits.count() > 0.05 * Interaction.objects.filter(workspace=workspace).count()
    assert not visits.filter(employee__isnull=True).exists()

    support = Survey.objects.get(workspace=workspace, code="support-csat")
    support_rules = parse_rules(support.rules)
    assert parse_definition(support.definition).score_question.type == "csat"
    assert support_rules.sampling_rate == 0.3
    assert support_rules.send_window is not None
    assert (support_rules.send_window.start, support_rules.send_window.end) == (
        dt.time(9), dt.time(20),
    )  # fmt: skip
    assert set(support_rules.touchpoints) <= set(
        Touchpoint.objects.filter(
            workspace=workspace, stage__journey__code="J-SUPPORT"
        ).values_list("code", flat=True)
    )
    relationship = Survey.objects.get(workspace=workspace, code="relationship-nps")
    assert relationship.kind == "relationship"
    assert not parse_rules(relationship.rules).touchpoints
    question = parse_definition(relationship.definition).question("competitors")
    assert question is not None and len(question.competitors) == 3


def test_the_same_seed_gives_the_same_answers_and_another_seed_others(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    third = create_workspace("third", "Third", via="cli")
    demo(workspace, seed=7)
    demo(other_workspace, seed=7)
    demo(third, seed=8)

    def answers(ws: Workspace) -> list[tuple[Any, ...]]:
        return list(
            Response.objects.filter(workspace=ws)
            .order_by("external_id")
            .values_list(
                "external_id",
                "survey__code",
                "score",
                "comment",
                "answers",
                "language",
                "answered_at",
                "customer__external_id",
                "interaction__external_id",
                "branch__code",
                "employee__code",
            )
        )

    def decisions(ws: Workspace) -> collections.Counter[tuple[str, str, str]]:
        return collections.Counter(
            Decision.objects.filter(workspace=ws).values_list("survey__code", "outcome", "reason")
        )

    assert answers(workspace)
    assert answers(workspace) == answers(other_workspace)
    assert decisions(workspace) == decisions(other_workspace)
    assert answers(workspace) != answers(third)


def test_responses_match_their_invitations_and_the_funnel_never_widens(
    demo_workspace: Workspace,
) -> None:
    ws = demo_workspace
    scales = {"after-visit": range(0, 11), "support-csat": range(1, 6),
              "relationship-nps": range(0, 11)}  # fmt: skip
    responses = Response.objects.filter(workspace=ws).select_related("invitation", "customer")
    assert responses.count() > 100
    for response in responses:
        invitation = response.invitation
        assert invitation is not None
        assert response.score in scales[response.survey.code]
        assert invitation.answered_at == response.answered_at
        assert invitation.survey_id == response.survey_id
        assert invitation.customer_id == response.customer_id
        assert invitation.interaction_id == response.interaction_id
        assert (invitation.branch_id, invitation.employee_id, invitation.touchpoint_id) == (
            response.branch_id, response.employee_id, response.touchpoint_id,
        )  # fmt: skip
        assert response.customer is not None
        assert response.language == invitation.language == response.customer.language
        assert response.source in ("email", "web")
        assert set(response.answers.get("reasons", [])) <= set(
            demo_surveys.REASONS[demo_surveys.CODES.index(response.survey.code)]
        )
        if response.may_contact:
            assert response.score is not None and response.score <= 6
            assert response.contact_phone.startswith("+373")
    # Transactional answers describe what happened where: the interaction's own details.
    mismatched = Response.objects.filter(workspace=ws, interaction__isnull=False).exclude(
        branch=F("interaction__branch")
    )
    assert not mismatched.exists()

    invitations = list(Invitation.objects.filter(workspace=ws).values(*FUNNEL, "bounced_at"))
    counts = [sum(1 for i in invitations if i[stage] is not None) for stage in FUNNEL]
    assert counts == sorted(counts, reverse=True)
    for row in invitations:
        reached = [row[stage] for stage in FUNNEL if row[stage] is not None]
        assert reached == sorted(reached)
        # Each stage implies the ones before it; a bounce is no delivery.
        assert [row[stage] is not None for stage in FUNNEL] == sorted(
            (row[stage] is not None for stage in FUNNEL), reverse=True
        )
        assert row["bounced_at"] is None or row["delivered_at"] is None
    sent = counts[0]
    assert 0.93 < counts[1] / sent < 0.995  # delivered
    assert 0.35 < counts[2] / sent < 0.58  # opened
    assert 0.22 < counts[3] / sent < 0.42  # clicked
    assert 0.17 < counts[4] / sent < 0.33  # answered
    bounced = sum(1 for i in invitations if i["bounced_at"] is not None)
    assert 0.003 < bounced / sent < 0.04
    # Bounced addresses are suppressed, as the webhook would have done.
    assert Suppression.objects.filter(workspace=ws, reason="bounced").exists()


def test_the_history_never_makes_the_dispatcher_send_anything(demo_workspace: Workspace) -> None:
    ws = demo_workspace
    now = clock.now()
    invitations = Invitation.objects.filter(workspace=ws)
    assert set(invitations.values_list("status", flat=True)) == {"sent"}
    assert not invitations.filter(sent_at__gte=now).exists()
    assert not invitations.filter(scheduled_for__gte=now).exists()
    # A reminder is either sent or not due: none is left for the dispatcher to send.
    assert not invitations.filter(
        reminder_due_at__isnull=False, reminder_sent_at__isnull=True, answered_at__isnull=True
    ).exists()
    # Every invitation has the trail the trigger and the dispatcher leave.
    trail = collections.Counter(
        Decision.objects.filter(workspace=ws, invitation__isnull=False).values_list(
            "invitation_id", "outcome"
        )
    )
    for pk in invitations.values_list("pk", flat=True):
        assert trail[(pk, "scheduled")] == 1
        assert trail[(pk, "sent")] == 1
    skips = collections.Counter(
        Decision.objects.filter(workspace=ws, outcome="skipped").values_list("reason", flat=True)
    )
    assert {"sampled_out", "quiet_period", "no_consent", "survey_limit"} <= set(skips)
    quiet = Decision.objects.filter(workspace=ws, reason="quiet_period").first()
    assert quiet is not None and "quiet period 30 days" in quiet.detail


def test_no_customer_is_invited_twice_within_the_quiet_period(demo_workspace: Workspace) -> None:
    times: dict[int, list[dt.datetime]] = collections.defaultdict(list)
    for customer, at in Invitation.objects.filter(workspace=demo_workspace).values_list(
        "customer_id", "scheduled_for"
    ):
        times[customer].append(at)
    repeated = 0
    for values in times.values():
        values.sort()
        for before, after in itertools.pairwise(values):
            repeated += 1
            assert after - before >= dt.timedelta(days=30)
    assert repeated > 50


def test_comments_come_in_the_customers_languages(demo_workspace: Workspace) -> None:
    comments = collections.defaultdict(list)
    for language, comment in (
        Response.objects.filter(workspace=demo_workspace)
        .exclude(comment="")
        .values_list("language", "comment")
    ):
        comments[language].append(comment)
    assert set(comments) == {"ro", "ru", "en"}
    total = Response.objects.filter(workspace=demo_workspace).count()
    assert 0.3 < sum(len(c) for c in comments.values()) / total < 0.5
    assert all(any("а" <= ch <= "я" for ch in c.lower()) for c in comments["ru"])
    assert all(c.isascii() for c in comments["en"])
    assert any(ch in "ăâîșț" for c in comments["ro"] for ch in c)
    assert len(set(comments["ro"])) > 20


def test_the_comment_templates_are_many_and_well_spelt() -> None:
    for language in ("en", "ru", "ro"):
        assert len({t[3][language] for t in demo_surveys.TEMPLATES}) >= 30
    romanian = " ".join(t[3]["ro"] for t in demo_surveys.TEMPLATES)
    # Romanian writes ș and ț with a comma below, never the Turkish cedilla.
    assert "ş" not in romanian and "ţ" not in romanian
    assert "ș" in romanian and "ț" in romanian and "ă" in romanian
    assert demo_surveys.minutes_text("ro", 25) == "25 de minute"
    assert demo_surveys.minutes_text("ro", 15) == "15 minute"
    assert demo_surveys.minutes_text("ru", 40) == "40 минут"


def test_the_relationship_wave_asks_about_competitors(demo_workspace: Workspace) -> None:
    ws = demo_workspace
    wave = Wave.objects.get(workspace=ws)
    assert wave.survey.code == "relationship-nps"
    assert wave.created_at < END - dt.timedelta(days=60)
    invited = Invitation.objects.filter(workspace=ws, wave=wave)
    assert invited.count() == wave.sample_size == 80  # 8 % of 1,000
    assert sum(a["sample"] for a in wave.allocation.values()) == wave.sample_size
    assert not invited.filter(interaction__isnull=False).exists()
    answers = list(
        Response.objects.filter(workspace=ws, survey=wave.survey).values_list("answers", flat=True)
    )
    assert 0.1 < len(answers) / wave.sample_size < 0.35
    competitors = [a["competitors"] for a in answers if "competitors" in a]
    assert competitors
    names = set(demo_surveys.COMPETITORS)
    assert all(set(c["uses"]) <= names and set(c["scores"]) <= set(c["uses"]) for c in competitors)
    assert any(c["scores"] for c in competitors)


def test_some_business_accounts_stopped_answering(demo_workspace: Workspace) -> None:
    runs: dict[int, int] = {}
    done: set[int] = set()
    rows = (
        Invitation.objects.filter(workspace=demo_workspace, customer__account__isnull=False)
        .order_by("customer__account_id", "-sent_at")
        .values_list("customer__account_id", "answered_at")
    )
    for account, answered in rows:
        runs.setdefault(account, 0)
        if account in done:
            continue
        if answered is None:
            runs[account] += 1
        else:
            done.add(account)
    assert any(run >= 3 for run in runs.values())
    assert any(account in done for account in runs)
    # The funnel's daily task has already flagged them.
    assert AtRiskAccount.objects.filter(workspace=demo_workspace).exists()


def test_the_planted_patterns_can_be_found(workspace: Workspace) -> None:
    summary = demo(workspace, customers=6000, seed=3)
    rows = after_visit(workspace)
    scores = [r["score"] for r in rows]
    assert 15 < nps(scores) < 40

    by_branch: dict[str, list[int]] = collections.defaultdict(list)
    for r in rows:
        by_branch[r["branch__code"]].append(r["score"])
    better = [s for code in summary.planted["better branches"] for s in by_branch[code]]
    worse = [s for code in summary.planted["worse branches"] for s in by_branch[code]]
    assert nps(better) > nps(scores) + 15
    assert nps(worse) < nps(scores) - 15
    assert nps(better) > nps(worse) + 40

    local = [(r["interaction__occurred_at"].astimezone(CHISINAU), r["score"]) for r in rows]
    evening = [s for at, s in local if at.hour >= 18]
    daytime = [s for at, s in local if at.hour < 18]
    assert nps(evening) < nps(daytime) - 12
    monday_saturday = [s for at, s in local if at.weekday() in (0, 5)]
    midweek = [s for at, s in local if at.weekday() in (1, 2, 3, 4)]
    assert nps(monday_saturday) < nps(midweek) - 10

    standouts = set(summary.planted["standout employees"])
    poor = set(summary.planted["poor employees"])
    assert (
        nps(r["score"] for r in rows if r["employee__code"] in standouts)
        > nps(r["score"] for r in rows if r["employee__code"] in poor) + 40
    )
    csat = Response.objects.filter(workspace=workspace, survey__code="support-csat")

    def mean_csat(codes: set[str]) -> float:
        values = [
            s
            for s in csat.filter(employee__code__in=codes).values_list("score", flat=True)
            if s is not None
        ]
        return sum(values) / len(values)

    assert mean_csat(standouts) > mean_csat(poor) + 0.5

    # Detractors mostly blame the wait, promoters praise the people and the service.
    def reasons(band: range) -> collections.Counter[str]:
        return collections.Counter(
            reason for r in rows if r["score"] in band for reason in r["answers"].get("reasons", [])
        )

    assert reasons(range(0, 7)).most_common(1)[0][0] == "waiting"
    assert {reason for reason, _ in reasons(range(9, 11)).most_common(2)} == {"staff", "quality"}

    # The queue at one store: long waits until the fix, shorter after.
    fix = dt.datetime.combine(
        END.date() - dt.timedelta(days=365) + dt.timedelta(days=int(365 * WAITING_FIX_AT)),
        dt.time(),
        tzinfo=CHISINAU,
    )
    visits = Interaction.objects.filter(
        workspace=workspace, type="store_visit", branch__code=WAITING_BRANCH
    )
    before = [a["wait_min"] for a in visits.filter(occurred_at__lt=fix).values_list(
        "attributes", flat=True)]  # fmt: skip
    recent = [a["wait_min"] for a in visits.filter(
        occurred_at__gte=END - dt.timedelta(days=30)).values_list("attributes", flat=True)]  # fmt: skip
    assert sum(before) / len(before) > sum(recent) / len(recent) + 4

    # Competitors: one rated below us, one above.
    ours, rated = [], collections.defaultdict(list)
    for score, answers in Response.objects.filter(
        workspace=workspace, survey__code="relationship-nps"
    ).values_list("score", "answers"):
        ours.append(score)
        for name, value in answers.get("competitors", {}).get("scores", {}).items():
            rated[name].append(value)
    assert nps(rated["Orion Mobile"]) < nps(ours) - 15
    assert nps(rated["Nistru Telecom"]) > nps(ours) + 15


def test_a_store_visit_posted_after_the_demo_is_surveyed_unless_the_customer_was_lately(
    workspace: Workspace,
) -> None:
    demo(workspace, customers=500, end=default_end())
    now = clock.now()
    touchpoint = Touchpoint.objects.get(workspace=workspace, code="store-visit")
    branch = Branch.objects.get(workspace=workspace, code="B01")
    reachable = (
        Customer.objects.filter(workspace=workspace, consent__email=True)
        .exclude(email="")
        .exclude(pk__in=Suppression.objects.filter(workspace=workspace).values("customer_id"))
    )
    invited = Invitation.objects.filter(workspace=workspace)
    recently = reachable.filter(
        pk__in=invited.filter(scheduled_for__gte=now - dt.timedelta(days=20)).values("customer_id")
    ).first()
    quiet = (
        reachable.exclude(
            pk__in=invited.filter(scheduled_for__gte=now - dt.timedelta(days=95)).values(
                "customer_id"
            )
        )
        .order_by("external_id")
        .first()
    )
    assert recently is not None and quiet is not None
    before = Decision.objects.filter(workspace=workspace).count()
    for n, customer in enumerate((quiet, recently)):
        Interaction.objects.create(
            workspace=workspace, source="try", external_id=f"visit-{n}", customer=customer,
            type="visit", occurred_at=now - dt.timedelta(minutes=5), touchpoint=touchpoint,
            branch=branch,
        )  # fmt: skip

    assert evaluate_new(workspace, now=now) == 2

    new = Decision.objects.filter(workspace=workspace).order_by("pk")[before:]
    outcome = {d.customer_id: (d.outcome, d.reason) for d in new}
    assert outcome == {
        quiet.pk: ("scheduled", "matched"),
        recently.pk: ("skipped", "quiet_period"),
    }
    invitation = Invitation.objects.get(workspace=workspace, interaction__source="try")
    assert invitation.customer_id == quiet.pk
    assert invitation.survey.code == "after-visit"
    assert invitation.scheduled_for <= now  # no delay, no send window: sent at the next tick
