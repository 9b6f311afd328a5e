"""Attach the current workspace and the user's membership in it to every request."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import Membership

SESSION_KEY = "workspace_id"


def current_membership(request: HttpRequest) -> Membership | None:
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("workspace").filter(user=request.user)
    wanted = request.session.get(SESSION_KEY)
    if wanted is not None:
        chosen = memberships.filter(workspace_id=wanted).first()
        if chosen is not None:
            return chosen
    return memberships.order_by("workspace__name").first()


class WorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The API authenticates by key and sets its own workspace.
        if not request.path.startswith("/api/"):
            membership = current_membership(request)
            request.membership = membership  # type: ignore[attr-defined]
            request.workspace = membership.workspace if membership else None  # type: ignore[attr-defined]
            if membership is not None:
                # Pages show and cut days in the workspace's time zone.
                timezone.activate(zoneinfo.ZoneInfo(membership.workspace.time_zone))
            else:
                timezone.deactivate()
        return self.get_response(request)
