"""Fixtures for the browser tests: Debian's Chromium driven by Playwright against a live server.

The browser is never downloaded: Playwright launches ``/usr/bin/chromium``. Where it is missing
the browser tests are skipped with the reason, except under CI (``CI`` set), where a missing
browser is a failure rather than a silently thinner test run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"  # the password of cxloop/conftest.py's make_user


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests may not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the tests of a module.

    Module scope, not session scope: while Playwright's sync API is started, an asyncio loop
    runs in this thread, which Django's ORM refuses (``DJANGO_ALLOW_ASYNC_UNSAFE`` lifts that
    for the browser tests only) and which would break other tests that start a loop.
    """
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser, transactional_db: Any, settings: Any, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context (no cookies) in English, its uploads kept in ``tmp_path``."""
    settings.IMPORT_DIR = tmp_path / "imports"
    # Users made in the test log in through the form; a slow hash only slows the tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def login(live_server: Any) -> Callable[..., None]:
    """Log ``user`` in through the login form; the browser ends on the page after it."""

    def do(page: Page, user: Any, password: str = PASSWORD) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", password)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

    return do
