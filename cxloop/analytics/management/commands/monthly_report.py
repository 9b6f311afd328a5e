"""``cxloop monthly_report --workspace SLUG [--month YYYY-MM] --output FILE.pdf [--user NAME]``.

Writes the monthly NPS report (docs/monthly-report.md) of the company, or of one member's scope
with ``--user`` (a supervisor: their teams), in the workspace's default language. The month
defaults to the previous one in the workspace's time zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.models import Membership, Workspace
from cxloop.analytics import report


class Command(BaseCommand):
    help = "Write a workspace's monthly NPS report as a PDF."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="The workspace's slug.")
        parser.add_argument(
            "--month", help="YYYY-MM; default: the previous month in the workspace's time zone."
        )
        parser.add_argument("--output", required=True, help="The PDF file to write.")
        parser.add_argument(
            "--user", help="A member's username: their scope (default: the whole company)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['workspace']!r}")
        try:
            month = (
                report.parse_month(options["month"])
                if options["month"]
                else report.default_month(workspace)
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        membership = None
        if options["user"]:
            membership = (
                Membership.objects.select_related("user", "workspace")
                .filter(workspace=workspace, user__username=options["user"])
                .first()
            )
            if membership is None:
                raise CommandError(f"{options['user']!r} is not a member of {workspace.slug}")
            try:
                report.scope_of(membership)
            except LookupError as exc:
                raise CommandError(f"no report for {options['user']!r}: {exc}") from exc
        built, pdf = report.report_pdf(workspace, month, membership)
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(pdf)
        overall = built.overall
        self.stdout.write(
            f"wrote {output} ({len(pdf)} bytes): {workspace.slug} {month:%Y-%m}, {built.scope}, "
            f"NPS {'-' if overall['nps'] is None else overall['nps']} n {overall['n']}"
        )
