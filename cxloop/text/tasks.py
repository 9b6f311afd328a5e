"""Celery tasks: code a response's comment on arrival, recode after a model change, the
heartbeat, scheduled retraining."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="text.code_response", ignore_result=True, acks_late=True)
def code_response(response_id: int) -> int | None:
    from cxloop.surveys.models import Response

    response = Response.objects.filter(pk=response_id).first()
    if response is None:
        return None
    comment = services.sync_response(response)
    if comment is None:
        return None
    services.analyse([comment.pk])
    return comment.pk


@shared_task(name="text.recode", ignore_result=True, acks_late=True)
def recode_workspace(workspace_id: int) -> int:
    """Code a batch of the workspace's waiting comments, then queue the next batch: a long
    recode survives restarts (what is waiting is in the database) and shares the workers."""
    done = services.analyse_pending(workspace_id, limit=services.BATCH * 10)
    if done and services.pending(workspace_id, limit=1):
        from django.conf import settings

        if not settings.CELERY_TASK_ALWAYS_EAGER:
            recode_workspace.delay(workspace_id)
        else:  # in-process: go on until done
            while services.pending(workspace_id, limit=1):
                done += services.analyse_pending(workspace_id, limit=services.BATCH * 10)
    return done


@shared_task(name="text.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return services.tick()


@shared_task(name="text.retrain", ignore_result=True)
def retrain() -> int:
    return len(services.retrain_due())
