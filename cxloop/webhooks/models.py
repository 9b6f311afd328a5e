"""Endpoints (where a workspace wants its events), deliveries (one event for one endpoint)
and the delivery log (one row per POST)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from django.db import models
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.models import WorkspaceScoped


def new_secret() -> str:
    """256 random bits; the prefix tells a reader of the receiver's settings what it is."""
    return "whsec_" + secrets.token_urlsafe(32)


class DisabledReason(models.TextChoices):
    FAILURES = "failures", _("Switched off by cxloop: its last deliveries all failed")
    BY_ADMIN = "admin", _("Switched off by an administrator")


class Endpoint(WorkspaceScoped):
    """A receiver of the workspace's events.

    The secret signs every POST; it is kept as written (signing needs it), shown once when
    made or rotated, and never logged.
    """

    url = models.URLField(_("URL"), max_length=500)
    # Empty: every event type.
    event_types: models.JSONField[Any, Any] = models.JSONField(
        _("event types"), default=list, blank=True
    )
    secret = models.CharField(max_length=64, default=new_secret)
    is_active = models.BooleanField(_("active"), default=True)
    # Set when cxloop switched it off after persistent failure (or an admin did).
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=20, choices=DisabledReason.choices, blank=True)
    # Deliveries given up (``failed``) since the last one delivered; see delivery.DISABLE_AFTER.
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.audit_repr

    @property
    def audit_repr(self) -> str:
        """Scheme and host only: a URL's path or query may hold the receiver's token."""
        parts = urlsplit(self.url)
        rest = "/…" if parts.path.strip("/") or parts.query else ""
        return f"{parts.scheme}://{parts.hostname or ''}{rest}"

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class Delivery(WorkspaceScoped):
    """One event for one endpoint; retried with backoff until delivered or given up.

    ``body`` is the exact JSON posted, the same bytes at every attempt and for every endpoint
    of the event (stored as text: a jsonb column would reorder its keys).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=clock.now)
    # The claim of the heartbeat posting it; only that heartbeat may record the outcome.
    claim = models.CharField(max_length=32, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=100, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="hook_event_once")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="hook_due"),
            models.Index(fields=["endpoint", "-created_at"], name="hook_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id.hex}"


class DeliveryAttempt(models.Model):
    """One POST of a delivery: when, the answer's status (none: no answer), how long.

    Never the URL nor the body: the one may hold a token, the other personal data.
    """

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The exception's class (``ConnectTimeout``…) when there was no answer.
    error = models.CharField(max_length=100, blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        verbose_name = _("webhook delivery attempt")
        verbose_name_plural = _("webhook delivery attempts")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
