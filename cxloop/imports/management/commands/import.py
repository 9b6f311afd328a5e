"""``cxloop import customers|interactions FILE --workspace SLUG``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from cxloop.accounts.services import audit
from cxloop.core.commands import get_workspace
from cxloop.imports.reader import CsvError, CsvFile
from cxloop.imports.services import ImportReport, import_csv


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
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        delimiter = options["delimiter"]
        if delimiter in ("\\t", "tab"):
            delimiter = "\t"
        bar = tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True, desc=f"import {options['kind']}",
            disable=options["no_progress"] or None, file=sys.stderr, mininterval=0.5,
        )  # fmt: skip

        def progress(csv_file: CsvFile, report: ImportReport) -> None:
            bar.update(csv_file.bytes_read - bar.n)
            bar.set_postfix(rows=report.rows, rejected=report.result.rejected, refresh=False)

        try:
            report = import_csv(
                workspace, options["kind"], path,
                mapping=parse_mapping(options["map"]), encoding=options["encoding"],
                delimiter=delimiter, source=options["source"], rejects_path=options["rejects"],
                progress=progress,
            )  # fmt: skip
        except CsvError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        audit(workspace, "import.completed", via="cli",
              changes={"kind": options["kind"], "file": path.name, "rows": report.rows,
                       "rejected": report.result.rejected})  # fmt: skip
        if report.ignored_columns:
            self.stdout.write(f"Ignored columns: {', '.join(report.ignored_columns)}")
        self.stdout.write(f"{report.summary()} (encoding {report.encoding}, "
                          f"delimiter {report.delimiter!r})")  # fmt: skip
        for err in report.sample_errors[:20]:
            reasons = "; ".join(f"{k}: {', '.join(v)}" for k, v in err["errors"].items())
            self.stdout.write(f"  line {err['line']}: {reasons}")
        if report.result.rejected > 20:
            self.stdout.write(f"  … and {report.result.rejected - 20} more")
        if report.rejects_path:
            self.stdout.write(f"Rejected rows written to {report.rejects_path}")
