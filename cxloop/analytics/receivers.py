"""Mark the rollup days a saved or deleted response touches (see ``rollups.py``).

``post_init`` remembers the survey and the answer time a response was loaded with, so that a
response moved to another day or survey marks its old day too. Marks are written in the same
transaction as the change."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from cxloop.surveys.models import Response

from . import rollups

_ORIGINAL = "_analytics_original"


@receiver(post_init, sender=Response, dispatch_uid="analytics.remember_response")
def remember(sender: Any, instance: Response, **kwargs: Any) -> None:
    # __dict__, not the attribute: a deferred field must not cost a query here.
    values = instance.__dict__
    setattr(instance, _ORIGINAL, (values.get("survey_id"), values.get("answered_at")))


class _Old:
    def __init__(self, workspace_id: int, survey_id: int, answered_at: Any) -> None:
        self.workspace_id = workspace_id
        self.survey_id = survey_id
        self.answered_at = answered_at


@receiver(post_save, sender=Response, dispatch_uid="analytics.mark_saved_response")
def on_saved(sender: Any, instance: Response, created: bool, **kwargs: Any) -> None:
    rows: list[Any] = [instance]
    survey_id, answered_at = getattr(instance, _ORIGINAL, (None, None))
    if not created and survey_id is not None and answered_at is not None:
        rows.append(_Old(instance.workspace_id, survey_id, answered_at))
    rollups.mark_responses(rows)
    remember(sender, instance)


@receiver(post_delete, sender=Response, dispatch_uid="analytics.mark_deleted_response")
def on_deleted(sender: Any, instance: Response, **kwargs: Any) -> None:
    rollups.mark_responses([instance])
