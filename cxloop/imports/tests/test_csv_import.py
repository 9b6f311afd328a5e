"""CSV import: encodings, delimiters, mapping, broken rows, reruns."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.customers.models import Customer
from cxloop.customers.services import upsert_customers
from cxloop.imports.reader import CsvError
from cxloop.imports.services import import_csv
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Region

pytestmark = pytest.mark.django_db

CUSTOMERS = [
    ["external_id", "name", "phone", "language", "segment", "consent_sms"],
    ["C1", "Иван Петров", "+37369111222", "ru", "mass", "да"],
    ["C2", "Ana-Maria Țurcanu", "+37379222333", "ro", "premium", "nu"],
    ["C3", "John Smith; Jr.", "+447911123456", "en", "premium", ""],
]


def write(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ";"), ("cp1251", ";"), ("cp1251", ",")],
)
def test_customers_import_in_each_encoding_and_delimiter(
    workspace: Workspace, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    rows = [r for r in CUSTOMERS if "Ț" not in r[1]] if encoding == "cp1251" else CUSTOMERS
    path = write(tmp_path / "c.csv", rows, encoding, delimiter)

    report = import_csv(workspace, "customers", path)

    assert report.result.rejected == 0
    assert report.result.created == len(rows) - 1
    assert report.delimiter == delimiter
    ivan = Customer.objects.get(external_id="C1")
    assert ivan.name == "Иван Петров"
    assert ivan.consent == {"sms": True}
    assert Customer.objects.get(external_id="C3").name == "John Smith; Jr."


def test_rerunning_the_same_file_changes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CUSTOMERS)
    import_csv(workspace, "customers", path)
    before = list(Customer.objects.order_by("pk").values())

    report = import_csv(workspace, "customers", path)

    assert (report.result.created, report.result.updated, report.result.unchanged) == (0, 0, 3)
    assert list(Customer.objects.order_by("pk").values()) == before


def _interactions(workspace: Workspace) -> None:
    upsert_customers(workspace, [{"external_id": "C1"}])
    region = Region.objects.create(workspace=workspace, code="R", name="R")
    Branch.objects.create(workspace=workspace, code="B01", name="Centru", region=region)


def test_broken_rows_are_reported_with_line_numbers_and_written_to_a_rejects_file(
    workspace: Workspace, tmp_path: Path
) -> None:
    _interactions(workspace)
    rows = [
        ["source", "external_id", "customer", "type", "occurred_at", "branch", "attr_note"],
        ["crm", "1", "C1", "call", "2026-10-01 10:00", "B01", "ok"],
        ["crm", "2", "C404", "call", "2026-10-01 10:00", "", ""],
        ["crm", "3", "C1", "call", "not a date", "", ""],
        ["crm", "4", "C1", "call", "2026-10-01 10:00", "B01", "multi\nline note"],
        ["crm", "5", "C1", "call", "2026-10-01 10:00", "B99", ""],
        ["crm", "6", "C1", "call", "2026-10-01 10:00", "", "", "extra cell"],
        ["crm", "7", "C1", "call", "2026-10-02 10:00", "", ""],
    ]
    path = write(tmp_path / "i.csv", rows)

    report = import_csv(workspace, "interactions", path)

    assert report.rows == 7
    assert report.result.accepted == 3
    assert report.result.rejected == 4
    lines = {e["line"]: e["errors"] for e in report.sample_errors}
    # the multi-line cell of line 5 pushes the rows after it one line further
    assert sorted(lines) == [3, 4, 7, 8]
    assert lines[3] == {"customer": ["unknown customer external_id 'C404'"]}
    assert "occurred_at" in lines[4]
    assert lines[7] == {"branch": ["unknown branch code 'B99'"]}
    assert "cells" in lines[8]["__all__"][0]
    with report.rejects_path.open(encoding="utf-8") as f:  # type: ignore[union-attr]
        rejects = list(csv.reader(f))
    assert rejects[0][:3] == ["line", "errors", "source"]
    assert [r[0] for r in rejects[1:]] == ["3", "4", "7", "8"]
    assert rejects[1][2:] == rows[2]
    assert Interaction.objects.get(external_id="4").attributes == {"note": "multi\nline note"}

    again = import_csv(workspace, "interactions", path)
    assert (again.result.accepted, again.result.duplicates, again.result.rejected) == (0, 3, 4)
    assert Interaction.objects.count() == 3


def test_headers_are_mapped_by_alias_and_by_explicit_mapping(
    workspace: Workspace, tmp_path: Path
) -> None:
    _interactions(workspace)
    rows = [
        ["Client ID", "Дата", "Event Type", "Номер", "Comment"],
        ["C1", "01.10.2026 10:00", "call", "A-1", "x"],
    ]
    path = write(tmp_path / "i.csv", rows, "cp1251", ";")

    report = import_csv(
        workspace, "interactions", path, source="erp",
        mapping={"Номер": "external_id", "Comment": "attributes.comment"},
    )  # fmt: skip

    assert report.result.accepted == 1, report.sample_errors
    stored = Interaction.objects.get()
    assert (stored.source, stored.external_id, stored.type) == ("erp", "A-1", "call")
    assert stored.attributes == {"comment": "x"}
    assert stored.occurred_at.isoformat() == "2026-10-01T10:00:00+00:00"


def test_a_mapping_that_skips_a_required_column_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    rows = [["source", "external_id", "customer", "type", "date"], ["crm", "1", "C1", "call", "x"]]
    path = write(tmp_path / "i.csv", rows)
    with pytest.raises(CsvError, match="no column for occurred_at"):
        import_csv(workspace, "interactions", path, mapping={"date": "-"})
    with pytest.raises(CsvError, match="unknown field 'colour'"):
        import_csv(workspace, "interactions", path, mapping={"date": "colour"})


def test_a_file_without_required_columns_is_refused_before_any_row(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = write(tmp_path / "i.csv", [["source", "external_id"], ["crm", "1"]])
    with pytest.raises(CsvError, match="customer, type, occurred_at"):
        import_csv(workspace, "interactions", path)


def test_a_row_in_another_encoding_is_rejected_on_its_own_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    body = "external_id,name\n" + "".join(f"C{i},Ana\n" for i in range(5000))
    path.write_bytes(body.encode() + "C9,Иван\nC5001,Ion\n".encode("cp1251"))

    report = import_csv(workspace, "customers", path, encoding="utf-8")

    assert report.result.created == 5001
    assert report.sample_errors == [
        {"line": 5002, "errors": {"__all__": ["the row is not valid utf-8"]}}
    ]
    # the rejects file keeps the row's bytes as they were
    assert "C9,Иван".encode("cp1251") in report.rejects_path.read_bytes()  # type: ignore[union-attr]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_refused(workspace: Workspace, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(CsvError, match="empty"):
        import_csv(workspace, "customers", path)


def test_the_cli_imports_prints_a_report_and_audits(
    workspace: Workspace, tmp_path: Path, capsys: Any
) -> None:
    rows = [*CUSTOMERS, ["C4", "Bad", "12", "ru", "", ""]]
    path = write(tmp_path / "c.csv", rows)

    call_command("import", "customers", str(path), "--workspace", "acme", "--no-progress")

    out = capsys.readouterr().out
    assert "4 rows: 3 created, 0 updated, 0 unchanged, 1 rejected" in out
    assert "line 5: phone" in out
    assert (tmp_path / "c.rejects.csv").exists()
    assert AuditLog.objects.filter(action="import.completed", workspace=workspace).exists()


def test_the_cli_names_a_missing_workspace_or_file(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CUSTOMERS)
    with pytest.raises(CommandError, match="no workspace with slug 'nope'"):
        call_command("import", "customers", str(path), "--workspace", "nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import", "customers", str(tmp_path / "x.csv"), "--workspace", "acme")
    with pytest.raises(CommandError, match="--map takes"):
        call_command("import", "customers", str(path), "--workspace", "acme", "--map", "oops")


@pytest.mark.django_db(transaction=True)
def test_a_large_file_outside_a_transaction_is_written_batch_by_batch(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """On PostgreSQL this takes the path that writes on a second connection while reading."""
    from django.db import connection

    from cxloop.accounts.services import create_workspace
    from cxloop.imports import services

    workspace = create_workspace("bulk", "Bulk", via="cli")
    upsert_customers(workspace, [{"external_id": f"C{i}"} for i in range(50)])
    rows = [["source", "external_id", "customer", "type", "occurred_at"]]
    for n in range(12_000):
        customer = "C404" if n % 2500 == 7 else f"C{n % 50}"
        rows.append(["crm", str(n), customer, "call", "2026-10-01T10:00:00Z"])
    rows.append(rows[1])  # the first row again, in the last batch: a duplicate
    path = write(tmp_path / "big.csv", rows)
    modes: list[bool] = []
    original = services._Writer.__init__

    def spy(self: Any, on_done: Any, *, parallel: bool) -> None:
        modes.append(parallel)
        original(self, on_done, parallel=parallel)

    monkeypatch.setattr(services._Writer, "__init__", spy)
    seen: list[int] = []

    report = import_csv(workspace, "interactions", path,
                        progress=lambda f, r: seen.append(r.result.accepted))  # fmt: skip

    assert modes == [connection.vendor == "postgresql"]
    bad_lines = [n + 2 for n in range(12_000) if n % 2500 == 7]
    assert [e["line"] for e in report.sample_errors] == bad_lines
    assert report.result.rejected == len(bad_lines)
    assert report.result.accepted == 12_000 - len(bad_lines)
    assert report.result.duplicates == 1
    assert Interaction.objects.filter(workspace=workspace).count() == report.result.accepted
    assert seen == sorted(seen) and seen[-1] == report.result.accepted


def test_awkward_characters_survive_every_write_path(workspace: Workspace, tmp_path: Path) -> None:
    """Tabs, newlines, backslashes and quotes in values reach the database unchanged (on
    PostgreSQL through the COPY text format, which escapes them)."""
    upsert_customers(workspace, [{"external_id": "C1"}])
    awkward = ["tab\there", "new\nline", "back\\slash \\N", 'quote "q" ;,', "Ștefan Ёжик", "\\t"]
    rows = [["source", "external_id", "customer", "type", "occurred_at", "attr_note"]]
    for n in range(120):
        rows.append(["crm", f"X{n}", "C1", "call", "2026-10-01T10:00:00+03:00", awkward[n % 6]])
    path = write(tmp_path / "awkward.csv", rows)

    report = import_csv(workspace, "interactions", path)

    assert report.result.accepted == 120
    stored = dict(Interaction.objects.values_list("external_id", "attributes"))
    assert all(stored[f"X{n}"] == {"note": awkward[n % 6]} for n in range(120))
    first = Interaction.objects.get(external_id="X0")
    assert first.occurred_at.isoformat() == "2026-10-01T07:00:00+00:00"
