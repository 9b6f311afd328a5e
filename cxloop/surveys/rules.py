"""Who gets which transactional survey, when — and why not.

``evaluate`` looks at interactions against every active transactional survey they match and
records one ``Decision`` per (survey, interaction): *scheduled* with a new ``Invitation``, or
*skipped* with its reason. Checks, in order: interaction too old; unsubscribed; channel,
contact, consent and bounces; sampling; the quiet period across all surveys; the survey's
limit per customer; the branch's daily cap. ``evaluate_new`` reads new interactions from a
per-workspace cursor; ``sweep`` looks again at recent ones that committed out of id order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Touchpoint

from .definition import Rules, SurveyDefinition, parse_rules
from .models import (
    Decision,
    DecisionOutcome,
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Reason,
    Survey,
    SurveyKind,
    TriggerCursor,
)
from .render import definition_of
from .schedule import day_bounds, local_day, local_zone, next_send_time
from .suppression import SuppressionIndex, load_index

log = logging.getLogger(__name__)

SCAN_LIMIT = 2000
# Invitations that no longer count towards fatigue limits.
INACTIVE = (InvitationStatus.CANCELLED, InvitationStatus.FAILED)


@dataclass
class Trigger:
    survey: Survey
    rules: Rules
    definition: SurveyDefinition
    touchpoint_ids: frozenset[int]
    types: frozenset[str]

    def matches(self, interaction: Interaction) -> bool:
        if interaction.created_at < self.survey.active_since:
            return False
        return interaction.touchpoint_id in self.touchpoint_ids or interaction.type in self.types


def load_triggers(workspace: Workspace) -> list[Trigger]:
    surveys = list(
        Survey.objects.filter(
            workspace=workspace, kind=SurveyKind.TRANSACTIONAL, is_active=True
        ).order_by("pk")
    )
    triggers = []
    for survey in surveys:
        try:
            rules = parse_rules(survey.rules)
            definition = definition_of(survey)
        except ValueError:
            log.warning("survey %s has an invalid definition or rules; not triggered", survey.pk)
            continue
        tp_ids = frozenset(
            Touchpoint.objects.filter(workspace=workspace, code__in=rules.touchpoints).values_list(
                "pk", flat=True
            )
        )
        if tp_ids or rules.interaction_types:
            triggers.append(
                Trigger(survey, rules, definition, tp_ids, frozenset(rules.interaction_types))
            )
    return triggers


def sample_value(survey_id: int, interaction_id: int) -> float:
    """A stable number in [0, 1) per pair: the same interaction is always in or out."""
    digest = hashlib.sha256(f"{survey_id}:{interaction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Choice:
    channel: str | None
    reason: str
    detail: str


def choose_channel(
    customer: Customer, rules: Rules, suppressions: SuppressionIndex, skip: str | None = None
) -> Choice:
    """The first channel of the survey's preference the customer can be reached by."""
    if suppressions.unsubscribed(customer):
        return Choice(None, Reason.UNSUBSCRIBED, "the customer unsubscribed")
    why: list[tuple[str, str]] = []
    for channel in rules.channels:
        if channel == skip:
            continue
        address = customer.email if channel == DeliveryChannel.EMAIL else customer.phone
        if channel == DeliveryChannel.SMS and settings.SMS_BACKEND == "none":
            why.append((Reason.NO_CHANNEL, "sms: no SMS provider configured"))
        elif not address:
            why.append((Reason.NO_CONTACT, f"{channel}: no address"))
        elif not customer.consents_to(channel):
            why.append((Reason.NO_CONSENT, f"{channel}: no consent"))
        elif (bad := suppressions.address_reason(channel, address)) is not None:
            why.append((Reason.BOUNCED, f"{channel}: address {bad}"))
        else:
            return Choice(channel, Reason.MATCHED, "")
    # The most telling reason: a refusal beats a bounce beats a missing address.
    order: list[str] = [Reason.NO_CONSENT, Reason.BOUNCED, Reason.NO_CONTACT, Reason.NO_CHANNEL]
    reason = min((r for r, _ in why), key=lambda r: order.index(r), default=Reason.NO_CONTACT)
    return Choice(None, reason, "; ".join(d for _, d in why))


class _Ledger:
    """Invitations already made for the customers in hand (from the database and this run)."""

    def __init__(self, workspace: Workspace, customer_ids: set[int], horizon: dt.datetime) -> None:
        self.by_customer: dict[int, list[tuple[dt.datetime, int, str]]] = defaultdict(list)
        ids = sorted(customer_ids)
        for start in range(0, len(ids), 5000):
            rows = (
                Invitation.objects.filter(
                    workspace=workspace,
                    customer_id__in=ids[start : start + 5000],
                    scheduled_for__gte=horizon,
                    is_test=False,
                )
                .exclude(status__in=INACTIVE)
                .values_list("customer_id", "scheduled_for", "survey_id", "survey__code")
            )
            for customer_id, when, survey_id, code in rows:
                self.by_customer[customer_id].append((when, survey_id, code))
        self.branch_counts: dict[tuple[int, int, dt.date], int] = {}

    def quiet(self, customer_id: int, at: dt.datetime, days: int) -> tuple[dt.datetime, str] | None:
        if days <= 0:
            return None
        window = dt.timedelta(days=days)
        for when, _, code in self.by_customer.get(customer_id, ()):
            if abs(when - at) < window:
                return when, code
        return None

    def survey_count(self, customer_id: int, survey_id: int, at: dt.datetime, days: int) -> int:
        window = dt.timedelta(days=days)
        return sum(
            1
            for when, sid, _ in self.by_customer.get(customer_id, ())
            if sid == survey_id and abs(when - at) < window
        )

    def fatigue(
        self, customer_id: int, survey: Survey, rules: Rules, at: dt.datetime
    ) -> tuple[str, str] | None:
        """(reason, detail) when the quiet period or the survey's limit forbids asking at ``at``."""
        if (hit := self.quiet(customer_id, at, rules.quiet_period_days)) is not None:
            when, code = hit
            return (
                Reason.QUIET_PERIOD,
                f"invited {when:%Y-%m-%d} ({code}); quiet period {rules.quiet_period_days} days",
            )
        count = self.survey_count(customer_id, survey.pk, at, rules.max_period_days)
        if count >= rules.max_per_customer:
            return (
                Reason.SURVEY_LIMIT,
                f"{count} in {rules.max_period_days} days (limit {rules.max_per_customer})",
            )
        return None

    def branch_count(self, survey: Survey, branch: Branch, day: dt.date, tz_name: str) -> int:
        key = (survey.pk, branch.pk, day)
        if key not in self.branch_counts:
            start, end = day_bounds(day, local_zone(tz_name))
            self.branch_counts[key] = (
                Invitation.objects.filter(
                    survey=survey,
                    branch=branch,
                    scheduled_for__gte=start,
                    scheduled_for__lt=end,
                    is_test=False,
                )
                .exclude(status__in=INACTIVE)
                .count()
            )
        return self.branch_counts[key]

    def add(self, invitation: Invitation, branch_key: tuple[int, int, dt.date] | None) -> None:
        assert invitation.customer_id is not None
        self.by_customer[invitation.customer_id].append(
            (invitation.scheduled_for, invitation.survey_id, invitation.survey.code)
        )
        if branch_key is not None:
            self.branch_counts[branch_key] = self.branch_counts.get(branch_key, 0) + 1


def evaluate(
    workspace: Workspace,
    interactions: Sequence[Interaction],
    *,
    now: dt.datetime | None = None,
    triggers: list[Trigger] | None = None,
) -> list[Decision]:
    """Decide, once, for every (matching survey, interaction); returns the new decisions."""
    now = now or clock.now()
    triggers = load_triggers(workspace) if triggers is None else triggers
    pairs = [(t, i) for i in interactions for t in triggers if t.matches(i)]
    if not pairs:
        return []
    decided = set(
        Decision.objects.filter(
            survey_id__in={t.survey.pk for t, _ in pairs},
            interaction_id__in={i.pk for _, i in pairs},
            outcome__in=[DecisionOutcome.SCHEDULED, DecisionOutcome.SKIPPED],
        ).values_list("survey_id", "interaction_id")
    )
    pairs = [(t, i) for t, i in pairs if (t.survey.pk, i.pk) not in decided]
    if not pairs:
        return []
    customers = {
        c.pk: c
        for c in Customer.objects.filter(pk__in={i.customer_id for _, i in pairs}).select_related(
            "workspace"
        )
    }
    branches = {
        b.pk: b
        for b in Branch.objects.filter(pk__in={i.branch_id for _, i in pairs if i.branch_id})
    }
    suppressions = load_index(workspace, customers.values())
    longest = max(max(t.rules.quiet_period_days, t.rules.max_period_days) for t, _ in pairs)
    ledger = _Ledger(workspace, set(customers), now - dt.timedelta(days=longest + 2))

    decisions: list[Decision] = []
    invitations: list[tuple[Invitation, Decision]] = []
    pairs.sort(key=lambda p: (p[1].occurred_at, p[1].pk, p[0].survey.pk))
    for trigger, interaction in pairs:
        survey, rules = trigger.survey, trigger.rules
        customer = customers[interaction.customer_id]

        def decide(reason: str, detail: str = "") -> None:
            decisions.append(
                Decision(
                    workspace=workspace,
                    survey=survey,  # noqa: B023
                    customer=customer,  # noqa: B023
                    interaction=interaction,  # noqa: B023
                    outcome=DecisionOutcome.SKIPPED,
                    reason=reason,
                    detail=detail[:300],
                    created_at=now,
                )
            )

        if interaction.occurred_at < now - dt.timedelta(hours=rules.max_interaction_age_hours):
            decide(Reason.TOO_OLD, f"older than {rules.max_interaction_age_hours} h")
            continue
        choice = choose_channel(customer, rules, suppressions)
        if choice.channel is None:
            decide(choice.reason, choice.detail)
            continue
        if sample_value(survey.pk, interaction.pk) >= rules.sampling_rate:
            decide(Reason.SAMPLED_OUT, f"sampling rate {rules.sampling_rate:.0%}")
            continue
        branch = branches.get(interaction.branch_id) if interaction.branch_id else None
        tz = local_zone(
            customer.time_zone, branch.time_zone if branch else None, workspace.time_zone
        )
        earliest = max(interaction.occurred_at + dt.timedelta(minutes=rules.delay_minutes), now)
        send_at = next_send_time(earliest, rules.send_window, tz)
        if (tired := ledger.fatigue(customer.pk, survey, rules, send_at)) is not None:
            decide(*tired)
            continue
        branch_key = None
        if branch is not None and rules.branch_daily_cap is not None:
            branch_tz = branch.time_zone or workspace.time_zone
            day = local_day(send_at, local_zone(branch_tz))
            used = ledger.branch_count(survey, branch, day, branch_tz)
            if used >= rules.branch_daily_cap:
                decide(
                    Reason.BRANCH_CAP,
                    f"{branch.code}: {used} on {day} (cap {rules.branch_daily_cap})",
                )
                continue
            branch_key = (survey.pk, branch.pk, day)
        invitation = Invitation(
            workspace=workspace,
            survey=survey,
            customer=customer,
            interaction=interaction,
            delivery_channel=choice.channel,
            language=trigger.definition.pick_language(
                customer.language, workspace.default_language
            ),
            branch_id=interaction.branch_id,
            employee_id=interaction.employee_id,
            product_id=interaction.product_id,
            channel_id=interaction.channel_id,
            touchpoint_id=interaction.touchpoint_id,
            scheduled_for=send_at,
            expires_at=send_at + dt.timedelta(days=rules.expiry_days),
        )
        ledger.add(invitation, branch_key)
        decision = Decision(
            workspace=workspace,
            survey=survey,
            customer=customer,
            interaction=interaction,
            outcome=DecisionOutcome.SCHEDULED,
            reason=Reason.MATCHED,
            detail=f"{choice.channel} at {send_at:%Y-%m-%d %H:%M} UTC",
            created_at=now,
        )
        invitations.append((invitation, decision))
        decisions.append(decision)

    with transaction.atomic():
        Invitation.objects.bulk_create([inv for inv, _ in invitations])
        for invitation, decision in invitations:
            decision.invitation = invitation
        Decision.objects.bulk_create(decisions)
    return decisions


def _scan(
    workspace: Workspace, triggers: list[Trigger], low: int, high: int, limit: int
) -> list[Interaction]:
    tp_ids = set().union(*(t.touchpoint_ids for t in triggers))
    types = set().union(*(t.types for t in triggers))
    return list(
        Interaction.objects.filter(workspace=workspace, pk__gt=low, pk__lte=high)
        .filter(Q(touchpoint_id__in=tp_ids) | Q(type__in=types))
        .order_by("pk")[:limit]
    )


def _cursor(workspace: Workspace) -> TriggerCursor:
    """The workspace's cursor, locked; a new one starts after interactions older than its surveys."""
    cursor = TriggerCursor.objects.filter(workspace=workspace).first()
    if cursor is None:
        first = (
            Survey.objects.filter(workspace=workspace, kind=SurveyKind.TRANSACTIONAL)
            .order_by("active_since")
            .values_list("active_since", flat=True)
            .first()
        )
        older = Interaction.objects.filter(workspace=workspace)
        start = (
            older.filter(created_at__lt=first).aggregate(top=Max("pk"))["top"]
            if first
            else older.aggregate(top=Max("pk"))["top"]
        ) or 0
        cursor, _ = TriggerCursor.objects.get_or_create(
            workspace=workspace, defaults={"position": start, "mark": start, "swept": start}
        )
    return TriggerCursor.objects.select_for_update().get(pk=cursor.pk)


def evaluate_new(workspace: Workspace, *, now: dt.datetime | None = None) -> int:
    """Evaluate interactions received since the last call; returns the decisions made."""
    now = now or clock.now()
    made = 0
    while True:
        with transaction.atomic():
            cursor = _cursor(workspace)
            high = Interaction.objects.aggregate(top=Max("pk"))["top"] or 0
            if high <= cursor.position:
                return made
            triggers = load_triggers(workspace)
            rows = _scan(workspace, triggers, cursor.position, high, SCAN_LIMIT) if triggers else []
            if len(rows) == SCAN_LIMIT:
                high = rows[-1].pk
            made += len(evaluate(workspace, rows, now=now, triggers=triggers))
            cursor.position = high
            cursor.save(update_fields=["position"])
            if len(rows) < SCAN_LIMIT:
                return made


def sweep(workspace: Workspace, *, now: dt.datetime | None = None) -> int:
    """Evaluate interactions behind the cursor that have no decision yet.

    A transaction that took an id early but committed after a later one was read is invisible
    to the cursor when it passes; the sweep covers every id twice, a sweep apart.
    """
    now = now or clock.now()
    with transaction.atomic():
        cursor = _cursor(workspace)
        triggers = load_triggers(workspace)
        made = 0
        low = cursor.swept
        while triggers:
            rows = _scan(workspace, triggers, low, cursor.position, SCAN_LIMIT)
            made += len(evaluate(workspace, rows, now=now, triggers=triggers))
            if len(rows) < SCAN_LIMIT:
                break
            low = rows[-1].pk
        cursor.swept, cursor.mark = cursor.mark, cursor.position
        cursor.swept_at = now
        cursor.save(update_fields=["swept", "mark", "swept_at"])
    return made


def schedule_for(
    survey: Survey,
    customer: Customer,
    *,
    now: dt.datetime | None = None,
    delay: dt.timedelta = dt.timedelta(0),
    channel: str | None = None,
    language: str | None = None,
    placeholders: dict[str, str] | None = None,
    via: str = "api",
) -> Decision:
    """Ask ``customer`` to answer ``survey`` now (+ ``delay``), as an API caller requests it.

    The same protections as a trigger: consent, unsubscribes and bounces, the quiet period
    across all surveys and the survey's limit per customer. The send window applies. Returns
    the decision, *scheduled* (with its invitation) or *skipped* with the reason.
    ``placeholders`` override the names the survey's texts use ({product}, {branch}…).
    """
    now = now or clock.now()
    workspace = survey.workspace
    rules = parse_rules(survey.rules)
    if channel is not None:
        rules = rules.model_copy(update={"channels": [channel]})
    definition = definition_of(survey)
    suppressions = load_index(workspace, [customer])
    ledger = _Ledger(
        workspace,
        {customer.pk},
        now - dt.timedelta(days=max(rules.quiet_period_days, rules.max_period_days) + 2),
    )

    def skipped(reason: str, detail: str) -> Decision:
        return Decision.objects.create(
            workspace=workspace, survey=survey, customer=customer,
            outcome=DecisionOutcome.SKIPPED, reason=reason, detail=detail[:300], created_at=now,
        )  # fmt: skip

    if not survey.is_active:
        return skipped(Reason.SURVEY_INACTIVE, f"requested by {via}")
    choice = choose_channel(customer, rules, suppressions)
    if choice.channel is None:
        return skipped(choice.reason, choice.detail)
    tz = local_zone(customer.time_zone, workspace.time_zone)
    send_at = next_send_time(now + delay, rules.send_window, tz)
    if (tired := ledger.fatigue(customer.pk, survey, rules, send_at)) is not None:
        return skipped(*tired)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            workspace=workspace, survey=survey, customer=customer,
            delivery_channel=choice.channel,
            language=definition.pick_language(language, customer.language, workspace.default_language),
            scheduled_for=send_at, expires_at=send_at + dt.timedelta(days=rules.expiry_days),
            placeholders=placeholders or {},
        )  # fmt: skip
        return Decision.objects.create(
            workspace=workspace, survey=survey, customer=customer, invitation=invitation,
            outcome=DecisionOutcome.SCHEDULED, reason=Reason.MATCHED,
            detail=f"{choice.channel} at {send_at:%Y-%m-%d %H:%M} UTC, requested by {via}",
            created_at=now,
        )  # fmt: skip
