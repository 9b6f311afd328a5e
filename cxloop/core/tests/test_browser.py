"""What a person does in a real browser: log in, import a CSV, manage API keys, stay in bounds.

Chromium (Debian's, through Playwright) talks to a live server on the test database; Celery
runs eagerly, so an import is finished when its upload request returns.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cxloop.accounts.models import ApiKey, Role, Workspace
from cxloop.core import clock
from cxloop.customers.services import upsert_customers
from cxloop.imports.models import ImportJob, ImportKind, ImportStatus
from cxloop.interactions.models import Interaction
from cxloop.interactions.services import ingest_interactions

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

Login = Callable[..., None]


def _customers(workspace: Workspace, *ids: str) -> None:
    result = upsert_customers(workspace, [{"external_id": i, "name": f"Customer {i}"} for i in ids])
    assert result.accepted == len(ids), result.errors


def _api_get(url: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_log_in_refuses_a_wrong_password_then_lands_on_the_workspace(
    page: Page, live_server: Any, workspace: Workspace, make_user: Any, login: Login
) -> None:
    user = make_user(workspace, Role.ANALYST)
    _customers(workspace, "C1", "C2", "C3")
    now = clock.now()
    result = ingest_interactions(workspace, [
        {"source": "crm", "external_id": f"I{n}", "customer": f"C{n % 3 + 1}",
         "type": "call" if n % 2 else "store_visit",
         "occurred_at": (now - dt.timedelta(days=n * 3)).isoformat()}
        for n in range(5)
    ])  # fmt: skip
    assert result.accepted == 5

    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", "not the password")
    page.click("form button[type=submit]")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")
    assert "didn't match" in page.inner_text("#login-error")
    assert page.locator("header.top").count() == 0  # not logged in

    login(page, user)
    assert page.inner_text("main h1") == "Acme Telecom"
    assert page.inner_text("#count-customers") == "3"
    assert page.inner_text("#count-interactions") == "5"
    assert "Analyst" in page.inner_text("header.top")
    # The weekly chart is a server-rendered SVG, with one bar per week holding the 5 interactions.
    bars = page.locator("#weekly svg [aria-roledescription=bar]")
    labels = [bars.nth(i).get_attribute("aria-label") or "" for i in range(bars.count())]
    assert sum(int(label.rsplit(" ", 1)[-1]) for label in labels) == 5
    types = page.text_content("#types svg") or ""
    assert "call" in types and "store_visit" in types


def test_an_empty_workspace_says_so_instead_of_a_chart(
    page: Page, workspace: Workspace, make_user: Any, login: Login
) -> None:
    login(page, make_user(workspace, Role.ADMIN))
    assert page.inner_text("#count-interactions") == "0"
    assert page.locator("#weekly svg").count() == 0
    assert "No interactions yet" in page.inner_text("#weekly")
    assert "No interactions in the last 30 days" in page.inner_text("#types")


INTERACTIONS_CSV = (
    "source,external_id,customer,type,occurred_at\n"
    "pos,R1,C1,store_visit,2025-03-03 10:15\n"
    "pos,R2,C2,store_visit,2025-03-03 10:42\n"
    "pos,R3,NOBODY,store_visit,2025-03-03 11:05\n"  # line 4: no such customer
    "pos,R4,C1,call,2025-03-04 09:00\n"
)


def _upload(page: Page, base: str, name: str, content: str) -> None:
    page.goto(f"{base}/imports/")
    page.select_option("#id_kind", ImportKind.INTERACTIONS)
    page.set_input_files(
        "#id_file", {"name": name, "mimeType": "text/csv", "buffer": content.encode()}
    )
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/imports/\d+$"))


def test_an_admin_imports_a_csv_and_sees_the_rejected_line(
    page: Page, live_server: Any, workspace: Workspace, make_user: Any, login: Login
) -> None:
    _customers(workspace, "C1", "C2")
    login(page, make_user(workspace, Role.ADMIN))
    page.click("header.top nav >> text=Import")
    assert page.url == f"{live_server.url}/imports/"

    _upload(page, live_server.url, "visits.csv", INTERACTIONS_CSV)
    assert page.inner_text("main h1").startswith("visits.csv")
    assert page.inner_text("#status") == "Done"
    assert page.inner_text("#rows") == "4"
    assert page.inner_text("#accepted") == "3"
    assert page.inner_text("#duplicates") == "0"
    assert page.inner_text("#rejected") == "1"
    rejects = page.locator("#rejects tr").filter(has_text="NOBODY")
    assert rejects.count() == 1
    assert rejects.locator("td").first.inner_text() == "4"
    assert "customer" in rejects.inner_text()
    stored = Interaction.objects.filter(workspace=workspace, source="pos")
    assert sorted(stored.values_list("external_id", flat=True)) == ["R1", "R2", "R4"]
    assert stored.get(external_id="R4").customer.external_id == "C1"

    # The rejected rows download as a CSV naming the line and the reason.
    with page.expect_download() as download:
        page.click("text=Download all rejected rows (CSV)")
    path = download.value.path()
    assert path is not None
    lines = path.read_text().splitlines()
    assert lines[0].startswith("line,errors,source")
    assert lines[1].startswith("4,") and "NOBODY" in lines[1]

    # The same file again changes nothing: every good row is a duplicate.
    _upload(page, live_server.url, "visits.csv", INTERACTIONS_CSV)
    assert page.inner_text("#status") == "Done"
    assert page.inner_text("#accepted") == "0"
    assert page.inner_text("#duplicates") == "3"
    assert page.inner_text("#rejected") == "1"
    assert stored.count() == 3
    page.click("text=All imports")
    assert page.locator("main table a", has_text="visits.csv").count() == 2


def test_an_api_key_is_shown_once_works_and_stops_working_when_revoked(
    page: Page, live_server: Any, workspace: Workspace, make_user: Any, login: Login
) -> None:
    _customers(workspace, "C1")
    ingest_interactions(workspace, [{"source": "crm", "external_id": "I1", "customer": "C1",
                                     "type": "call", "occurred_at": clock.now().isoformat()}])  # fmt: skip
    login(page, make_user(workspace, Role.ADMIN))
    # The workspace's settings are one menu in the header.
    page.click("header.top nav summary:has-text('Settings')")
    page.click("header.top nav >> text=API keys")
    page.fill("#id_name", "Help desk")
    page.check("input[name=scopes][value=read]")
    page.click("main form button[type=submit]:has-text('Create key')")
    raw = page.inner_text("#new-key").strip()
    assert raw.startswith("cxl_")
    key = ApiKey.objects.get(workspace=workspace, name="Help desk")
    assert sorted(key.scopes) == ["ingest", "read"]

    url = f"{live_server.url}/api/v1/interactions"
    status, body = _api_get(url, raw)
    assert status == 200
    assert [item["external_id"] for item in body["items"]] == ["I1"]

    # Shown once: the page never shows it again, only its prefix.
    page.goto(f"{live_server.url}/settings/api-keys")
    assert raw not in page.content()
    assert page.locator("#new-key").count() == 0
    row = page.locator("#keys tr", has_text="Help desk")
    assert key.prefix in row.inner_text()

    row.locator("button", has_text="Revoke").click()
    assert "revoked" in page.inner_text(".messages")
    assert page.locator("#keys tr", has_text="Help desk").locator(".tag.bad").count() == 1
    status, body = _api_get(url, raw)
    assert status == 401
    assert "revoked" in body["detail"]


def test_an_employee_sees_no_admin_links_and_is_refused_the_import_page(
    page: Page, live_server: Any, workspace: Workspace, make_user: Any, login: Login
) -> None:
    login(page, make_user(workspace, Role.EMPLOYEE))
    nav = page.locator("header.top nav")
    assert nav.locator("a", has_text="Overview").count() == 1
    assert nav.locator("a", has_text="Import").count() == 0
    assert nav.locator("a", has_text="API keys").count() == 0
    response = page.goto(f"{live_server.url}/imports/")
    assert response is not None and response.status == 403
    response = page.goto(f"{live_server.url}/settings/api-keys")
    assert response is not None and response.status == 403


def test_a_user_cannot_open_another_workspaces_import(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    other_workspace: Workspace,
    make_user: Any,
    login: Login,
) -> None:
    theirs = ImportJob.objects.create(
        workspace=other_workspace, kind=ImportKind.INTERACTIONS, file_name="globex.csv",
        path="/nonexistent/upload.csv", status=ImportStatus.DONE, rows=1, accepted=1,
    )  # fmt: skip
    ours = ImportJob.objects.create(
        workspace=workspace, kind=ImportKind.INTERACTIONS, file_name="acme.csv",
        path="/nonexistent/upload.csv", status=ImportStatus.DONE,
    )  # fmt: skip
    login(page, make_user(workspace, Role.ADMIN))
    response = page.goto(f"{live_server.url}/imports/{ours.pk}")
    assert response is not None and response.status == 200
    response = page.goto(f"{live_server.url}/imports/{theirs.pk}")
    assert response is not None and response.status == 404
    assert "globex.csv" not in page.content()
    response = page.goto(f"{live_server.url}/imports/{theirs.pk}/rejects.csv")
    assert response is not None and response.status == 404
    page.goto(f"{live_server.url}/imports/")
    assert "globex.csv" not in page.content()
