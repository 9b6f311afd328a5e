"""Mark the rollup days a saved or deleted response touches (see ``rollups.py``).

``post_init`` remembers the survey and the answer time a response was loaded with, so that a
response moved to another day or survey marks its old day too. Marks are written in the same
transaction as the change.

The reason cells (``reasons.py``) also depend on a case's reason codes and a comment's codes:
changing them marks the response's day too. ``CommentReason`` rows bulk-created (the model
coder) send no signal: the heartbeat's ``reasons.reconcile`` marks those days."""

from __future__ import annotations

import threading
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save
from django.dispatch import receiver

from cxloop.cases.models import Case
from cxloop.surveys.models import Response
from cxloop.text.models import CommentReason

from . import reasons, rollups
from .models import NpsThresholds

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


@receiver(m2m_changed, sender=Case.reasons.through, dispatch_uid="analytics.mark_case_reasons")
def on_case_reasons(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear", "pre_clear"):
        return
    if not reverse:
        if action != "pre_clear":
            reasons.mark_response_ids([instance.response_id])
        return
    # reason_code.cases.add(...): the cases in pk_set (all of the code's on clear).
    cases = Case.objects.filter(response__isnull=False)
    if action == "pre_clear" or pk_set is None:
        cases = cases.filter(reasons=instance)
    elif action == "post_clear":
        return
    else:
        cases = cases.filter(pk__in=pk_set)
    reasons.mark_response_ids(cases.values_list("response_id", flat=True))


@receiver(post_delete, sender=Case, dispatch_uid="analytics.mark_deleted_case")
def on_case_deleted(sender: Any, instance: Case, **kwargs: Any) -> None:
    # A deleted case takes its reasons away from its response. (A case is never moved to
    # another response; saving a case otherwise does not change what the response cites.)
    if instance.response_id is not None:
        reasons.mark_response_ids([instance.response_id])


_local = threading.local()


def _pending_comments() -> set[int]:
    pending: set[int] | None = getattr(_local, "comments", None)
    if pending is None:
        pending = _local.comments = set()
    return pending


def _flush_comments() -> None:
    pending = _pending_comments()
    if pending:
        ids = list(pending)
        pending.clear()
        reasons.mark_comments(ids)


@receiver(post_save, sender=CommentReason, dispatch_uid="analytics.mark_saved_comment_code")
@receiver(post_delete, sender=CommentReason, dispatch_uid="analytics.mark_deleted_comment_code")
def on_comment_code(sender: Any, instance: CommentReason, **kwargs: Any) -> None:
    # Collected and marked once after the transaction commits (at once outside one): a
    # queryset delete sends this for every row, and marking costs queries. (A rolled-back
    # transaction leaves its ids to the next flush: days marked needlessly, never missed.)
    _pending_comments().add(instance.comment_id)
    transaction.on_commit(_flush_comments)


@receiver(post_save, sender=NpsThresholds, dispatch_uid="analytics.mark_thresholds_saved")
@receiver(post_delete, sender=NpsThresholds, dispatch_uid="analytics.mark_thresholds_deleted")
def on_thresholds(sender: Any, instance: NpsThresholds, **kwargs: Any) -> None:
    # The reason cells of the other kinds keep tokens for the detractor scores only.
    reasons.mark_survey(instance.survey_id)
