"""Autopilot: survey each member again every ``frequency_days``, from the heartbeat.

``schedule_due`` finds the members whose ``next_survey_at`` has come and asks
``rules.schedule_for`` to invite them, so an Autopilot survey meets the same protections as
any other (consent, unsubscribes, bounces, the quiet period across all surveys); a member it
skips is simply tried again a period later, as Delighted did.

Each member is claimed with a conditional UPDATE that moves ``next_survey_at`` from the value
read to the next period, in the same transaction as the invitation: two heartbeats racing
(or a task delivered twice) survey a member once, and a failure rolls the claim back so the
member is not skipped for a whole period.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from cxloop.accounts.models import Workspace
from cxloop.surveys.models import DecisionOutcome, Reason, Survey, SurveyKind
from cxloop.surveys.rules import schedule_for

from .http import placeholders_of
from .models import AutopilotConfig, AutopilotMembership, SurveyRequest

log = logging.getLogger(__name__)

VIA = "autopilot"
# Invitation.status_reason / Decision.reason when a member leaves before their survey went.
WITHDRAWN = Reason.API_CANCELLED
BATCH = 500
# At most this many members a heartbeat, so a big first run does not hold the loop up; the
# rest are due on the next one.
PER_TICK = 5000


def autopilot_survey(config: AutopilotConfig) -> Survey | None:
    """The configured survey, else the workspace's first active relationship survey."""
    if config.survey is not None:
        return config.survey
    return (
        Survey.objects.filter(
            workspace_id=config.workspace_id, kind=SurveyKind.RELATIONSHIP, is_active=True
        )
        .order_by("pk")
        .first()
    )


def next_time(previous: dt.datetime, frequency: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """One period after the last due time; a member overdue by more (Autopilot was off for a
    while) restarts from now rather than being surveyed on every heartbeat to catch up."""
    following = previous + frequency
    return following if following > now else now + frequency


def schedule_due(now: dt.datetime) -> int:
    """Invite the members of active configurations whose survey is due; returns how many
    members were handled (scheduled or skipped, each with its decision)."""
    handled = 0
    configs = AutopilotConfig.objects.filter(active=True).select_related("survey", "workspace")
    for config in configs.order_by("pk"):
        survey = autopilot_survey(config)
        if survey is None:
            log.warning(
                "autopilot %s/%s has no survey: choose one or add a relationship survey",
                config.workspace_id, config.platform,
            )  # fmt: skip
            continue
        handled += _run(config, survey, now, PER_TICK - handled)
        if handled >= PER_TICK:
            break
    return handled


def _run(config: AutopilotConfig, survey: Survey, now: dt.datetime, budget: int) -> int:
    frequency = dt.timedelta(days=max(1, config.frequency_days))
    workspace: Workspace = config.workspace
    survey.workspace = workspace  # schedule_for reads it; spares a query per member
    handled = 0
    while handled < budget:
        due = list(
            AutopilotMembership.objects.filter(
                workspace=workspace, platform=config.platform, next_survey_at__lte=now
            )
            .select_related("customer")
            .order_by("next_survey_at", "pk")[: min(BATCH, budget - handled)]
        )
        if not due:
            break
        progress = 0
        for membership in due:
            try:
                scheduled = _survey_member(membership, survey, frequency, now)
            except ValueError:
                # The survey's definition or rules are invalid: every member would fail alike.
                log.warning(
                    "autopilot %s/%s: survey %s cannot be sent; fix it",
                    workspace.pk, config.platform, survey.pk,
                )  # fmt: skip
                return handled
            progress += scheduled
        handled += progress
        if len(due) < BATCH or not progress:
            break  # none left, or every one was taken by another heartbeat
    return handled


def _survey_member(
    membership: AutopilotMembership, survey: Survey, frequency: dt.timedelta, now: dt.datetime
) -> int:
    """Claim the member and ask for their survey, in one transaction; 0 if not claimed."""
    assert membership.next_survey_at is not None
    workspace = survey.workspace
    with transaction.atomic():
        claimed = AutopilotMembership.objects.filter(
            pk=membership.pk, next_survey_at=membership.next_survey_at
        ).update(next_survey_at=next_time(membership.next_survey_at, frequency, now))
        if not claimed:
            return 0  # another heartbeat has it, or it was removed or rescheduled meanwhile
        customer = membership.customer
        customer.workspace = workspace
        decision = schedule_for(
            survey,
            customer,
            now=now,
            channel=membership.platform,
            placeholders=placeholders_of(membership.properties),
            via=VIA,
        )
        if decision.outcome == DecisionOutcome.SCHEDULED and decision.invitation:
            # The member's properties travel with the survey, as Delighted's did: the
            # response shows them as its person_properties.
            SurveyRequest.objects.create(
                workspace=workspace,
                customer=customer,
                invitation=decision.invitation,
                properties=membership.properties,
                created_at=now,
            )
    return 1
