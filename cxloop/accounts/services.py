"""Writes for workspaces, memberships and API keys; each one audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from cxloop.core import clock

from .models import ApiKey, AuditLog, Membership, Role, Scope, Workspace, hash_key

# Writing last_used_at on every request would turn every read into a write; a minute is precise
# enough to tell a live key from a dead one.
LAST_USED_PRECISION = dt.timedelta(minutes=1)

Actor = AbstractBaseUser | AnonymousUser | None


def _user(actor: Actor) -> Any:
    """The actor when it is a logged-in user; None for the CLI and anonymous requests."""
    return actor if actor is not None and actor.is_authenticated else None


def audit(
    workspace: Workspace | None,
    action: str,
    *,
    via: str,
    actor: Actor = None,
    api_key: ApiKey | None = None,
    obj: Any = None,
    changes: dict[str, Any] | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        workspace=workspace,
        actor=_user(actor),
        api_key=api_key,
        via=via,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        # A row may name itself with personal data (a customer known by their e-mail): such
        # models give an ``audit_repr`` without it.
        object_repr=str(getattr(obj, "audit_repr", obj))[:200] if obj is not None else "",
        changes=changes or {},
    )


@transaction.atomic
def create_workspace(slug: str, name: str, *, via: str = "cli", actor: Actor = None) -> Workspace:
    workspace = Workspace(slug=slug, name=name)
    workspace.full_clean()
    workspace.save()
    audit(
        workspace,
        "workspace.created",
        via=via,
        actor=actor,
        obj=workspace,
        changes={"slug": slug, "name": name},
    )
    return workspace


def parse_scopes(raw: str | list[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    scopes = [s.strip() for s in items if s.strip()]
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError(
            f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(Scope.values)}"
        )
    if not scopes:
        raise ValidationError(f"give at least one scope: {', '.join(Scope.values)}")
    return sorted(set(scopes), key=Scope.values.index)


@transaction.atomic
def create_api_key(
    workspace: Workspace, name: str, scopes: list[str], *, via: str, actor: Actor = None
) -> tuple[ApiKey, str]:
    """A new key and its secret, which is never stored and cannot be shown again."""
    if not name.strip():
        raise ValidationError("an API key needs a name")
    raw = ApiKey.generate()
    key = ApiKey.objects.create(
        workspace=workspace,
        name=name.strip(),
        prefix=raw[:12],
        key_hash=hash_key(raw),
        scopes=parse_scopes(scopes),
        created_by=_user(actor),
    )
    audit(
        workspace,
        "api_key.created",
        via=via,
        actor=actor,
        obj=key,
        changes={"name": key.name, "scopes": key.scopes},
    )
    return key, raw


@transaction.atomic
def revoke_api_key(key: ApiKey, *, via: str, actor: Actor = None) -> bool:
    updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=clock.now()
    )
    if updated:
        key.refresh_from_db()
        audit(key.workspace, "api_key.revoked", via=via, actor=actor, obj=key)
    return bool(updated)


def authenticate_api_key(raw: str) -> ApiKey | None:
    if not raw.startswith("cxl_") or len(raw) > 100:
        return None
    key = ApiKey.objects.active().select_related("workspace").filter(key_hash=hash_key(raw)).first()
    if key is None:
        return None
    now = clock.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


@transaction.atomic
def set_membership(
    workspace: Workspace, user: AbstractBaseUser, role: str, *, via: str, actor: Actor = None
) -> Membership:
    membership, created = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    audit(
        workspace,
        "membership.created" if created else "membership.changed",
        via=via,
        actor=actor,
        obj=membership,
        changes={"user": user.get_username(), "role": role},
    )
    return membership


class LastAdmin(ValidationError):
    pass


def _admins_left(membership: Membership) -> int:
    return (
        Membership.objects.filter(workspace=membership.workspace, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .count()
    )


@transaction.atomic
def add_person(
    workspace: Workspace, email: str, role: str, *, actor: Actor, request: HttpRequest | None
) -> tuple[Membership, bool]:
    """Give the person with this e-mail a role here; a new person gets an invitation e-mail
    with a link to choose a password. Returns the membership and whether the user is new."""
    User = get_user_model()
    email = email.strip()
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    created = user is None
    if user is None:
        user = User.objects.create_user(username=email.lower(), email=email)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership = set_membership(workspace, user, role, via="web", actor=actor)
    if created:
        transaction.on_commit(lambda: _invite(user, workspace, request))
    return membership, created


class _InvitationForm(PasswordResetForm):
    """Django's reset e-mail (a one-time link to choose a password) sent to one invitee.

    The stock form mails only users who already have a usable password; an invitee has none.
    """

    def __init__(self, invitee: Any) -> None:
        super().__init__({"email": invitee.email})
        self.invitee = invitee

    def get_users(self, email: str) -> Any:
        return iter([self.invitee])


def _invite(user: Any, workspace: Workspace, request: HttpRequest | None) -> None:
    form = _InvitationForm(user)
    if form.is_valid():
        form.save(
            request=request,
            use_https=bool(request and request.is_secure()),
            subject_template_name="accounts/invitation_subject.txt",
            email_template_name="accounts/invitation_email.txt",
            extra_email_context={"workspace": workspace},  # type: ignore[dict-item]
        )


@transaction.atomic
def change_role(membership: Membership, role: str, *, actor: Actor) -> Membership:
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _admins_left(membership):
        raise LastAdmin("a workspace keeps at least one administrator")
    return set_membership(membership.workspace, membership.user, role, via="web", actor=actor)


@transaction.atomic
def remove_person(membership: Membership, *, actor: Actor) -> None:
    if membership.role == Role.ADMIN and not _admins_left(membership):
        raise LastAdmin("a workspace keeps at least one administrator")
    audit(membership.workspace, "membership.removed", via="web", actor=actor, obj=membership,
          changes={"user": membership.user.get_username(), "role": membership.role})  # fmt: skip
    membership.delete()
