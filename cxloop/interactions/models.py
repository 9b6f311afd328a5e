"""Events from the CRM/ERP: calls, visits, deliveries, service jobs, and operational events."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from cxloop.core.models import WorkspaceScoped
from cxloop.organisation.models import Placed

# Operational events are interactions with a type of their own; these are the well-known ones
# (a workspace may send any other slug).
OPERATIONAL_EVENT_TYPES = frozenset(
    {"dropped_call", "late_delivery", "failed_payment", "service_outage", "missed_appointment"}
)


class Interaction(Placed, WorkspaceScoped):
    source = models.CharField(max_length=64, help_text=_("The system that sent it, e.g. crm."))
    external_id = models.CharField(max_length=128)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="interactions"
    )
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    attributes: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "source", "external_id"], name="interaction_unique"
            )
        ]
        indexes = [models.Index(fields=["workspace", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"

    @property
    def is_operational_event(self) -> bool:
        return self.type in OPERATIONAL_EVENT_TYPES
