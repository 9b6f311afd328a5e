"""``cxloop import_delighted people|responses FILE --workspace SLUG [--survey CODE]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from cxloop.accounts.services import audit
from cxloop.core.commands import get_workspace
from cxloop.delighted.importing import import_delighted, report_lines
from cxloop.imports.reader import CsvError, CsvFile
from cxloop.imports.services import ImportReport


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
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        bar = tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True,
            desc=f"import Delighted {options['kind']}",
            disable=options["no_progress"] or None, file=sys.stderr, mininterval=0.5,
        )  # fmt: skip

        def progress(csv_file: CsvFile, report: ImportReport) -> None:
            bar.update(csv_file.bytes_read - bar.n)
            bar.set_postfix(rows=report.rows, rejected=report.result.rejected, refresh=False)

        try:
            report = import_delighted(
                workspace, options["kind"], path, survey_code=options["survey"],
                encoding=options["encoding"], rejects_path=options["rejects"],
                progress=progress,
            )  # fmt: skip
        except CsvError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        audit(workspace, "import.completed", via="cli",
              changes={"kind": f"delighted-{options['kind']}", "file": path.name,
                       "rows": report.rows, "rejected": report.result.rejected})  # fmt: skip
        for line in report_lines(report):
            self.stdout.write(line)
