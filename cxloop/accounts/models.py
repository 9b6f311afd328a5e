"""Workspaces, who may do what in them, API keys and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    _("Use 1-50 lower-case letters, digits and hyphens, not starting or ending with a hyphen."),
)


def default_consent() -> dict[str, bool]:
    return {"email": True, "sms": False}


class Workspace(models.Model):
    """One organisation served by this deployment. Every domain row belongs to one."""

    slug = models.SlugField(max_length=50, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC")
    default_language = models.CharField(max_length=8, default="en")
    # Consent for a channel a customer record does not mention.
    default_consent = models.JSONField(default=default_consent)
    # Region used to read phone numbers written without a country code (ISO 3166, e.g. "MD").
    phone_region = models.CharField(max_length=2, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("workspace")
        verbose_name_plural = _("workspaces")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    CX_MANAGER = "cx_manager", _("CX manager")
    ANALYST = "analyst", _("Analyst")
    SUPERVISOR = "supervisor", _("Supervisor")
    EMPLOYEE = "employee", _("Employee")


class Permission(models.TextChoices):
    """What a role may do; checked by ``Membership.can``."""

    CONFIGURE = "configure"  # workspace settings, organisation, surveys
    MANAGE_USERS = "manage_users"
    MANAGE_API_KEYS = "manage_api_keys"
    IMPORT_DATA = "import_data"
    EXPORT_DATA = "export_data"
    VIEW_ALL_FEEDBACK = "view_all_feedback"
    VIEW_TEAM_FEEDBACK = "view_team_feedback"
    VIEW_OWN_FEEDBACK = "view_own_feedback"
    VIEW_CUSTOMER_CONTACTS = "view_customer_contacts"


P = Permission
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(P.values),
    Role.CX_MANAGER: frozenset(
        {
            P.CONFIGURE,
            P.IMPORT_DATA,
            P.EXPORT_DATA,
            P.VIEW_ALL_FEEDBACK,
            P.VIEW_TEAM_FEEDBACK,
            P.VIEW_OWN_FEEDBACK,
            P.VIEW_CUSTOMER_CONTACTS,
        }
    ),
    Role.ANALYST: frozenset(
        {P.EXPORT_DATA, P.VIEW_ALL_FEEDBACK, P.VIEW_TEAM_FEEDBACK, P.VIEW_OWN_FEEDBACK}
    ),
    Role.SUPERVISOR: frozenset(
        {P.VIEW_TEAM_FEEDBACK, P.VIEW_OWN_FEEDBACK, P.VIEW_CUSTOMER_CONTACTS}
    ),
    Role.EMPLOYEE: frozenset({P.VIEW_OWN_FEEDBACK}),
}


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "workspace"], name="one_membership_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


class Scope(models.TextChoices):
    INGEST = "ingest", _("Ingest customers and interactions")
    READ = "read", _("Read data")
    ADMIN = "admin", _("Administer the workspace")


KEY_PREFIX = "cxl_"


def hash_key(raw: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A workspace's key for the API. The key itself is shown once; only its hash is kept."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text=_("The first characters, to recognise it."))
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


class AuditLog(models.Model):
    """Who changed configuration, keys or exported data, and when. Never holds personal data."""

    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "cli" for management commands, "web", "admin", "api".
    via = models.CharField(max_length=10)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_repr}"
