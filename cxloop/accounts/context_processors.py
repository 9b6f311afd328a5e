from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .models import Membership


def workspace(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    others: list[Membership] = []
    if membership is not None and request.user.is_authenticated:
        others = list(
            Membership.objects.select_related("workspace")
            .filter(user=request.user)
            .exclude(pk=membership.pk)
            .order_by("workspace__name")
        )
    return {
        "workspace": getattr(request, "workspace", None),
        "membership": membership,
        "other_memberships": others,
    }
