"""Celery task: the weekly NPS digest (beat entry ``analytics-weekly-digest``, hourly; each
workspace's go out from Monday 07:00 in its own time zone, ``digest.is_due``). Imported by ``tasks.py`` so that autodiscovery registers it. Sending twice in a week
sends nothing the second time (``digest.py``), so a retried or duplicated run is harmless."""

from __future__ import annotations

from celery import shared_task

from . import digest


@shared_task(name="analytics.weekly_digest", ignore_result=True)
def weekly_digest() -> dict[str, int]:
    return digest.send_all(via="task", scheduled=True).counts()
