"""The heartbeat posts what is due: Celery beat's ``webhooks.tick`` and the embedded
``cxloop dispatcher`` loop."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from cxloop.accounts.models import Workspace
from cxloop.celery import app
from cxloop.webhooks import events, tasks

from .helpers import Receiver, hook

pytestmark = pytest.mark.django_db


def test_beat_runs_the_tick_every_dispatch_interval() -> None:
    entry: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE["webhooks-tick"]
    assert entry["task"] == "webhooks.tick" == tasks.tick.name
    assert entry["schedule"] == settings.DISPATCH_INTERVAL
    assert entry["options"]["expires"] == max(1.0, settings.DISPATCH_INTERVAL - 0.5)
    app.loader.import_default_modules()
    assert "webhooks.tick" in app.tasks


def test_the_task_posts_what_is_due(workspace: Workspace, receiver: Receiver) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_CLOSED, {"id": 5})

    tasks.tick.delay()

    assert [b["type"] for b in receiver.bodies()] == ["case.closed"]


def test_the_dispatcher_loop_posts_what_is_due(
    workspace: Workspace, receiver: Receiver, caplog: Any
) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.PROBLEM_UPDATED, {"code": "P-7"})
    caplog.set_level("INFO", logger="cxloop.surveys.dispatcher")

    call_command("dispatcher", "--once")

    assert [b["type"] for b in receiver.bodies()] == ["problem.updated"]
    assert "hooks_delivered=1" in caplog.text
