"""The demo's text analytics: every comment collected and coded, and the first model versions
trained from the demo's own data (sentiment from the scores, reasons from the call-backs), as a
workspace that has run cxloop for a while would have them (docs/text-analytics.md)."""

from __future__ import annotations

import logging

from cxloop.accounts.models import Workspace
from cxloop.text import services
from cxloop.text.ml import TrainingError
from cxloop.text.models import Comment, Task

log = logging.getLogger(__name__)


def build(workspace: Workspace) -> dict[str, int]:
    while services.sweep(workspace.pk) >= services.SWEEP_BATCH:
        pass  # a full batch: more to collect
    counts = {"comments": Comment.objects.filter(workspace=workspace).count(), "text_models": 0}
    for task in (Task.SENTIMENT, Task.REASONS):
        try:
            services.train(workspace, task)
            counts["text_models"] += 1
        except TrainingError as exc:  # a tiny demo: the rules code it
            log.info("demo: no %s model (%s)", task, exc)
    while services.analyse_pending(workspace.pk):
        pass
    return counts
