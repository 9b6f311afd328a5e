"""Configuration changes of the workspace's webhooks, each one audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from cxloop.accounts.services import audit
from cxloop.core import clock

from .models import DisabledReason, Endpoint, new_secret


def create_endpoint(
    workspace: Any, url: str, event_types: list[str], *, via: str, actor: Any = None
) -> Endpoint:
    with transaction.atomic():
        endpoint = Endpoint.objects.create(workspace=workspace, url=url, event_types=event_types)
        audit(
            workspace, "webhook.created", via=via, actor=actor, obj=endpoint,
            changes={"event_types": event_types},
        )  # fmt: skip
    return endpoint


def rotate_secret(endpoint: Endpoint, *, via: str, actor: Any = None) -> str:
    """A new secret, used from the next POST on (pending deliveries included)."""
    with transaction.atomic():
        endpoint.secret = new_secret()
        endpoint.save(update_fields=["secret"])
        audit(endpoint.workspace, "webhook.secret_rotated", via=via, actor=actor, obj=endpoint)
    return endpoint.secret


def set_active(
    endpoint: Endpoint,
    active: bool,
    *,
    via: str,
    actor: Any = None,
    reason: str = DisabledReason.BY_ADMIN,
) -> bool:
    """Switch an endpoint on or off; False when it already was. Its pending deliveries wait
    while it is off and go when it is on again; switching on forgets past failures."""
    with transaction.atomic():
        changes: dict[str, Any] = {"is_active": active}
        if active:
            fields: dict[str, Any] = {
                "is_active": True, "disabled_at": None, "disabled_reason": "",
                "consecutive_failures": 0,
            }  # fmt: skip
        else:
            fields = {"is_active": False, "disabled_at": clock.now(), "disabled_reason": reason}
            changes["reason"] = reason
        if not Endpoint.objects.filter(pk=endpoint.pk, is_active=not active).update(**fields):
            return False
        for name, value in fields.items():
            setattr(endpoint, name, value)
        action = "webhook.enabled" if active else "webhook.disabled"
        audit(endpoint.workspace, action, via=via, actor=actor, obj=endpoint, changes=changes)
    return True
