"""A saved response's comment is coded at once: on a worker when Celery runs, else in-process
after the commit (the respondent's page has already been answered by then)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from cxloop.surveys.models import Response
from cxloop.surveys.signals import response_saved

log = logging.getLogger(__name__)


@receiver(response_saved, sender=Response, dispatch_uid="text.code_on_response")
def on_response_saved(sender: Any, response: Response, created: bool, **kwargs: Any) -> None:
    if response.is_test or not (response.comment or "").strip():
        if not created:  # a comment removed later: its coding goes with it
            from .models import Comment

            Comment.objects.filter(response=response).delete()
        return
    from .tasks import code_response

    try:
        code_response.delay(response.pk)
    except Exception:
        # The heartbeat's sweep codes it later; the respondent must not see an error.
        log.exception("could not code the comment of response %s now", response.pk)
