"""Non-response is data: the funnel of a survey, and B2B accounts that stopped answering.

The funnel counts invitations by the furthest stage their timestamps prove. Providers do not
report every stage (SMS has no opens; an e-mail client that blocks images never reports an
open, yet its reader may click and answer), so a later stage implies the earlier ones: an
answered invitation counts as clicked, opened and delivered even without those timestamps.
That way the funnel never widens from one stage to the next, which a reader would (rightly)
take for a bug. Every stage also requires ``sent_at``: the funnel describes what was sent.

``flag_silent_accounts`` runs every hour (Celery beat task ``surveys.flag_silent_accounts``):
an account whose contacts left the last N invitations unanswered is opened as an
``AtRiskAccount``; an answer breaks the run and clears the flag.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext as _

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer

from .definition import parse_rules
from .models import (
    AtRiskAccount,
    Decision,
    DecisionOutcome,
    DeliveryChannel,
    Invitation,
    Reason,
    Survey,
)

log = logging.getLogger(__name__)

DEFAULT_UNANSWERED_IN_ROW = 3
# Contacts whose invitations unanswered_runs reads per query (more when an account has more).
CONTACT_BATCH = 5000
STAGES = ("sent", "delivered", "opened", "clicked", "answered")

_SENT = Q(sent_at__isnull=False)
_ANSWERED = _SENT & Q(answered_at__isnull=False)
_CLICKED = _SENT & (Q(clicked_at__isnull=False) | Q(answered_at__isnull=False))
_OPENED = _SENT & (
    Q(opened_at__isnull=False) | Q(clicked_at__isnull=False) | Q(answered_at__isnull=False)
)
# A delivery report followed by a bounce (a late bounce) is not a delivery; an open, a click
# or an answer proves one whatever the provider said.
_DELIVERED = _OPENED | (_SENT & Q(delivered_at__isnull=False, bounced_at__isnull=True))
_BOUNCED = _SENT & Q(bounced_at__isnull=False) & ~_OPENED


@dataclass(frozen=True)
class FunnelRow:
    """One line of the funnel: ``key`` is what it is grouped by ("all", a channel, a branch id)."""

    key: str
    label: str
    sent: int
    delivered: int
    opened: int
    clicked: int
    answered: int
    bounced: int = 0

    @property
    def response_rate(self) -> float | None:
        """Answered per sent, 0-1; None when nothing was sent (not 0: there is no rate)."""
        return self.answered / self.sent if self.sent else None

    def stages(self) -> list[tuple[str, int]]:
        """(stage name, count) from sent to answered, for tables and charts."""
        return [(stage, getattr(self, stage)) for stage in STAGES]


def stage_labels() -> dict[str, str]:
    """The stages' names in the reader's language."""
    return {
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "opened": _("Opened"),
        "clicked": _("Clicked"),
        "answered": _("Answered"),
    }


def _counts() -> dict[str, Count]:
    return {
        "sent": Count("pk", filter=_SENT),
        "delivered": Count("pk", filter=_DELIVERED),
        "opened": Count("pk", filter=_OPENED),
        "clicked": Count("pk", filter=_CLICKED),
        "answered": Count("pk", filter=_ANSWERED),
        "bounced": Count("pk", filter=_BOUNCED),
    }


def _row(key: str, label: str, values: dict[str, Any]) -> FunnelRow:
    return FunnelRow(
        key=key,
        label=label,
        sent=values["sent"] or 0,
        delivered=values["delivered"] or 0,
        opened=values["opened"] or 0,
        clicked=values["clicked"] or 0,
        answered=values["answered"] or 0,
        bounced=values["bounced"] or 0,
    )


def _sent_invitations(
    queryset: QuerySet[Invitation], since: dt.datetime | None, until: dt.datetime | None
) -> QuerySet[Invitation]:
    queryset = queryset.filter(is_test=False, sent_at__isnull=False)
    if since is not None:
        queryset = queryset.filter(sent_at__gte=since)
    if until is not None:
        queryset = queryset.filter(sent_at__lt=until)
    return queryset


def funnel(
    survey: Survey,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    by: Literal["delivery_channel", "branch"] | None = None,
) -> list[FunnelRow]:
    """The funnel of the invitations sent in [since, until), overall or per channel or branch.

    One aggregate query per call. Test invitations ("send a test to me") never count. Groups
    come largest first; invitations without a branch (a relationship wave, a web link) form a
    group of their own, labelled "No branch".
    """
    invitations = _sent_invitations(Invitation.objects.filter(survey=survey), since, until)
    if by is None:
        return [_row("all", _("All channels and branches"), invitations.aggregate(**_counts()))]
    if by == "delivery_channel":
        names = dict(DeliveryChannel.choices)
        rows = [
            _row(values["delivery_channel"], str(names.get(values["delivery_channel"], "")), values)
            for values in invitations.values("delivery_channel")
            .annotate(**_counts())
            .order_by("delivery_channel")
        ]
    elif by == "branch":
        rows = [
            _row(
                str(values["branch_id"] or ""),
                values["branch__name"] or _("No branch"),
                values,
            )
            for values in invitations.values("branch_id", "branch__name")
            .annotate(**_counts())
            .order_by("branch__name", "branch_id")
        ]
    else:
        raise ValueError(f"cannot group a funnel by {by!r}")
    rows.sort(key=lambda row: -row.sent)  # stable: equal counts keep the name order
    return rows


def survey_totals(
    workspace: Workspace, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[int, FunnelRow]:
    """Each survey's funnel over the period, in one query (the survey list); by survey id."""
    invitations = _sent_invitations(Invitation.objects.filter(workspace=workspace), since, until)
    return {
        values["survey_id"]: _row(str(values["survey_id"]), "", values)
        for values in invitations.values("survey_id").annotate(**_counts()).order_by()
    }


@dataclass(frozen=True)
class ReasonCount:
    outcome: str
    reason: str
    count: int

    @property
    def outcome_label(self) -> str:
        return str(dict(DecisionOutcome.choices).get(self.outcome, self.outcome))

    @property
    def label(self) -> str:
        return str(dict(Reason.choices).get(self.reason, self.reason))

    @property
    def not_surveyed(self) -> bool:
        """A decision that kept the customer from being surveyed (not a retry or a success)."""
        return self.outcome in (DecisionOutcome.SKIPPED, DecisionOutcome.CANCELLED) or (
            self.outcome == DecisionOutcome.FAILED and self.reason != Reason.TRANSIENT
        )


def decisions_by_reason(
    survey: Survey, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[ReasonCount]:
    """The survey's decisions in [since, until) counted by outcome and reason, most first."""
    # Test sends leave decisions too; they say nothing about customers.
    decisions = Decision.objects.filter(survey=survey).exclude(invitation__is_test=True)
    if since is not None:
        decisions = decisions.filter(created_at__gte=since)
    if until is not None:
        decisions = decisions.filter(created_at__lt=until)
    rows = decisions.values("outcome", "reason").annotate(n=Count("pk")).order_by()
    counts = [ReasonCount(row["outcome"], row["reason"], row["n"]) for row in rows]
    counts.sort(key=lambda c: (-c.count, c.outcome, c.reason))
    return counts


# --- accounts at risk ----------------------------------------------------------------------


def unanswered_threshold(workspace: Workspace) -> int:
    """N: the smallest ``unanswered_in_row`` of the workspace's active surveys (3 without any).

    The smallest, because an account is at risk as soon as the most sensitive survey says so;
    a survey whose stored rules no longer validate is left out rather than failing the run.
    """
    values = []
    for raw in Survey.objects.filter(workspace=workspace, is_active=True).values_list(
        "rules", flat=True
    ):
        try:
            values.append(parse_rules(raw).unanswered_in_row)
        except ValueError:
            continue
    return min(values, default=DEFAULT_UNANSWERED_IN_ROW)


def _contact_batches(workspace: Workspace) -> Iterator[dict[int, int]]:
    """The workspace's B2B contacts as {customer id: account id}, a few thousand at a time.

    An account's contacts always come in the same batch, so its run is never split.
    """
    contacts = (
        Customer.objects.filter(workspace=workspace, account__isnull=False)
        .order_by("account_id", "pk")
        .values_list("pk", "account_id")
    )
    batch: dict[int, int] = {}
    last_account = None
    for customer_id, account_id in contacts:
        if len(batch) >= CONTACT_BATCH and account_id != last_account:
            yield batch
            batch = {}
        batch[customer_id] = account_id
        last_account = account_id
    if batch:
        yield batch


def unanswered_runs(workspace: Workspace, now: dt.datetime | None = None) -> dict[int, int]:
    """For every account with a sent invitation: how many of the latest went unanswered in a row.

    An invitation still open (unanswered, not yet expired) is neither: its contact may still
    answer, and counting it would flag accounts for being surveyed last week.

    Per batch of contacts, one query for their sent invitations (three small columns, by the
    customer index), sorted by account and newest first in Python. No join and no server-side
    cursor: PostgreSQL plans a cursor for its first rows, and with statistics lagging behind a
    large import a join planned that way took minutes where this takes a second for 10 000
    accounts. 0 means the latest invitation was answered.
    """
    now = now or clock.now()
    runs: dict[int, int] = {}
    for batch in _contact_batches(workspace):
        invitations = Invitation.objects.filter(
            workspace=workspace, customer_id__in=list(batch), is_test=False, sent_at__isnull=False
        ).values_list("customer_id", "sent_at", "pk", "answered_at", "expires_at")
        # (account, newest first, then the later id first, answered?)
        rows: list[tuple[int, float, int, bool]] = []
        for customer_id, sent_at, pk, answered_at, expires_at in invitations:
            assert customer_id is not None and sent_at is not None  # filtered above
            if answered_at is None and expires_at > now:
                continue  # still open
            rows.append((batch[customer_id], -sent_at.timestamp(), -pk, answered_at is not None))
        rows.sort()
        current: int | None = None
        broken = False  # an answer seen for the current account: older rows change nothing
        for account_id, _when, _pk, answered in rows:
            if account_id != current:
                current, broken = account_id, False
                runs[account_id] = 0
            if broken:
                continue
            if answered:
                broken = True
            else:
                runs[account_id] += 1
    return runs


def flag_silent_accounts(workspace: Workspace, now: dt.datetime | None = None) -> int:
    """Open a flag for accounts whose last N invitations went unanswered; clear answered ones.

    Returns how many accounts were newly flagged. An open flag follows the run (its
    ``unanswered`` grows with it) and is cleared once the run is shorter than N again, which
    only an answer can do (or N raised in the rules). Running twice changes nothing: the
    conditional unique constraint allows one open flag per account, and a flag opened by a
    concurrent run is skipped rather than duplicated.
    """
    now = now or clock.now()
    threshold = unanswered_threshold(workspace)
    runs = unanswered_runs(workspace, now)
    open_flags = {
        flag.account_id: flag
        for flag in AtRiskAccount.objects.filter(workspace=workspace, cleared_at__isnull=True)
    }
    to_open = [
        AtRiskAccount(workspace=workspace, account_id=account_id, unanswered=run, flagged_at=now)
        for account_id, run in runs.items()
        if run >= threshold and account_id not in open_flags
    ]
    to_clear: list[int] = []
    to_update: list[AtRiskAccount] = []
    for account_id, flag in open_flags.items():
        run = runs.get(account_id, 0)
        if run < threshold:
            to_clear.append(flag.pk)
        elif run != flag.unanswered:
            flag.unanswered = run
            to_update.append(flag)
    with transaction.atomic():
        if to_clear:
            AtRiskAccount.objects.filter(pk__in=to_clear, cleared_at__isnull=True).update(
                cleared_at=now
            )
        if to_update:
            AtRiskAccount.objects.bulk_update(to_update, ["unanswered"], batch_size=1000)
        if to_open:
            AtRiskAccount.objects.bulk_create(to_open, batch_size=1000, ignore_conflicts=True)
    # ignore_conflicts reports no ids: count the flags this run wrote, by their timestamp (a
    # concurrent run writes its own).
    flagged = (
        AtRiskAccount.objects.filter(
            workspace=workspace, flagged_at=now, cleared_at__isnull=True
        ).count()
        if to_open
        else 0
    )
    log.debug(
        "silent_accounts workspace=%s threshold=%s flagged=%s cleared=%s",
        workspace.pk, threshold, flagged, len(to_clear),
    )  # fmt: skip
    return flagged
