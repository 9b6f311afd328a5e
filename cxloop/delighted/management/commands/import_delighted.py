"""``cxloop import_delighted people|responses FILE --workspace SLUG [--survey CODE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cxloop.accounts.services import audit
from cxloop.core.commands import get_workspace
from cxloop.delighted.importing import import_delighted
from cxloop.imports.cli import report_lines, run_with_progress


class Command(BaseCommand):
    help = (
        "Import a Delighted CSV export: people (customers and their properties) or responses "
        "(with their person). Re-running a file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=["people", "responses"])
        parser.add_argument("file", type=Path)
        parser.add_argument("--workspace", required=True)
        parser.add_argument(
            "--survey",
            help="Responses: the survey they answered (default: the one the Delighted API feeds).",
        )
        parser.add_argument("--encoding", choices=["utf-8", "cp1251"], help="Default: detected.")
        parser.add_argument("--rejects", type=Path, help="Default: FILE.rejects.csv")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = get_workspace(options["workspace"])
        path: Path = options["file"]
        report = run_with_progress(
            path, f"import Delighted {options['kind']}", disable=options["no_progress"],
            run=lambda progress: import_delighted(
                workspace, options["kind"], path, survey_code=options["survey"],
                encoding=options["encoding"], rejects_path=options["rejects"],
                progress=progress,
            ),
        )  # fmt: skip
        audit(workspace, "import.completed", via="cli",
              changes={"kind": f"delighted-{options['kind']}", "file": path.name,
                       "rows": report.rows, "rejected": report.result.rejected})  # fmt: skip
        for line in report_lines(report):
            self.stdout.write(line)
