"""``cxloop analytics_rebuild --workspace SLUG``: recompute a workspace's NPS rollups and
reason cells (the pain map's and key drivers')."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.models import Workspace
from cxloop.analytics import rollups


class Command(BaseCommand):
    help = (
        "Recompute the NPS rollup cells and the reason cells of a workspace (or all) from the "
        "raw responses."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="The workspace's slug; all when left out.")

    def handle(self, *args: Any, **options: Any) -> None:
        qs = Workspace.objects.order_by("pk")
        if options["workspace"]:
            qs = qs.filter(slug=options["workspace"])
            if not qs.exists():
                raise CommandError(f"no workspace {options['workspace']!r}")
        for workspace in qs:
            started = time.monotonic()
            counts = rollups.rebuild(workspace)
            self.stdout.write(
                f"{workspace.slug}: {counts['daily']} daily, {counts['hourly']} hourly and "
                f"{counts['reasons']} reason cells in {time.monotonic() - started:.1f} s"
            )
