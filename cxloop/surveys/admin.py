"""The admin: suppressions can be managed by hand; invitations and decisions are for looking."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from cxloop.core.admin import WorkspaceScopedAdmin

from .models import Decision, Invitation, Suppression


@admin.register(Suppression)
class SuppressionAdmin(WorkspaceScopedAdmin):
    """Add an address nobody may contact, or delete a suppression to allow contact again."""

    list_display = ["delivery_channel", "address", "customer", "reason", "source", "created_at"]
    list_filter = ["reason", "delivery_channel"]
    search_fields = ["address", "customer__external_id"]
    raw_id_fields = ["customer"]


class ReadOnlyAdmin(WorkspaceScopedAdmin):
    """Written by the dispatcher only: changing them by hand would falsify the record."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = [
        "survey", "customer", "delivery_channel", "status", "status_reason", "scheduled_for",
        "sent_at", "answered_at",
    ]  # fmt: skip
    list_filter = ["status", "delivery_channel", "survey"]
    search_fields = ["customer__external_id"]
    list_select_related = ["survey", "customer"]
    exclude = ["token", "claim"]  # the token is the respondent's key: never shown


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "survey", "customer", "outcome", "reason", "detail"]
    list_filter = ["outcome", "reason", "survey"]
    search_fields = ["customer__external_id"]
    list_select_related = ["survey", "customer"]
