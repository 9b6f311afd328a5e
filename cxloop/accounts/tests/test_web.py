"""Who sees what on the web: roles, workspaces, the admin, password reset by real e-mail."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import ApiKey, AuditLog, Role, Workspace
from cxloop.accounts.services import create_api_key
from cxloop.customers.services import upsert_customers
from cxloop.organisation.models import Region
from cxloop.testing import Mailbox

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def login(user: Any) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize(
    ("role", "home", "imports", "keys", "audit", "admin"),
    [
        (Role.ADMIN, 200, 200, 200, 200, 200),
        (Role.CX_MANAGER, 200, 200, 403, 200, 200),
        (Role.ANALYST, 200, 403, 403, 403, 302),
        (Role.SUPERVISOR, 200, 403, 403, 403, 302),
        (Role.EMPLOYEE, 200, 403, 403, 403, 302),
    ],
)
def test_each_role_reaches_only_its_pages(
    workspace: Workspace, make_user: Any, role: str, home: int, imports: int, keys: int,
    audit: int, admin: int,
) -> None:  # fmt: skip
    client = login(make_user(workspace, role))
    assert client.get("/").status_code == home
    assert client.get("/imports/").status_code == imports
    assert client.get("/settings/api-keys").status_code == keys
    assert client.get("/settings/audit-log").status_code == audit
    assert client.get("/admin/").status_code == admin


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.get("/imports/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_user_without_workspace_is_told_so(make_user: Any) -> None:
    client = login(make_user(None))
    response = client.get("/")
    assert response.status_code == 403
    assert b"No workspace yet" in response.content


def test_the_home_page_counts_only_this_workspace(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    upsert_customers(workspace, [{"external_id": f"A{i}"} for i in range(3)])
    upsert_customers(other_workspace, [{"external_id": f"B{i}"} for i in range(7)])
    response = login(make_user(workspace)).get("/")
    assert response.context["glance"].customers == 3
    assert b"Acme Telecom" in response.content


def test_switching_workspace_only_to_ones_you_belong_to(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    user = make_user(workspace)
    client = login(user)
    assert client.post("/workspace/switch", {"workspace": other_workspace.pk}).status_code == 404
    assert client.get("/").context["workspace"] == workspace

    from cxloop.accounts.services import set_membership

    set_membership(other_workspace, user, Role.ANALYST, via="cli")
    client.post("/workspace/switch", {"workspace": other_workspace.pk})
    assert client.get("/").context["workspace"] == other_workspace


def test_an_api_key_created_on_the_web_is_shown_once_and_audited(
    workspace: Workspace, make_user: Any
) -> None:
    client = login(make_user(workspace))
    response = client.post("/settings/api-keys", {"name": "CRM", "scopes": ["ingest", "read"]})
    raw = re.search(rb"cxl_[A-Za-z0-9_-]+", response.content)
    assert raw is not None
    assert raw.group().decode() not in client.get("/settings/api-keys").content.decode()
    key = ApiKey.objects.get()
    assert key.created_by is not None
    assert AuditLog.objects.filter(action="api_key.created", via="web").exists()


def test_a_workspace_admin_cannot_revoke_another_workspaces_key(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    key, _ = create_api_key(other_workspace, "theirs", ["read"], via="cli")
    client = login(make_user(workspace))
    assert client.post(f"/settings/api-keys/{key.pk}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_the_admin_shows_a_workspace_admin_only_their_rows(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    Region.objects.create(workspace=workspace, code="N", name="Nord")
    theirs = Region.objects.create(workspace=other_workspace, code="S", name="Sud")
    client = login(make_user(workspace))

    listing = client.get("/admin/organisation/region/")
    assert listing.status_code == 200
    assert b"Nord" in listing.content and b"Sud" not in listing.content
    assert client.get(f"/admin/organisation/region/{theirs.pk}/change/").status_code == 302

    # a new row can only be put in a workspace the user configures
    form = client.get("/admin/organisation/region/add/")
    choices = form.context["adminform"].form.fields["workspace"].queryset
    assert list(choices) == [workspace]
    response = client.post("/admin/organisation/region/add/",
                           {"workspace": other_workspace.pk, "code": "X", "name": "X"})  # fmt: skip
    assert response.status_code == 200  # the form is shown again with an error
    assert not Region.objects.filter(code="X").exists()


def test_configuration_changes_in_the_admin_are_audited(
    workspace: Workspace, make_user: Any
) -> None:
    client = login(make_user(workspace))
    client.post("/admin/organisation/region/add/",
                {"workspace": workspace.pk, "code": "N", "name": "Nord"})  # fmt: skip
    entry = AuditLog.objects.get(action="config.created")
    assert entry.workspace == workspace
    assert entry.changes["code"] == "N"


def test_password_reset_by_email_end_to_end(
    workspace: Workspace, make_user: Any, smtp: Mailbox
) -> None:
    user = make_user(workspace)
    client = Client()

    client.post("/accounts/password_reset/", {"email": user.email})
    for _ in range(50):
        if smtp.messages:
            break
        time.sleep(0.05)

    assert len(smtp.messages) == 1
    body = smtp.messages[0].get_content()
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", body)
    assert link is not None
    form = client.get(link.group(1), follow=True)
    response = client.post(form.redirect_chain[-1][0],
                           {"new_password1": "a new long passphrase 42",
                            "new_password2": "a new long passphrase 42"})  # fmt: skip
    assert response.status_code == 302
    assert Client().login(username=user.username, password="a new long passphrase 42")


def test_password_reset_for_an_unknown_address_sends_nothing(smtp: Mailbox, db: Any) -> None:
    response = Client().post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302
    time.sleep(0.2)
    assert smtp.messages == []
