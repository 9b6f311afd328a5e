"""The admin: which survey the Delighted API feeds, Autopilot, and webhook receivers.

Deliveries are for looking only: editing one by hand would falsify what a receiver was sent.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.admin import WorkspaceScopedAdmin

from .models import AutopilotConfig, CompatSettings, WebhookDelivery, WebhookEndpoint
from .webhooks import EVENT_TYPES


@admin.register(CompatSettings)
class CompatSettingsAdmin(WorkspaceScopedAdmin):
    list_display = ["workspace", "survey"]


@admin.register(AutopilotConfig)
class AutopilotConfigAdmin(WorkspaceScopedAdmin):
    """No survey chosen: the workspace's first active relationship survey."""

    list_display = ["workspace", "platform", "survey", "active", "frequency_days", "updated_at"]
    list_filter = ["platform", "active"]
    exclude = ["created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.updated_at = clock.now()  # Delighted's API reports it
        super().save_model(request, obj, form, change)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: every event type."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["workspace", "url", "event_types", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(WorkspaceScopedAdmin):
    """The secret is shown (read-only) so it can be copied into the receiver's settings."""

    form = WebhookEndpointForm
    list_display = ["url", "workspace", "event_types", "is_active", "created_at"]
    list_filter = ["is_active"]
    readonly_fields = ["secret", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(WorkspaceScopedAdmin):
    list_display = [
        "created_at", "event_type", "endpoint", "status", "attempts", "next_attempt_at",
        "last_error",
    ]  # fmt: skip
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    exclude = ["claim"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
