"""The shared kernel: every domain row belongs to a workspace."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.http import Http404

M = TypeVar("M", bound="WorkspaceScoped")


class WorkspaceScoped(models.Model):
    """Base for every domain row. Fetch through ``get_for_workspace`` or ``for_workspace``."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True

    @classmethod
    def for_workspace(cls: type[M], workspace: Any) -> models.QuerySet[M]:
        return cls._default_manager.filter(workspace=workspace)

    @classmethod
    def get_for_workspace(cls: type[M], workspace: Any, **lookup: Any) -> M:
        """The row of this workspace matching ``lookup``; 404 if it is missing or elsewhere."""
        try:
            return cls._default_manager.get(workspace=workspace, **lookup)
        except cls.DoesNotExist:
            raise Http404(f"No {cls._meta.verbose_name} matches the given query.") from None


class Timestamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True
