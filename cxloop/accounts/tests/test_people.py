"""A workspace admin adds, invites, re-roles and removes people of their workspace only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from cxloop.accounts.models import AuditLog, Membership, Role, Workspace

pytestmark = pytest.mark.django_db


def admin_client(workspace: Workspace, make_user: Any) -> Client:
    client = Client()
    client.force_login(make_user(workspace, Role.ADMIN))
    return client


def test_inviting_someone_new_mails_a_link_that_sets_their_password(
    workspace: Workspace, make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = admin_client(workspace, make_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/settings/people", {"email": "Ion.Rusu@Example.md",
                                                    "role": Role.SUPERVISOR})  # fmt: skip

    assert response.status_code == 302
    user = get_user_model().objects.get(email__iexact="ion.rusu@example.md")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user).role == Role.SUPERVISOR
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Ion.Rusu@example.md"]  # the domain lower-cased
    assert "Acme Telecom" in mail.outbox[0].subject
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    invitee = Client()
    form = invitee.get(link.group(1), follow=True)
    assert form.status_code == 200
    done = invitee.post(form.redirect_chain[-1][0], {
        "new_password1": "a fresh long passphrase", "new_password2": "a fresh long passphrase",
    })  # fmt: skip
    assert done.status_code == 302
    assert Client().login(username="ion.rusu@example.md", password="a fresh long passphrase")
    assert AuditLog.objects.filter(action="membership.created", workspace=workspace).exists()


def test_someone_who_already_has_an_account_gets_access_without_a_mail(
    workspace: Workspace, other_workspace: Workspace, make_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    existing = make_user(other_workspace, Role.ANALYST, username="ana")
    client = admin_client(workspace, make_user)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/settings/people", {"email": existing.email.upper(), "role": Role.ANALYST})

    assert mail.outbox == []
    assert Membership.objects.filter(user=existing).count() == 2
    assert get_user_model().objects.filter(email__iexact=existing.email).count() == 1


def test_changing_a_role_and_removing_someone(workspace: Workspace, make_user: Any) -> None:
    client = admin_client(workspace, make_user)
    member = Membership.objects.get(user=make_user(workspace, Role.EMPLOYEE))

    client.post(f"/settings/people/{member.pk}", {"role": Role.SUPERVISOR})
    member.refresh_from_db()
    assert member.role == Role.SUPERVISOR

    client.post(f"/settings/people/{member.pk}", {"remove": "1"})
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert AuditLog.objects.filter(action="membership.removed").count() == 1


def test_the_last_administrator_cannot_leave_or_be_demoted(
    workspace: Workspace, make_user: Any
) -> None:
    admin = make_user(workspace, Role.ADMIN)
    client = Client()
    client.force_login(admin)
    own = Membership.objects.get(user=admin)

    demote = client.post(f"/settings/people/{own.pk}", {"role": Role.ANALYST}, follow=True)
    client.post(f"/settings/people/{own.pk}", {"remove": "1"})

    own.refresh_from_db()
    assert own.role == Role.ADMIN
    assert "at least one administrator" in demote.content.decode()


def test_people_of_another_workspace_are_out_of_reach(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    theirs = Membership.objects.get(user=make_user(other_workspace, Role.ADMIN))
    client = admin_client(workspace, make_user)

    assert client.post(f"/settings/people/{theirs.pk}", {"remove": "1"}).status_code == 404
    assert client.post(f"/settings/people/{theirs.pk}", {"role": "employee"}).status_code == 404
    assert Membership.objects.filter(pk=theirs.pk, role=Role.ADMIN).exists()
    assert theirs.user.email not in client.get("/settings/people").content.decode()


@pytest.mark.parametrize("role", [Role.CX_MANAGER, Role.ANALYST, Role.SUPERVISOR, Role.EMPLOYEE])
def test_only_administrators_manage_people(workspace: Workspace, make_user: Any, role: str) -> None:
    client = Client()
    client.force_login(make_user(workspace, role))
    assert client.get("/settings/people").status_code == 403
    assert (
        client.post("/settings/people", {"email": "x@example.com", "role": "admin"}).status_code
        == 403
    )
    assert not get_user_model().objects.filter(email="x@example.com").exists()


def test_a_bad_address_is_shown_on_the_form(workspace: Workspace, make_user: Any) -> None:
    response = admin_client(workspace, make_user).post(
        "/settings/people", {"email": "not an address", "role": Role.ADMIN}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["email"]
