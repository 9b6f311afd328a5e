"""The admin shows suppressions, invitations and decisions of the user's workspaces only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.core import clock
from cxloop.surveys.models import Invitation, InvitationStatus, Suppression

from .factories import make_customer, make_survey


def test_admin_lists_are_scoped_and_invitations_read_only(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    now = clock.now()
    for ws in (workspace, other_workspace):
        survey = make_survey(ws)
        customer = make_customer(ws, f"C-{ws.slug}")
        Invitation.objects.create(
            workspace=ws, survey=survey, customer=customer, delivery_channel="email",
            language="en", status=InvitationStatus.SENT, scheduled_for=now,
            expires_at=now + dt.timedelta(days=1),
        )  # fmt: skip
        Suppression.objects.create(
            workspace=ws, delivery_channel="email", address=f"x@{ws.slug}.md", reason="bounced"
        )
    client = Client()
    client.force_login(make_user(workspace, Role.ADMIN))
    page = client.get("/admin/surveys/invitation/").content.decode()
    assert "C-acme" in page and "C-globex" not in page
    invitation = Invitation.objects.get(workspace=workspace)
    detail = client.get(f"/admin/surveys/invitation/{invitation.pk}/change/")
    assert detail.status_code == 200
    assert invitation.token not in detail.content.decode()
    assert (
        client.post(
            f"/admin/surveys/invitation/{invitation.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    suppressions = client.get("/admin/surveys/suppression/").content.decode()
    assert "x@acme.md" in suppressions and "x@globex.md" not in suppressions
    assert client.get("/admin/surveys/decision/").status_code == 200
