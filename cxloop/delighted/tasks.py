"""The Delighted compatibility layer's share of the heartbeat: Autopilot and webhooks."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from cxloop.core import clock

from . import autopilot, webhooks


def heartbeat(now: dt.datetime | None = None) -> dict[str, int]:
    """Invite the Autopilot members who are due, then post the webhooks that are due.

    Safe to run from several processes at once: both halves claim their rows with a
    conditional UPDATE. Call it from the embedded ``cxloop dispatcher`` loop, or let Celery
    beat run ``delighted.tick``.
    """
    now = now or clock.now()
    stats = {"autopilot": autopilot.schedule_due(now)}
    for key, value in webhooks.deliver_due(now).items():
        stats[f"webhooks_{key}"] = value
    return stats


@shared_task(name="delighted.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return heartbeat()
