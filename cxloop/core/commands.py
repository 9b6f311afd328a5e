"""Helpers for management commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from cxloop.accounts.models import Workspace


def get_workspace(slug: str) -> Workspace:
    try:
        return Workspace.objects.get(slug=slug)
    except Workspace.DoesNotExist:
        raise CommandError(
            f"no workspace with slug {slug!r} (create it: cxloop workspace create)"
        ) from None
