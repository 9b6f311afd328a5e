"""Celery tasks: open a response's case, and the closed loop's heartbeat."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="cases.open", ignore_result=True, acks_late=True)
def open_case(response_id: int) -> int | None:
    case = services.open_for_response(response_id)
    return case.pk if case is not None else None


@shared_task(name="cases.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return services.tick()
