"""Surveys, who is invited to answer them and why, their answers, and who must not be asked.

The life of an invitation (see docs/surveys.md):

* an interaction arrives; ``rules.evaluate`` records a ``Decision`` for every active
  transactional survey it matches — *scheduled* with a new ``Invitation``, or *skipped* with
  the reason (quiet period, no consent, sampled out, cap…);
* ``dispatch`` sends due invitations in batches: each is claimed by a conditional UPDATE
  (``scheduled`` → ``sending``), so a task that runs twice sends nothing twice;
* the respondent's page records a ``Response``; delivery webhooks fill in the funnel
  timestamps and add ``Suppression`` rows for bounces and complaints.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.models import Timestamped, WorkspaceScoped
from cxloop.organisation.models import Placed


def new_token() -> str:
    """192 random bits, URL-safe (32 characters): neither guessable nor enumerable."""
    return secrets.token_urlsafe(24)


def new_public_code() -> str:
    return secrets.token_urlsafe(9)


class SurveyKind(models.TextChoices):
    TRANSACTIONAL = "transactional", _("Transactional (after an interaction)")
    RELATIONSHIP = "relationship", _("Relationship (of the customer base)")


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")
    LINK = "link", _("Web link or QR code")


class Survey(WorkspaceScoped, Timestamped):
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SurveyKind.choices)
    is_active = models.BooleanField(default=True)
    # Questions, texts per language, branding: validated by definition.SurveyDefinition.
    definition: models.JSONField[Any, Any] = models.JSONField(default=dict)
    # Trigger and delivery rules: validated by definition.Rules.
    rules: models.JSONField[Any, Any] = models.JSONField(default=dict)
    # Interactions received before this moment never trigger the survey (no surveys about
    # last year's visits after a historical import).
    active_since = models.DateTimeField(default=clock.now)
    # The code in the survey's public web link and QR code (/s/p/<code>).
    public_code = models.CharField(max_length=16, unique=True, default=new_public_code)

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "code"], name="survey_code_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Wave(WorkspaceScoped):
    """One round of a relationship survey: a stratified random sample of the customer base."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="waves")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    strata = models.CharField(max_length=16, blank=True, help_text=_("segment, region or none"))
    margin = models.FloatField(help_text=_("Target margin of error in NPS points"))
    confidence = models.FloatField(default=0.95)
    response_rate = models.FloatField(help_text=_("Expected share of invitations answered"))
    population = models.PositiveIntegerField(default=0)
    target_responses = models.PositiveIntegerField(default=0)
    sample_size = models.PositiveIntegerField(default=0)
    # {stratum: {"population": n, "sample": n}}
    allocation: models.JSONField[Any, Any] = models.JSONField(default=dict)
    seed = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("relationship wave")
        verbose_name_plural = _("relationship waves")
        ordering = ["-created_at"]


class InvitationStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Invitation(Placed, WorkspaceScoped):
    """One customer asked to answer one survey, by one channel, once."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="invitations")
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="invitations",
    )
    interaction = models.ForeignKey(
        "interactions.Interaction",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    wave = models.ForeignKey(
        Wave, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations"
    )
    token = models.CharField(max_length=43, unique=True, default=new_token)
    delivery_channel = models.CharField(max_length=8, choices=DeliveryChannel.choices)
    language = models.CharField(max_length=8)
    is_test = models.BooleanField(default=False)
    # Only for a test ("send a test to me"): the CX manager's own address. A customer's
    # invitation goes to the customer's address as it is at send time.
    test_address = models.CharField(max_length=254, blank=True)
    # Placeholder values an API caller gave for this invitation, over the names cxloop knows
    # (e.g. Delighted's question_product_name fills {product}).
    placeholders: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    status = models.CharField(
        max_length=12, choices=InvitationStatus.choices, default=InvitationStatus.SCHEDULED
    )
    status_reason = models.CharField(max_length=32, blank=True)
    scheduled_for = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Set when a dispatcher hands the invitation to a worker; a stale value means the task
    # was lost (broker restart) and the reconciler queues it again.
    queued_at = models.DateTimeField(null=True, blank=True)
    # The conditional UPDATE that moves scheduled → sending writes a fresh claim id: only the
    # task that wrote it sends.
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=200, blank=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    reminder_due_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_message_id = models.CharField(max_length=200, blank=True, db_index=True)
    # The funnel.
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "interaction"],
                condition=Q(interaction__isnull=False),
                name="invitation_once_per_interaction",
            ),
            models.UniqueConstraint(
                fields=["wave", "customer"],
                condition=Q(wave__isnull=False),
                name="invitation_once_per_wave",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "scheduled_for"], name="invitation_due"),
            models.Index(fields=["customer", "scheduled_for"], name="invitation_customer"),
            models.Index(fields=["survey", "branch", "scheduled_for"], name="invitation_branch"),
            models.Index(fields=["reminder_due_at"], name="invitation_reminder"),
        ]

    def __str__(self) -> str:
        return f"{self.survey_id}/{self.pk}"


class DecisionOutcome(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SKIPPED = "skipped", _("Skipped")
    SENT = "sent", _("Sent")
    REMINDED = "reminded", _("Reminder sent")
    CANCELLED = "cancelled", _("Cancelled before sending")
    FAILED = "failed", _("Failed")


class Reason(models.TextChoices):
    """Why a decision went the way it did: the answer to "why wasn't this customer surveyed?"."""

    MATCHED = "matched", _("Matched the trigger")
    TOO_OLD = "too_old", _("Interaction too old")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    NO_CONSENT = "no_consent", _("No consent")
    BOUNCED = "bounced", _("Address bounced or complained")
    NO_CONTACT = "no_contact", _("No e-mail or phone")
    NO_CHANNEL = "no_channel", _("Channel not configured")
    SAMPLED_OUT = "sampled_out", _("Sampled out")
    QUIET_PERIOD = "quiet_period", _("Quiet period")
    SURVEY_LIMIT = "survey_limit", _("Survey's limit per customer")
    BRANCH_CAP = "branch_cap", _("Branch's daily cap")
    SURVEY_INACTIVE = "survey_inactive", _("Survey switched off")
    EXPIRED = "expired", _("Expired before it could be sent")
    DELIVERED = "delivered", _("Handed to the provider")
    TRANSIENT = "transient", _("Temporary error, retried")
    PERMANENT = "permanent", _("Rejected by the provider")
    INTERRUPTED = "interrupted", _("Worker stopped during the send")
    ALREADY_ANSWERED = "already_answered", _("Already answered")
    API_CANCELLED = "api_cancelled", _("Cancelled through the API")


class Decision(WorkspaceScoped):
    """One step in the life of a (possible) invitation, with its reason. Append-only."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="decisions")
    customer = models.ForeignKey(
        "customers.Customer", null=True, on_delete=models.CASCADE, related_name="+"
    )
    interaction = models.ForeignKey(
        "interactions.Interaction", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    invitation = models.ForeignKey(
        Invitation, null=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    outcome = models.CharField(max_length=12, choices=DecisionOutcome.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    # Plain words, never personal data: "last invitation 2026-11-20 (after-visit)".
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("survey decision")
        verbose_name_plural = _("survey decisions")
        constraints = [
            # The trigger decides once per survey and interaction, however often it runs.
            models.UniqueConstraint(
                fields=["survey", "interaction"],
                condition=Q(interaction__isnull=False, outcome__in=["scheduled", "skipped"]),
                name="decision_trigger_once",
            )
        ]
        indexes = [
            models.Index(fields=["customer", "created_at"], name="decision_customer"),
            models.Index(fields=["survey", "created_at"], name="decision_survey"),
        ]


class ResponseSource(models.TextChoices):
    WEB = "web", _("Survey page")
    EMAIL = "email", _("One-click score in the e-mail")
    LINK = "link", _("Public link or QR code")
    IMPORT = "import", _("Imported")


class Response(Placed, WorkspaceScoped):
    external_id = models.CharField(max_length=128)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    invitation = models.OneToOneField(
        Invitation, null=True, blank=True, on_delete=models.SET_NULL, related_name="response"
    )
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="responses",
    )
    interaction = models.ForeignKey(
        "interactions.Interaction",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    score = models.SmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # {question code: value} for the questions after the score, except the comment (the first
    # free-text question), which has its own column; formats in responses.py.
    answers: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=8, blank=True)
    answered_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=ResponseSource.choices)
    # "May we contact you about this?" and the number the customer confirmed.
    may_contact = models.BooleanField(null=True, blank=True)
    contact_phone = models.CharField(max_length=20, blank=True)
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("response")
        verbose_name_plural = _("responses")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="response_unique")
        ]
        indexes = [
            models.Index(fields=["workspace", "answered_at"], name="response_answered"),
            models.Index(fields=["workspace", "updated_at"], name="response_updated"),
            models.Index(fields=["survey", "answered_at"], name="response_survey"),
        ]

    def __str__(self) -> str:
        return self.external_id


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    BOUNCED = "bounced", _("Bounced")
    COMPLAINED = "complained", _("Marked as spam")
    INVALID = "invalid", _("Invalid address")


class Suppression(WorkspaceScoped):
    """A customer or an address that no survey may contact again.

    An unsubscribe names the customer (all channels) and the address it came from; a bounce
    or complaint names the address only, so a corrected address works again.
    """

    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="suppressions",
    )
    delivery_channel = models.CharField(max_length=8, choices=DeliveryChannel.choices)
    address = models.CharField(max_length=254, blank=True)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    source = models.CharField(max_length=32, blank=True)  # link, api, webhook, admin…
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "delivery_channel", "address", "reason"],
                condition=~Q(address=""),
                name="suppression_address_unique",
            ),
            models.UniqueConstraint(
                fields=["workspace", "customer"],
                condition=Q(reason="unsubscribed", address=""),
                name="suppression_unsubscribe_unique",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "address"], name="suppression_address")]


class AtRiskAccount(WorkspaceScoped):
    """A B2B account whose contacts stopped answering: N unanswered invitations in a row."""

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="risk_flags"
    )
    unanswered = models.PositiveIntegerField()
    flagged_at = models.DateTimeField(default=clock.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("account at risk")
        verbose_name_plural = _("accounts at risk")
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(cleared_at__isnull=True),
                name="at_risk_open_once",
            )
        ]


class TriggerCursor(models.Model):
    """How far ``rules.evaluate_new`` has read a workspace's interactions (by id).

    ``position`` moves on every tick; ``swept`` trails it by one sweep, and the sweep looks
    again at (swept, position] for interactions that committed out of id order.
    """

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    position = models.BigIntegerField(default=0)
    mark = models.BigIntegerField(default=0)  # position at the previous sweep
    swept = models.BigIntegerField(default=0)
    swept_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.workspace_id}@{self.position}"
