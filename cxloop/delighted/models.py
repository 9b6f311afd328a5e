"""What Delighted's API has and cxloop's own model lacks: the survey the API feeds, person
properties, notes and tags on responses, outgoing webhooks, Autopilot (recurring surveys)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.models import WorkspaceScoped


class CompatSettings(WorkspaceScoped):
    """Which survey the Delighted-compatible API feeds (default: see ``http.compat_survey``)."""

    survey = models.ForeignKey(
        "surveys.Survey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("Delighted compatibility setting")
        verbose_name_plural = _("Delighted compatibility settings")
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="delighted_settings_once")
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.survey_id}"


class SurveyRequest(WorkspaceScoped):
    """A ``POST people`` that asked for a survey: the person properties it carried."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    invitation = models.OneToOneField(
        "surveys.Invitation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delighted_request",
    )
    properties: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("Delighted survey request")
        verbose_name_plural = _("Delighted survey requests")

    def __str__(self) -> str:
        return f"{self.customer_id}@{self.created_at:%Y-%m-%d}"


class ResponseMeta(models.Model):
    """Delighted's fields of a response: person properties, notes and tags."""

    response = models.OneToOneField(
        "surveys.Response", on_delete=models.CASCADE, related_name="delighted"
    )
    person_properties: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    notes: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    tags: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = _("Delighted response fields")
        verbose_name_plural = _("Delighted response fields")

    def __str__(self) -> str:
        return str(self.response_id)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


class WebhookEndpoint(WorkspaceScoped):
    """A receiver written for Delighted's webhooks."""

    url = models.URLField(max_length=500)
    # Empty: every event type.
    event_types: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    secret = models.CharField(max_length=64, default=new_secret)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(WorkspaceScoped):
    """One event for one endpoint; retried with backoff until delivered or given up."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(default=uuid.uuid4)
    event_type = models.CharField(max_length=40)
    payload: models.JSONField[Any, Any] = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=clock.now)
    claim = models.CharField(max_length=32, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_event_once")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class Platform(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class AutopilotConfig(WorkspaceScoped):
    """Delighted's Autopilot: a recurring survey of the members, per platform."""

    platform = models.CharField(max_length=8, choices=Platform.choices)
    survey = models.ForeignKey(
        "surveys.Survey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    active = models.BooleanField(default=True)
    frequency_days = models.PositiveIntegerField(default=90)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("Autopilot configuration")
        verbose_name_plural = _("Autopilot configurations")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "platform"], name="autopilot_once")
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}/{self.platform}"


class AutopilotMembership(WorkspaceScoped):
    platform = models.CharField(max_length=8, choices=Platform.choices)
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    properties: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    next_survey_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("Autopilot membership")
        verbose_name_plural = _("Autopilot memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "platform", "customer"], name="autopilot_member_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_survey_at"],
                name="autopilot_due",
                condition=Q(next_survey_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.customer_id}"
