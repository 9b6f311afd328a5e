"""What the CSV import commands share: a progress bar over the file, and the row report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from tqdm import tqdm

from .reader import CsvError, CsvFile
from .services import ImportReport

Progress = Callable[[CsvFile, ImportReport], None]


def run_with_progress(
    path: Path, desc: str, *, disable: bool, run: Callable[[Progress], ImportReport]
) -> ImportReport:
    """``run(progress)`` with a tqdm bar over the file's bytes on stderr; a file that cannot be
    read as a whole becomes a CommandError."""
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    bar: Any = tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, desc=desc,
        disable=disable or None, file=sys.stderr, mininterval=0.5,
    )  # fmt: skip

    def progress(csv_file: CsvFile, report: ImportReport) -> None:
        bar.update(csv_file.bytes_read - bar.n)
        bar.set_postfix(rows=report.rows, rejected=report.result.rejected, refresh=False)

    try:
        return run(progress)
    except CsvError as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.close()


def report_lines(report: ImportReport, limit: int = 20) -> list[str]:
    """The report as the commands print it: a summary, then the first rejected lines."""
    lines = []
    if report.ignored_columns:
        lines.append(f"Ignored columns: {', '.join(report.ignored_columns)}")
    lines.append(f"{report.summary()} (encoding {report.encoding}, delimiter {report.delimiter!r})")
    for err in report.sample_errors[:limit]:
        reasons = "; ".join(f"{k}: {', '.join(v)}" for k, v in err["errors"].items())
        lines.append(f"  line {err['line']}: {reasons}")
    if report.result.rejected > limit:
        lines.append(f"  … and {report.result.rejected - limit} more")
    if report.rejects_path:
        lines.append(f"Rejected rows written to {report.rejects_path}")
    return lines
