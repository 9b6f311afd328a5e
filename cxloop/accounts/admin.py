from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from cxloop.core.admin import WorkspaceScopedAdmin, configurable_workspaces

from .models import ApiKey, AuditLog, Membership, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    list_display = ["slug", "name", "time_zone", "default_language", "created_at"]
    search_fields = ["slug", "name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return configurable_workspaces(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.full_clean()
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["workspace", "role"]
    search_fields = ["user__username", "user__email"]


@admin.register(ApiKey)
class ApiKeyAdmin(WorkspaceScopedAdmin):
    """Keys are created and revoked on the API keys page, where the secret is shown once."""

    list_display = ["name", "prefix", "workspace", "scopes", "created_at", "last_used_at",
                    "revoked_at"]  # fmt: skip
    readonly_fields = ["name", "prefix", "workspace", "scopes", "created_by", "created_at",
                       "last_used_at", "revoked_at"]  # fmt: skip
    exclude = ["key_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(WorkspaceScopedAdmin):
    list_display = ["created_at", "workspace", "actor", "via", "action", "object_repr"]
    list_filter = ["workspace", "action", "via"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
