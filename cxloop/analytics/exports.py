"""Downloads of the dashboard's tables: CSV (UTF-8 with a BOM, so Excel reads the diacritics)
and XLSX (openpyxl). Both hold the same values as the table on the page, as numbers where they
are numbers, so a spreadsheet can sort and sum them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from django.http import HttpResponse

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(body: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _safe(value: Any) -> Any:
    # A text cell that starts with = + - @ would run as a formula in a spreadsheet (names come
    # from imports); numbers stay numbers.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def csv_response(
    filename: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_safe(value) for value in row])
    return _download(("\ufeff" + out.getvalue()).encode(), "text/csv; charset=utf-8", filename)


def xlsx_response(
    filename: str, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> HttpResponse:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook(write_only=False)
    sheet = book.active
    assert sheet is not None
    # Excel refuses sheet titles over 31 characters or with []:*?/\
    sheet.title = "".join(c for c in title if c not in "[]:*?/\\")[:31] or "Sheet"
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([_safe(value) for value in row])
    for column, header in zip(sheet.columns, headers, strict=False):
        longest = max([len(str(header))] + [len(str(c.value or "")) for c in column])
        sheet.column_dimensions[column[0].column_letter].width = min(48, longest + 2)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return _download(out.getvalue(), XLSX, filename)
