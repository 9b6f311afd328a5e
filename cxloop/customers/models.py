"""Customers, their companies (B2B accounts) and their consent per channel."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from cxloop.core.models import Timestamped, WorkspaceScoped


class Account(WorkspaceScoped, Timestamped):
    """A B2B customer company; its contacts are customers."""

    external_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("company account")
        verbose_name_plural = _("company accounts")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="account_unique")
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class Customer(WorkspaceScoped, Timestamped):
    external_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text=_("E.164, e.g. +37322123456"))
    language = models.CharField(max_length=8, blank=True)
    time_zone = models.CharField(max_length=64, blank=True)
    segment = models.CharField(max_length=64, blank=True)
    is_b2b = models.BooleanField(default=False)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    # Per channel, e.g. {"email": true, "sms": false}; a channel not given follows the
    # workspace's default_consent.
    consent: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    attributes: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="customer_unique")
        ]
        indexes = [models.Index(fields=["workspace", "updated_at"])]

    def __str__(self) -> str:
        return self.external_id

    @property
    def audit_repr(self) -> str:
        """How the audit log names a customer: never by a possibly personal external id."""
        return f"customer {self.pk}"

    def consents_to(self, channel: str) -> bool:
        if channel in self.consent:
            return bool(self.consent[channel])
        return bool(self.workspace.default_consent.get(channel, False))
