"""Fixtures every test can use: two workspaces, their people and keys, an API client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.accounts.services import create_api_key, create_workspace, set_membership
from cxloop.testing import Mailbox, free_port


@pytest.fixture
def workspace(db: Any) -> Workspace:
    return create_workspace("acme", "Acme Telecom", via="cli")


@pytest.fixture
def other_workspace(db: Any) -> Workspace:
    return create_workspace("globex", "Globex Bank", via="cli")


@dataclass
class Api:
    """A client holding one API key; methods speak JSON."""

    client: Client
    key: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params, headers=self._headers())

    def post(self, path: str, body: Any) -> Any:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(
            f"/api/v1{path}", data, content_type="application/json", headers=self._headers()
        )


@pytest.fixture
def make_api(client: Client) -> Callable[..., Api]:
    def make(workspace: Workspace, scopes: tuple[str, ...] = ("ingest", "read")) -> Api:
        _, raw = create_api_key(workspace, "test", list(scopes), via="cli")
        return Api(Client(), raw)

    return make


@pytest.fixture
def api(workspace: Workspace, make_api: Callable[..., Api]) -> Api:
    return make_api(workspace)


@pytest.fixture
def make_user(db: Any) -> Callable[..., Any]:
    def make(
        workspace: Workspace | None, role: str = Role.ADMIN, username: str | None = None
    ) -> Any:
        name = username or f"{role}-{workspace.slug if workspace else 'none'}"
        user = get_user_model().objects.create_user(
            name, email=f"{name}@example.com", password="correct horse battery staple"
        )
        if workspace is not None:
            set_membership(workspace, user, role, via="cli")
        return user

    return make


@pytest.fixture(autouse=True)
def _sms_prints(settings: Any) -> None:
    """SMS to the console in every test, whatever DEBUG is (it decides the default)."""
    settings.SMS_BACKEND = "console"


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server on loopback, and Django's SMTP backend pointed at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_TIMEOUT = 5
    yield mailbox
    controller.stop()


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """Each test starts in the default language: a request in Russian must not leave its
    translation active for the next test in the same thread."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_charts(settings: Any) -> None:
    """Each test draws its charts: one that makes rendering fail must not find them kept, and
    a page asked again after its data changed shows the new chart (``test_charts`` turns
    ``CHART_MAX_AGE`` on)."""
    from cxloop.core import charts

    settings.CHART_MAX_AGE = 0
    charts.clear_cache()


@pytest.fixture(autouse=True)
def _fresh_customer_sets() -> None:
    """The pain map's decoded customer sets are kept by cell id; a rolled-back test may leave
    SQLite to hand the same id to another test's cell."""
    from cxloop.analytics import reasons

    reasons.forget_sets()
