"""Looking only: endpoints are configured on the settings page (Settings → Webhooks), where
every change is audited and the secret is shown once; deliveries record what a receiver was
sent and are never edited by hand. Neither secrets nor bodies are shown here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from cxloop.core.admin import WorkspaceScopedAdmin

from .models import Delivery, DeliveryAttempt, Endpoint


class ReadOnly(WorkspaceScopedAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(ReadOnly):
    list_display = [
        "url", "workspace", "event_types", "is_active", "disabled_reason", "last_success_at",
        "created_at",
    ]  # fmt: skip
    list_filter = ["is_active"]
    exclude = ["secret"]


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = ["at", "status_code", "error", "duration_ms"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly):
    list_display = [
        "created_at", "event_type", "endpoint", "status", "attempts", "last_status_code",
        "next_attempt_at",
    ]  # fmt: skip
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    exclude = ["claim", "body"]
    inlines = [AttemptInline]
