"""``cxloop send_digest [--workspace SLUG] [--dry-run]``: send this week's NPS digests now.

Each reader gets one per ISO week whatever runs it (this command, the Celery beat entry):
a reader already sent this week is listed as such. ``--dry-run`` sends and records nothing and
prints who would get what.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.models import Workspace
from cxloop.analytics import digest


class Command(BaseCommand):
    help = "Send this week's NPS digest e-mails (once per reader and ISO week)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", help="The workspace's slug; all when left out.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print who would get what; send nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = Workspace.objects.order_by("pk")
        if options["workspace"]:
            workspaces = workspaces.filter(slug=options["workspace"])
            if not workspaces.exists():
                raise CommandError(f"no workspace {options['workspace']!r}")
        dry_run = bool(options["dry_run"])
        outcome = digest.send_all(workspaces=list(workspaces), dry_run=dry_run, via="cli")
        for item in outcome.would_send:
            overall = item.overall
            nps = "-" if overall["nps"] is None else overall["nps"]
            scope = (
                "company" if item.scope == "company" else f"teams ({len(item.employees)} employees)"
            )
            self.stdout.write(
                f"would send {item.week} to {item.recipient} "
                f"({item.membership.workspace.slug}, {item.membership.role}, {scope}): "
                f"NPS {nps} n {overall['n']}, {len(item.weak)} below average, "
                f"{item.open_cases} open cases, {item.breached} past SLA"
            )
        for address in outcome.sent:
            self.stdout.write(f"sent to {address}")
        for address in outcome.already:
            self.stdout.write(f"already sent this week: {address}")
        for line in outcome.skipped:
            self.stdout.write(f"skipped {line}")
        for address in outcome.failed:
            self.stderr.write(f"failed: {address}")
        if dry_run:
            self.stdout.write(f"dry run: {len(outcome.would_send)} digest(s) would be sent")
        else:
            self.stdout.write(f"{len(outcome.sent)} digest(s) sent")
        if outcome.failed:
            raise CommandError(f"{len(outcome.failed)} digest(s) failed")
