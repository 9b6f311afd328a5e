"""Sending due invitations: at most once, at a bounded rate, retried only when it may help.

``tick`` is the heartbeat (a Celery beat task every few seconds, or ``cxloop dispatcher`` in
the embedded setup): it evaluates new interactions, expires and reconciles, and queues due
invitations and reminders in batches on the ``delivery`` queue.

``send`` claims a batch with one conditional UPDATE (``scheduled`` → ``sending`` with a fresh
claim id) and sends only the rows that carry its claim, so a task delivered twice, or two
workers racing, send each invitation once. A worker that dies mid-send leaves rows in
``sending``; the reconciler marks them *failed: interrupted* rather than risk a second
message. A lost task (broker restart) leaves rows ``scheduled`` with a stale ``queued_at``;
the next tick queues them again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Q

from cxloop.accounts.models import Workspace
from cxloop.core import clock

from .channels import Outcome, deliver
from .models import (
    Decision,
    DecisionOutcome,
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Reason,
    SuppressionReason,
    TriggerCursor,
)
from .render import rules_of
from .rules import choose_channel, evaluate_new, sweep
from .schedule import local_zone, next_send_time
from .suppression import load_index, suppress_address

log = logging.getLogger(__name__)

BATCH = 50
MAX_ATTEMPTS = 5
# Backoff after a transient error, by attempt: 1 min, 5 min, 30 min, 2 h.
BACKOFF = (60, 300, 1800, 7200)
REQUEUE_AFTER = dt.timedelta(minutes=5)
STUCK_AFTER = dt.timedelta(minutes=15)
SWEEP_EVERY = dt.timedelta(seconds=60)

Enqueue = Callable[[list[int], bool], Any]


def _decision(
    invitation: Invitation, outcome: str, reason: str, detail: str, now: dt.datetime
) -> Decision:
    return Decision(
        workspace_id=invitation.workspace_id,
        survey_id=invitation.survey_id,
        customer_id=invitation.customer_id,
        interaction_id=invitation.interaction_id,
        invitation=invitation,
        outcome=outcome,
        reason=reason,
        detail=detail[:300],
        created_at=now,
    )


def reconcile(now: dt.datetime) -> dict[str, int]:
    """Expire what can no longer be sent; fail what a dead worker left half-sent."""
    expired = list(
        Invitation.objects.filter(
            status=InvitationStatus.SCHEDULED, expires_at__lte=now
        ).values_list("pk", flat=True)[:5000]
    )
    n_expired = Invitation.objects.filter(pk__in=expired, status=InvitationStatus.SCHEDULED).update(
        status=InvitationStatus.CANCELLED, status_reason=Reason.EXPIRED
    )
    stuck = list(
        Invitation.objects.filter(
            status=InvitationStatus.SENDING, claimed_at__lt=now - STUCK_AFTER
        ).values_list("pk", flat=True)[:5000]
    )
    n_stuck = Invitation.objects.filter(pk__in=stuck, status=InvitationStatus.SENDING).update(
        status=InvitationStatus.FAILED, status_reason=Reason.INTERRUPTED
    )
    changed = list(Invitation.objects.filter(pk__in=expired + stuck))
    Decision.objects.bulk_create(
        [
            _decision(
                inv,
                DecisionOutcome.CANCELLED
                if inv.status_reason == Reason.EXPIRED
                else DecisionOutcome.FAILED,
                inv.status_reason,
                "not sent: it may have gone out, and a second copy would be worse"
                if inv.status_reason == Reason.INTERRUPTED
                else "",
                now,
            )
            for inv in changed
            if inv.status in (InvitationStatus.CANCELLED, InvitationStatus.FAILED)
        ]
    )
    return {"expired": n_expired, "interrupted": n_stuck}


def _rate(channel: str) -> int:
    return int(settings.DELIVERY_RATES.get(channel, 10))


def queue_due(now: dt.datetime, enqueue: Enqueue, interval: float) -> int:
    """Hand due invitations and reminders to workers, each channel at most its rate."""
    queued = 0
    stale = now - REQUEUE_AFTER
    not_queued = Q(queued_at__isnull=True) | Q(queued_at__lt=stale)
    for channel in (DeliveryChannel.EMAIL, DeliveryChannel.SMS):
        budget = max(1, int(_rate(channel) * interval))
        due = (
            Q(status=InvitationStatus.SCHEDULED, scheduled_for__lte=now, delivery_channel=channel)
            & not_queued
        )
        ids = list(
            Invitation.objects.filter(due)
            .order_by("scheduled_for")
            .values_list("pk", flat=True)[:budget]
        )
        # The soft claim: only the dispatcher that moves queued_at queues the row.
        mine = Invitation.objects.filter(due, pk__in=ids).update(queued_at=now)
        if mine != len(ids):
            ids = list(
                Invitation.objects.filter(pk__in=ids, queued_at=now).values_list("pk", flat=True)
            )
        for start in range(0, len(ids), BATCH):
            enqueue(ids[start : start + BATCH], False)
        queued += len(ids)
        budget -= len(ids)
        if budget <= 0:
            continue
        reminders = Q(
            status=InvitationStatus.SENT,
            delivery_channel=channel,
            reminder_due_at__lte=now,
            reminder_sent_at__isnull=True,
            answered_at__isnull=True,
            expires_at__gt=now,
        ) & (Q(queued_at__lt=F("reminder_due_at")) | Q(queued_at__lt=stale))
        rids = list(Invitation.objects.filter(reminders).values_list("pk", flat=True)[:budget])
        Invitation.objects.filter(reminders, pk__in=rids).update(queued_at=now)
        rids = list(
            Invitation.objects.filter(pk__in=rids, queued_at=now).values_list("pk", flat=True)
        )
        for start in range(0, len(rids), BATCH):
            enqueue(rids[start : start + BATCH], True)
        queued += len(rids)
    return queued


def _claim(ids: Sequence[int], reminder: bool, now: dt.datetime) -> list[Invitation]:
    claim = uuid.uuid4().hex
    if reminder:
        # A reminder goes once, and only to someone who has not answered.
        Invitation.objects.filter(
            pk__in=ids,
            status=InvitationStatus.SENT,
            reminder_sent_at__isnull=True,
            answered_at__isnull=True,
        ).update(reminder_sent_at=now, claim=claim)
    else:
        Invitation.objects.filter(pk__in=ids, status=InvitationStatus.SCHEDULED).update(
            status=InvitationStatus.SENDING,
            claim=claim,
            claimed_at=now,
            attempts=F("attempts") + 1,
        )
    return list(
        Invitation.objects.filter(pk__in=ids, claim=claim)
        .select_related(
            "workspace", "survey", "customer", "customer__workspace", "branch", "employee",
            "product", "touchpoint",
        )
        .order_by("pk")
    )  # fmt: skip


def send(
    ids: Sequence[int], *, reminder: bool = False, now: dt.datetime | None = None
) -> dict[str, int]:
    """Send the invitations (or reminders) ``ids`` that this call manages to claim."""
    now = now or clock.now()
    batch = _claim(ids, reminder, now)
    counts: dict[str, int] = defaultdict(int)
    if not batch:
        return dict(counts)
    decisions: list[Decision] = []
    ready: dict[str, list[Invitation]] = defaultdict(list)
    by_workspace: dict[int, list[Invitation]] = defaultdict(list)
    for inv in batch:
        by_workspace[inv.workspace_id].append(inv)
    for invitations in by_workspace.values():
        workspace = invitations[0].workspace
        index = load_index(workspace, [i.customer for i in invitations if i.customer is not None])
        for inv in invitations:
            reason = ""
            if not inv.survey.is_active and not inv.is_test:  # a draft may be tested
                reason = Reason.SURVEY_INACTIVE
            elif inv.expires_at <= now:
                reason = Reason.EXPIRED
            elif reminder and inv.answered_at is not None:
                reason = Reason.ALREADY_ANSWERED
            elif inv.customer is not None and not inv.is_test:
                choice = choose_channel(inv.customer, rules_of(inv.survey), index)
                if choice.channel is None:
                    reason = choice.reason
                elif choice.channel != inv.delivery_channel:
                    # The preferred channel is reachable again, or this one is not any more.
                    inv.delivery_channel = choice.channel
                    Invitation.objects.filter(pk=inv.pk).update(delivery_channel=choice.channel)
            if reason:
                if not reminder:
                    Invitation.objects.filter(pk=inv.pk, claim=inv.claim).update(
                        status=InvitationStatus.CANCELLED, status_reason=reason
                    )
                decisions.append(
                    _decision(inv, DecisionOutcome.CANCELLED, reason, "checked at send time", now)
                )
                counts["cancelled"] += 1
                continue
            ready[inv.delivery_channel].append(inv)
    sent: list[Invitation] = []
    for channel, invitations in ready.items():
        for outcome in deliver(channel, invitations, reminder=reminder):
            _apply(outcome, reminder, now, decisions, counts, sent)
    if sent:
        _record_sent(sent, reminder)
    Decision.objects.bulk_create(decisions)
    return dict(counts)


def _record_sent(sent: list[Invitation], reminder: bool) -> None:
    """One prepared UPDATE for the batch (executemany), still limited to the claimed rows."""
    table = Invitation._meta.db_table
    with connection.cursor() as cursor:
        if reminder:
            cursor.executemany(
                f"UPDATE {table} SET reminder_message_id = %s WHERE id = %s AND claim = %s",
                [(inv.reminder_message_id, inv.pk, inv.claim) for inv in sent],
            )
            return
        # Raw parameters skip the ORM: datetimes go through the backend's own adapter.
        stamp = connection.ops.adapt_datetimefield_value
        cursor.executemany(
            f"UPDATE {table} SET status = %s, sent_at = %s, message_id = %s, "
            "reminder_due_at = %s, last_error = '' WHERE id = %s AND claim = %s",
            [
                (InvitationStatus.SENT.value, stamp(inv.sent_at), inv.message_id,
                 stamp(inv.reminder_due_at), inv.pk, inv.claim)
                for inv in sent
            ],
        )  # fmt: skip


def _apply(
    outcome: Outcome,
    reminder: bool,
    now: dt.datetime,
    decisions: list[Decision],
    counts: dict[str, int],
    sent: list[Invitation],
) -> None:
    inv = outcome.invitation
    rules = rules_of(inv.survey)
    if outcome.ok:
        counts["sent"] += 1
        sent.append(inv)
        if reminder:
            inv.reminder_message_id = outcome.message_id[:200]
            decisions.append(
                _decision(
                    inv, DecisionOutcome.REMINDED, Reason.DELIVERED, inv.delivery_channel, now
                )
            )
            return
        reminder_due = None
        if rules.reminder_after_days and not inv.is_test:
            tz = local_zone(
                inv.customer.time_zone if inv.customer else None,
                inv.branch.time_zone if inv.branch else None,
                inv.workspace.time_zone,
            )
            reminder_due = next_send_time(
                now + dt.timedelta(days=rules.reminder_after_days), rules.send_window, tz
            )
        inv.status, inv.sent_at, inv.last_error = InvitationStatus.SENT, now, ""
        inv.message_id, inv.reminder_due_at = outcome.message_id[:200], reminder_due
        decisions.append(
            _decision(inv, DecisionOutcome.SENT, Reason.DELIVERED, inv.delivery_channel, now)
        )
        return
    error = outcome.error[:200]
    failure = Reason.TRANSIENT if outcome.transient else Reason.PERMANENT
    if reminder:
        counts["failed"] += 1
        if outcome.transient:
            # Give the reminder back; it is tried again on a later tick.
            Invitation.objects.filter(pk=inv.pk, claim=inv.claim).update(
                reminder_sent_at=None,
                reminder_due_at=now + dt.timedelta(seconds=BACKOFF[0]),
                last_error=error,
            )
        decisions.append(_decision(inv, DecisionOutcome.FAILED, failure, error, now))
        return
    if outcome.transient and inv.attempts < MAX_ATTEMPTS:
        counts["retry"] += 1
        delay = BACKOFF[min(inv.attempts - 1, len(BACKOFF) - 1)]
        Invitation.objects.filter(pk=inv.pk, claim=inv.claim).update(
            status=InvitationStatus.SCHEDULED,
            scheduled_for=now + dt.timedelta(seconds=delay),
            queued_at=None,
            last_error=error,
        )
        decisions.append(
            _decision(
                inv, DecisionOutcome.FAILED, Reason.TRANSIENT, f"{error}; retry in {delay} s", now
            )
        )
        return
    if not outcome.transient and inv.customer is not None:
        # The address is refused: never again, and try the next channel if there is one.
        address = (
            inv.customer.email
            if inv.delivery_channel == DeliveryChannel.EMAIL
            else inv.customer.phone
        )
        suppress_address(
            inv.workspace,
            inv.delivery_channel,
            address,
            SuppressionReason.INVALID,
            source="delivery",
        )
        fallback = choose_channel(
            inv.customer,
            rules,
            load_index(inv.workspace, [inv.customer]),
            skip=inv.delivery_channel,
        )
        if fallback.channel is not None:
            counts["fallback"] += 1
            Invitation.objects.filter(pk=inv.pk, claim=inv.claim).update(
                status=InvitationStatus.SCHEDULED,
                delivery_channel=fallback.channel,
                scheduled_for=now,
                queued_at=None,
                last_error=error,
            )
            decisions.append(
                _decision(
                    inv,
                    DecisionOutcome.FAILED,
                    Reason.PERMANENT,
                    f"{error}; trying {fallback.channel}",
                    now,
                )
            )
            return
    counts["failed"] += 1
    Invitation.objects.filter(pk=inv.pk, claim=inv.claim).update(
        status=InvitationStatus.FAILED, status_reason=failure, last_error=error
    )
    decisions.append(_decision(inv, DecisionOutcome.FAILED, failure, error, now))


def tick(enqueue: Enqueue, *, interval: float, now: dt.datetime | None = None) -> dict[str, int]:
    """One heartbeat: evaluate new interactions, reconcile, queue what is due."""
    now = now or clock.now()
    stats: dict[str, int] = defaultdict(int)
    for workspace in Workspace.objects.all():
        stats["decisions"] += evaluate_new(workspace, now=now)
    for cursor in TriggerCursor.objects.filter(
        Q(swept_at__isnull=True) | Q(swept_at__lt=now - SWEEP_EVERY)
    ).select_related("workspace"):
        stats["swept"] += sweep(cursor.workspace, now=now)
    for key, value in reconcile(now).items():
        stats[key] += value
    # Not inside a transaction: in the embedded setup enqueue sends at once.
    stats["queued"] += queue_due(now, enqueue, interval)
    return dict(stats)
