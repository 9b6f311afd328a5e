"""A saved response opens its case at once: on a worker when Celery runs, else in-process
after the commit (the respondent's page has already been answered by then)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from cxloop.surveys.models import Response
from cxloop.surveys.signals import response_saved

log = logging.getLogger(__name__)


@receiver(response_saved, sender=Response, dispatch_uid="cases.open_on_response")
def on_response_saved(sender: Any, response: Response, created: bool, **kwargs: Any) -> None:
    if response.is_test:
        return
    from .tasks import open_case

    # A changed answer may match a rule the first did not (a comment added later); the case
    # is still opened once per response.
    try:
        open_case.delay(response.pk)
    except Exception:
        # The heartbeat's sweep opens it later; the respondent must not see an error.
        log.exception("could not open the case of response %s now", response.pk)
