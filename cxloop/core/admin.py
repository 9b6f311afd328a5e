"""The Django admin, scoped: a workspace admin or CX manager sees only their workspaces."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from cxloop.accounts.models import ROLE_PERMISSIONS, Membership, Permission, Role, Workspace
from cxloop.accounts.services import audit

CONFIGURING_ROLES = [r for r in Role.values if Permission.CONFIGURE in ROLE_PERMISSIONS[r]]


def configurable_workspaces(request: HttpRequest) -> QuerySet[Workspace]:
    if request.user.is_superuser:
        return Workspace.objects.all()
    if not request.user.is_authenticated:
        return Workspace.objects.none()
    ids = Membership.objects.filter(user=request.user, role__in=CONFIGURING_ROLES).values(
        "workspace_id"
    )
    return Workspace.objects.filter(pk__in=ids)


class CxAdminSite(admin.AdminSite):
    site_header = _("cxloop configuration")
    site_title = "cxloop"
    index_title = _("Configuration")

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_active and user.is_authenticated):
            return False
        return bool(user.is_superuser or configurable_workspaces(request).exists())


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Rows of the workspaces the user may configure; foreign keys limited to them; audited."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(workspace__in=configurable_workspaces(request))

    def _allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser or configurable_workspaces(request).exists())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is None or field.queryset is None:
            return field
        model = db_field.remote_field.model
        allowed = configurable_workspaces(request)
        if model is Workspace:
            field.queryset = field.queryset.filter(pk__in=allowed)
        elif any(f.name == "workspace" for f in model._meta.get_fields()):
            field.queryset = field.queryset.filter(workspace__in=allowed)
        return field

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changes = {name: str(form.cleaned_data.get(name)) for name in form.changed_data}
        audit(obj.workspace, f"config.{'changed' if change else 'created'}", via="admin",  # type: ignore[attr-defined]
              actor=request.user, obj=obj, changes=changes)  # fmt: skip

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        audit(obj.workspace, "config.deleted", via="admin", actor=request.user, obj=obj)  # type: ignore[attr-defined]
        super().delete_model(request, obj)
