"""Celery tasks: the dispatcher's heartbeat and the senders (queue ``delivery``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from . import dispatch


def enqueue(ids: list[int], reminder: bool) -> Any:
    return send_invitations.apply_async((ids, reminder), queue="delivery")


@shared_task(name="surveys.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return dispatch.tick(enqueue, interval=settings.DISPATCH_INTERVAL)


@shared_task(name="surveys.send", ignore_result=True, acks_late=True)
def send_invitations(ids: list[int], reminder: bool = False) -> dict[str, int]:
    return dispatch.send(ids, reminder=reminder)


@shared_task(name="surveys.flag_silent_accounts", ignore_result=True)
def flag_silent_accounts() -> int:
    from cxloop.accounts.models import Workspace

    from .funnel import flag_silent_accounts as flag

    return sum(flag(workspace) for workspace in Workspace.objects.all())
