"""``cxloop import customers|interactions FILE --workspace SLUG``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.services import audit
from cxloop.core.commands import get_workspace
from cxloop.imports.cli import report_lines, run_with_progress
from cxloop.imports.services import import_csv


def parse_mapping(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        header, sep, target = item.partition("=")
        if not sep or not header.strip() or not target.strip():
            raise CommandError(f"--map takes 'Header in file=field', got {item!r}")
        mapping[header.strip()] = target.strip()
    return mapping


class Command(BaseCommand):
    help = "Import customers or interactions from a CSV file (UTF-8 or Windows-1251, , or ;)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=["customers", "interactions"])
        parser.add_argument("file", type=Path)
        parser.add_argument("--workspace", required=True)
        parser.add_argument(
            "--map", action="append", default=[], metavar="HEADER=FIELD",
            help="Map a column to a field (or to attributes.NAME, consent.CHANNEL, or - to skip).",
        )  # fmt: skip
        parser.add_argument("--encoding", choices=["utf-8", "cp1251"], help="Default: detected.")
        parser.add_argument("--delimiter", help="Default: detected (, ; or tab).")
        parser.add_argument("--source", help="Interactions: the source when the file has none.")
        parser.add_argument("--rejects", type=Path, help="Default: FILE.rejects.csv")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = get_workspace(options["workspace"])
        path: Path = options["file"]
        delimiter = options["delimiter"]
        if delimiter in ("\\t", "tab"):
            delimiter = "\t"
        mapping = parse_mapping(options["map"])
        report = run_with_progress(
            path, f"import {options['kind']}", disable=options["no_progress"],
            run=lambda progress: import_csv(
                workspace, options["kind"], path, mapping=mapping, encoding=options["encoding"],
                delimiter=delimiter, source=options["source"], rejects_path=options["rejects"],
                progress=progress,
            ),
        )  # fmt: skip
        audit(workspace, "import.completed", via="cli",
              changes={"kind": options["kind"], "file": path.name, "rows": report.rows,
                       "rejected": report.result.rejected})  # fmt: skip
        for line in report_lines(report):
            self.stdout.write(line)
