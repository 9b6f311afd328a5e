"""Fixtures for the Delighted-compatible API: a workspace with an ``after-visit`` survey and a
key, and the *official* ``delighted`` client pointed at a live test server.

The point of the compatibility API is that Delighted's own clients work unchanged, so the
tests drive it with the real package from PyPI over real HTTP rather than with Django's test
client. The live server runs in this process, so ``settings`` overrides (``SITE_URL`` for the
absolute ``Link`` header) and cache state are shared with it.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from django.core.cache import cache

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import create_api_key, create_workspace
from cxloop.surveys.tests.factories import make_org, make_survey

with warnings.catch_warnings():
    # The package announces Delighted's sunset with a FutureWarning on import.
    warnings.simplefilter("ignore", FutureWarning)
    import delighted


@pytest.fixture
def delighted_workspace(transactional_db: Any) -> tuple[Workspace, str]:
    """(workspace, raw API key with ingest+read) with the demo's ``after-visit`` survey.

    ``transactional_db`` because the live server's thread must see the rows: a test wrapped
    in a transaction would hide them from it.
    """
    cache.clear()  # rate-limit counters are keyed by key pk, which a flushed DB may reuse
    workspace = create_workspace("delighted", "Delighted Migrants", via="cli")
    make_org(workspace)
    make_survey(workspace, "after-visit")
    _, raw = create_api_key(workspace, "delighted", ["ingest", "read"], via="cli")
    return workspace, raw


@pytest.fixture
def delighted_client(
    delighted_workspace: tuple[Workspace, str], live_server: Any, settings: Any
) -> delighted.Client:
    """The official client for ``delighted_workspace``, as a migrating customer configures it.

    ``SITE_URL`` follows the live server so the ``Link`` pagination URLs point back at it.
    """
    settings.SITE_URL = live_server.url
    _, raw = delighted_workspace
    return delighted.Client(api_key=raw, api_base_url=live_server.url + "/delighted/v1/")
