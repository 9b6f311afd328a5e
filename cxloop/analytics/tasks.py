"""Celery task: keep the NPS rollups current (beat entry ``analytics-refresh``)."""

from __future__ import annotations

from celery import shared_task

from . import rollups


@shared_task(name="analytics.refresh", ignore_result=True)
def refresh() -> dict[str, int]:
    return rollups.tick()


from . import tasks_digest  # noqa: E402, F401  (registers analytics.weekly_digest)
