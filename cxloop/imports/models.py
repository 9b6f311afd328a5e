"""A CSV import and what became of every row."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cxloop.core.models import WorkspaceScoped


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    INTERACTIONS = "interactions", _("Interactions")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ImportJob(WorkspaceScoped):
    kind = models.CharField(max_length=20, choices=ImportKind.choices)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default="queued")
    file_name = models.CharField(max_length=255)
    path = models.CharField(max_length=500, help_text=_("Where the uploaded file is kept."))
    mapping: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    encoding = models.CharField(max_length=20, blank=True)
    delimiter = models.CharField(max_length=2, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    rows = models.IntegerField(default=0)
    accepted = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    # The first rejected rows, for the report page; all of them are in the rejects file.
    sample_errors: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    ignored_columns: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    rejects_path = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each batch; a running job whose heartbeat stops lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.file_name}"

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.size_bytes:
            return 0
        return min(99, int(100 * self.processed_bytes / self.size_bytes))
