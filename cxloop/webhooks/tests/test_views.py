"""Settings → Webhooks: who may, adding (the secret shown once), rotating, switching, testing,
and the delivery log."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery, DeliveryAttempt, Endpoint

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"  # cxloop/conftest.py's make_user
URL = "/settings/webhooks/"


def login(user: Any) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def admin(workspace: Workspace, make_user: Any) -> Client:
    return login(make_user(workspace, Role.ADMIN))


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    workspace: Workspace, admin: Client
) -> None:
    page = admin.post(
        URL, {"url": "https://crm.example.com/hooks/cx?token=abc", "event_types": ["case.opened"]}
    )

    assert page.status_code == 200
    endpoint = Endpoint.objects.get()
    assert (endpoint.workspace, endpoint.url, endpoint.event_types, endpoint.is_active) == (
        workspace, "https://crm.example.com/hooks/cx?token=abc", ["case.opened"], True,
    )  # fmt: skip
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) >= 40
    assert endpoint.secret in page.content.decode()

    listed = admin.get(URL).content.decode()
    assert "crm.example.com/hooks/cx" in listed
    assert endpoint.secret not in listed
    assert endpoint.secret not in admin.get(f"{URL}{endpoint.pk}").content.decode()
    entry = AuditLog.objects.get(action="webhook.created")
    assert entry.changes == {"event_types": ["case.opened"]}
    assert entry.object_repr == "https://crm.example.com/…"  # no token in the audit log


def test_the_settings_url_without_slash_leads_to_the_page(admin: Client) -> None:
    response = admin.get("/settings/webhooks")
    assert response.status_code == 301 and response["Location"] == URL


@pytest.mark.parametrize(
    "url",
    ["ftp://files.example.com/hook", "not a url", "javascript:alert(1)", "https://", ""],
)
def test_a_bad_url_is_refused_and_nothing_saved(admin: Client, url: str) -> None:
    page = admin.post(URL, {"url": url})

    assert page.status_code == 200
    assert page.context["form"].errors["url"]
    assert not Endpoint.objects.exists()
    assert not AuditLog.objects.filter(action="webhook.created").exists()


def test_an_unknown_event_type_is_refused(admin: Client) -> None:
    page = admin.post(URL, {"url": "https://crm.example.com/h", "event_types": ["ping"]})

    assert page.context["form"].errors["event_types"]
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.SUPERVISOR, Role.EMPLOYEE])
def test_other_roles_are_refused(workspace: Workspace, make_user: Any, role: str) -> None:
    endpoint = hook(workspace, "https://crm.example.com/h")
    client = login(make_user(workspace, role))

    assert client.get(URL).status_code == 403
    assert client.post(URL, {"url": "https://evil.example.com/h"}).status_code == 403
    assert client.get(f"{URL}{endpoint.pk}").status_code == 403
    for action in ("rotate-secret", "active", "test"):
        assert client.post(f"{URL}{endpoint.pk}/{action}").status_code == 403
    assert Endpoint.objects.count() == 1 and not Delivery.objects.exists()


def test_a_cx_manager_may_configure(workspace: Workspace, make_user: Any) -> None:
    assert login(make_user(workspace, Role.CX_MANAGER)).get(URL).status_code == 200


def test_another_workspaces_endpoint_is_not_found(
    other_workspace: Workspace, admin: Client
) -> None:
    endpoint = hook(other_workspace, "https://globex.example.com/h")
    secret = endpoint.secret

    assert admin.get(f"{URL}{endpoint.pk}").status_code == 404
    for action in ("rotate-secret", "active", "test"):
        assert admin.post(f"{URL}{endpoint.pk}/{action}", {"active": "0"}).status_code == 404
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.is_active) == (secret, True)
    assert "globex" not in admin.get(URL).content.decode()


def test_rotating_the_secret_shows_the_new_one_once(workspace: Workspace, admin: Client) -> None:
    endpoint = hook(workspace, "https://crm.example.com/h")
    old = endpoint.secret

    page = admin.post(f"{URL}{endpoint.pk}/rotate-secret")

    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.secret in page.content.decode()
    assert endpoint.secret not in admin.get(f"{URL}{endpoint.pk}").content.decode()
    assert AuditLog.objects.filter(action="webhook.secret_rotated").count() == 1
    assert admin.get(f"{URL}{endpoint.pk}/rotate-secret").status_code == 405


def test_switching_off_and_on_is_audited(workspace: Workspace, admin: Client) -> None:
    endpoint = hook(workspace, "https://crm.example.com/h")

    admin.post(f"{URL}{endpoint.pk}/active", {"active": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason == "admin"
    assert "Switched off by an administrator" in admin.get(URL).content.decode()

    admin.post(f"{URL}{endpoint.pk}/active", {"active": "0"})  # already: no second entry
    admin.post(f"{URL}{endpoint.pk}/active", {"active": "1"})
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_at is None
    actions = list(AuditLog.objects.filter(action__startswith="webhook.").values_list("action"))
    assert sorted(a for (a,) in actions) == ["webhook.disabled", "webhook.enabled"]


def test_a_test_event_goes_to_that_endpoint_only_and_shows_in_the_log(
    workspace: Workspace, admin: Client, receiver: Receiver
) -> None:
    endpoint = hook(workspace, receiver.url, events.RESPONSE_CREATED)
    hook(workspace, receiver.url + "/other")

    answer = admin.post(f"{URL}{endpoint.pk}/test", follow=True)
    assert answer.status_code == 200
    receiver.plan = [500]
    assert delivery.deliver_due() == {"retry": 1}

    (body,) = receiver.bodies()
    assert body["type"] == "ping" and receiver.paths == ["/hooks/cxloop"]
    ping = Delivery.objects.get()
    page = admin.get(f"{URL}{endpoint.pk}")
    shown = page.content.decode()
    assert page.context["deliveries"][0] == ping
    assert ping.event_id.hex in shown
    assert [a.status_code for a in page.context["attempts"]] == [500]
    assert DeliveryAttempt.objects.count() == 1


def test_the_list_shows_subscriptions_status_and_last_success(
    workspace: Workspace, admin: Client, receiver: Receiver
) -> None:
    hook(workspace, receiver.url, events.CASE_OPENED)
    hook(workspace, "https://bi.example.com/all", is_active=False, disabled_reason="failures")
    events.emit(workspace.pk, events.CASE_OPENED, {"id": 1})
    delivery.deliver_due()

    shown = admin.get(URL).content.decode()

    assert "case.opened" in shown and "all events" in shown
    assert "Switched off by cxloop" in shown
    assert Endpoint.objects.get(url=receiver.url).last_success_at is not None
