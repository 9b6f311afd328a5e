"""Importing a CSV file in batches, with a report of every rejected row.

The same services as the API ingest each batch, so a row is judged the same way whichever door
it comes through, and re-running a file changes nothing (duplicates; unchanged customers).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from django.db import connection, connections

from cxloop.accounts.models import Workspace
from cxloop.core.validation import BatchResult
from cxloop.customers.services import upsert_customers
from cxloop.interactions.services import (
    prepare_interactions,
    with_copy_payload,
    write_interactions,
)

from .reader import CsvError, CsvFile, map_columns, open_csv, row_to_item

BATCH_ROWS = 5000
SAMPLE_ERRORS = 200

KINDS = ("customers", "interactions")


class _Writer:
    """Runs each batch's database half, on a second connection when that pays.

    On PostgreSQL, outside a transaction, interaction batch N is written by a worker thread
    while the main thread reads and checks batch N+1: the database and Python work at the same
    time instead of taking turns. Everywhere else (SQLite, inside a caller's transaction, where a
    second connection would not see its uncommitted rows) batches are written in line.
    """

    def __init__(self, on_done: Callable[[BatchResult], None], *, parallel: bool) -> None:
        self.on_done = on_done
        self.executor = ThreadPoolExecutor(1, "cxloop-import") if parallel else None
        self.pending: Future[BatchResult] | None = None

    def submit(self, work: Callable[[], BatchResult]) -> None:
        if self.executor is None:
            self.on_done(work())
            return
        self.drain()
        self.pending = self.executor.submit(work)

    def drain(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.on_done(pending.result())

    def close(self, *, report: bool = True) -> None:
        """Wait for the last batch (reporting it unless the import failed); free the thread."""
        executor, self.executor = self.executor, None
        if executor is None:
            return
        try:
            if report:
                self.drain()
            elif self.pending is not None:
                wait([self.pending])
        finally:
            executor.submit(connections.close_all).result()
            executor.shutdown()


@dataclass
class ImportReport:
    kind: str
    encoding: str = ""
    delimiter: str = ""
    rows: int = 0
    result: BatchResult = field(default_factory=BatchResult)
    sample_errors: list[dict[str, Any]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rejects_path: Path | None = None

    def summary(self) -> str:
        r = self.result
        if self.kind == "customers":
            parts = f"{r.created} created, {r.updated} updated, {r.unchanged} unchanged"
        else:
            parts = f"{r.accepted} accepted, {r.duplicates} duplicates"
        return f"{self.rows} rows: {parts}, {r.rejected} rejected"


def _format_errors(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in errors.items())


class _Rejects:
    """Rejected rows go to a CSV next to the input: line, reasons, then the row as it was."""

    def __init__(self, path: Path, header: list[str], delimiter: str) -> None:
        self.path = path
        self.header = header
        self.delimiter = delimiter
        self.file: Any = None
        self.writer: Any = None

    def write(self, line: int, errors: dict[str, list[str]], row: list[str]) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # surrogateescape writes undecodable bytes back as they were in the input
            self.file = self.path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
            self.writer = csv.writer(self.file, delimiter=self.delimiter)
            self.writer.writerow(["line", "errors", *self.header])
        self.writer.writerow([line, _format_errors(errors), *row])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def import_csv(
    workspace: Workspace,
    kind: str,
    path: Path,
    *,
    mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    source: str | None = None,
    rejects_path: Path | None = None,
    progress: Callable[[CsvFile, ImportReport], None] | None = None,
) -> ImportReport:
    """Import ``path``; raises ``CsvError`` when the file as a whole cannot be read."""
    if kind not in KINDS:
        raise CsvError(f"unknown import kind {kind!r}; choose customers or interactions")
    csv_file = open_csv(path, encoding, delimiter)
    report = ImportReport(kind=kind, encoding=csv_file.encoding, delimiter=csv_file.delimiter)
    rejects = _Rejects(
        rejects_path or path.with_name(path.stem + ".rejects.csv"),
        csv_file.header,
        csv_file.delimiter,
    )
    writer: _Writer | None = None
    try:
        cols = map_columns(kind, csv_file.header, mapping)
        if kind == "interactions" and "source" not in cols.fields.values() and not source:
            raise CsvError("the file has no source column: give the source (e.g. --source crm)")
        report.ignored_columns = cols.ignored
        defaults = {"source": source} if source and kind == "interactions" else {}
        width = len(csv_file.header)
        # (line, cells, item to ingest or the row's own errors), in file order
        batch: list[tuple[int, list[str], dict[str, Any]]] = []

        def done(result: BatchResult) -> None:
            report.result.add(result)
            if progress:
                progress(csv_file, report)

        parallel = (
            kind == "interactions"
            and connection.vendor == "postgresql"
            and not connection.in_atomic_block
        )
        writer = _Writer(done, parallel=parallel)

        def flush() -> None:
            wanted = [
                (pos, item) for pos, (_, _, item) in enumerate(batch) if "__errors" not in item
            ]
            items = [item for _, item in wanted]
            prepared = None
            if kind == "interactions":
                prepared = with_copy_payload(workspace, prepare_interactions(workspace, items))
                result = prepared.result
            else:
                result = upsert_customers(workspace, items)
            # Rejections are known before writing: report them now, in line order.
            errors = {wanted[e["index"]][0]: e["errors"] for e in result.errors}
            result.errors = []
            result.rejected = 0
            for pos, (line, row, item) in enumerate(batch):
                reasons = item.get("__errors") or errors.get(pos)
                if reasons:
                    _reject(report, rejects, line, reasons, row)
            batch.clear()
            if prepared is None:
                done(result)
            else:
                writer.submit(partial(write_interactions, workspace, prepared))

        for line, row in csv_file.rows():
            report.rows += 1
            if len(row) > width:
                item = {
                    "__errors": {"__all__": [f"the row has {len(row)} cells, the header {width}"]}
                }
            elif not _decodable(row):
                item = {"__errors": {"__all__": [f"the row is not valid {csv_file.encoding}"]}}
            else:
                item = row_to_item(cols, row, defaults)
            batch.append((line, row, item))
            if len(batch) >= BATCH_ROWS:
                flush()
        if batch:
            flush()
        writer.close()
        if progress:
            progress(csv_file, report)
    finally:
        if writer is not None:
            writer.close(report=False)
        csv_file.close()
        rejects.close()
    report.rejects_path = rejects.path if rejects.writer is not None else None
    return report


def _decodable(row: list[str]) -> bool:
    """False when the row holds bytes the file's encoding could not decode."""
    try:
        "".join(row).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject(
    report: ImportReport, rejects: _Rejects, line: int, errors: dict[str, list[str]], row: list[str]
) -> None:
    report.result.rejected += 1
    rejects.write(line, errors, row)
    if len(report.sample_errors) < SAMPLE_ERRORS:
        report.sample_errors.append({"line": line, "errors": errors})
