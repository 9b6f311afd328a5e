"""Importing Delighted's CSV exports: people, and survey responses with their person.

A team leaving Delighted takes its history along as two CSV downloads. Columns are mapped by
header name, case- and space-insensitively, because Delighted's exports changed their headers
over the years ("Date (UTC)" / "Response Timestamp", "Phone" / "Phone Number"); any column
that is not one of Delighted's own fields is a *person property* (Delighted exports one column
per property), kept on the customer (people) or on the response (responses).

Rows go through the same services as the API (``upsert_customers``, ``import_responses``), so
a row is judged the same way whichever door it comes through, and re-running a file changes
nothing: a response is stored under ``delighted-<Response ID>`` and comes back a duplicate.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db.models.functions import Lower

from cxloop.accounts.models import Workspace
from cxloop.core.validation import BatchResult, normalise_email, normalise_phone
from cxloop.customers.models import Customer
from cxloop.customers.services import upsert_customers
from cxloop.imports.reader import CsvError, CsvFile, open_csv
from cxloop.imports.services import ImportReport
from cxloop.surveys.definition import SurveyDefinition
from cxloop.surveys.importing import import_responses
from cxloop.surveys.models import Response, Survey
from cxloop.surveys.render import definition_of
from cxloop.surveys.responses import MAX_TEXT, check_score

from .http import ApiError, compat_survey
from .models import ResponseMeta

BATCH_ROWS = 1000
SAMPLE_ERRORS = 200
KINDS = ("people", "responses")
# What a customer's external_id may be (cxloop.core.validation.CODE_PATTERN, stripped).
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")

# Normalised header → field. Normalised: lower case, "_" as a space, spaces collapsed.
PERSON_COLUMNS = {
    "email": "email", "email address": "email", "person email": "email", "e-mail": "email",
    "name": "name", "person name": "name", "full name": "name",
    "phone": "phone", "phone number": "phone", "person phone number": "phone",
    "mobile": "phone", "person id": "person_id",
}  # fmt: skip
PEOPLE_COLUMNS = {**PERSON_COLUMNS, "id": "person_id"}
RESPONSE_COLUMNS = {
    **PERSON_COLUMNS,
    "response id": "response_id", "id": "response_id", "survey response id": "response_id",
    "response timestamp": "timestamp", "timestamp": "timestamp",
    "date (utc)": "date", "date": "date", "response date": "date", "response date (utc)": "date",
    "created at": "date", "created at (utc)": "date", "responded at": "date",
    "score": "score", "nps score": "score", "rating": "score",
    "comment": "comment", "comments": "comment",
    "tags": "tags", "notes": "notes",
}  # fmt: skip
# Delighted's own bookkeeping: neither a field here nor a property of the person.
PEOPLE_IGNORED = {
    "created at", "created at (utc)", "last sent at", "last sent at (utc)", "last responded at",
    "last responded at (utc)", "unsubscribed", "unsubscribed at", "bounced", "bounced at",
}  # fmt: skip
RESPONSE_IGNORED = {
    "survey type", "last updated", "last updated (utc)", "updated at", "updated at (utc)",
    "permalink", "response url",
}  # fmt: skip


def norm(header: str) -> str:
    return re.sub(r"\s+", " ", header.replace("_", " ").strip().lower())


def person_external_id(email: str | None, phone: str | None, person_id: str | None = None) -> str:
    """The external_id of a customer first met through Delighted (API or export).

    Deterministic, so two requests (or a re-run import) naming the same new person upsert one
    customer: the e-mail when it is a valid code, else a digest of it; else the phone; else
    Delighted's person id. Lookups by e-mail and phone come first, so an existing customer
    keeps the external_id the CRM gave them.
    """
    if email:
        key = email.lower()
        if CODE_RE.match(key):
            return key
        return "delighted:" + hashlib.sha256(key.encode()).hexdigest()[:40]
    if phone:
        return "tel:" + phone.lstrip("+")
    if person_id:
        return f"delighted-person-{person_id}"
    raise ValueError("a person needs an e-mail, a phone number or an id")


def find_customers(
    workspace: Workspace, emails: set[str], phones: set[str]
) -> tuple[dict[str, Customer], dict[str, Customer]]:
    """Existing customers by lower-cased e-mail and by phone (the oldest wins a tie)."""
    by_email: dict[str, Customer] = {}
    by_phone: dict[str, Customer] = {}
    # Newest first, so that the oldest customer with an address is the one kept.
    if emails:
        for customer in (
            Customer.objects.filter(workspace=workspace)
            .annotate(lower_email=Lower("email"))
            .filter(lower_email__in=sorted(emails))
            .order_by("-pk")
        ):
            by_email[customer.email.lower()] = customer
    if phones:
        for found in Customer.objects.filter(
            workspace=workspace, phone__in=sorted(phones)
        ).order_by("-pk"):
            by_phone[found.phone] = found
    return by_email, by_phone


@dataclass
class _Columns:
    fields: dict[str, int] = field(default_factory=dict)  # field → column index
    properties: dict[int, str] = field(default_factory=dict)  # column index → property name
    ignored: list[str] = field(default_factory=list)


def map_columns(kind: str, header: list[str]) -> _Columns:
    known = PEOPLE_COLUMNS if kind == "people" else RESPONSE_COLUMNS
    skipped = PEOPLE_IGNORED if kind == "people" else RESPONSE_IGNORED
    cols = _Columns()
    for index, name in enumerate(header):
        key = norm(name)
        target = known.get(key)
        if not key:
            continue
        if target is not None and target not in cols.fields:
            cols.fields[target] = index
        elif target is not None or key in skipped:
            cols.ignored.append(name)
        else:
            cols.properties[index] = name.strip()
    if kind == "responses":
        missing = [
            label
            for label, ok in (
                ("Response ID", "response_id" in cols.fields),
                ("Score", "score" in cols.fields),
                ("Date (UTC) or Response Timestamp", {"date", "timestamp"} & set(cols.fields)),
            )
            if not ok
        ]
    else:
        missing = []
    if not {"email", "phone", "person_id"} & set(cols.fields):
        missing.append("Email or Phone Number")
    if missing:
        raise CsvError(
            f"this does not look like a Delighted {kind} export: no column for "
            f"{', '.join(missing)}; header is {header}"
        )
    return cols


FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d.%m.%Y %H:%M")


def parse_time(raw: str) -> dt.datetime:
    """A Unix timestamp, ISO 8601 or a US date; without an offset it is UTC (as Delighted
    writes it: "Date (UTC)")."""
    text = raw.strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    text = re.sub(r"\s*(UTC|GMT)$", "", text, flags=re.IGNORECASE)
    value: dt.datetime | None = None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        for fmt in FORMATS:
            try:
                value = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise ValueError(f"{raw!r} is not a date (Unix seconds or 2024-03-05 14:22:31)")
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass
class _Row:
    line: int
    cells: list[str]
    values: dict[str, str]
    properties: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)
    email: str = ""
    phone: str = ""
    customer: str = ""  # the external_id it resolves to
    response: dict[str, Any] | None = None  # responses: the item for import_responses

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _read_row(cols: _Columns, line: int, cells: list[str], width: int) -> _Row:
    values = {
        name: cells[i].strip() for name, i in cols.fields.items() if i < len(cells) and cells[i]
    }
    values = {k: v for k, v in values.items() if v}
    properties = {
        name: cells[i].strip()
        for i, name in cols.properties.items()
        if i < len(cells) and cells[i].strip()
    }
    row = _Row(line, cells, values, properties)
    if len(cells) > width:
        row.error("__all__", f"the row has {len(cells)} cells, the header {width}")
    elif not _decodable(cells):
        row.error("__all__", "the row is not valid text in the file's encoding")
    return row


def _decodable(cells: list[str]) -> bool:
    try:
        "".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _identify(workspace: Workspace, rows: list[_Row]) -> None:
    """Normalise each row's e-mail and phone, then resolve the customer it is about."""
    region = workspace.phone_region or None
    for row in rows:
        if row.errors:
            continue
        if email := row.values.get("email"):
            try:
                row.email = normalise_email(email)
            except ValueError as exc:
                row.error("email", str(exc))
        if phone := row.values.get("phone"):
            try:
                row.phone = normalise_phone(phone, region)
            except ValueError as exc:
                row.error("phone", str(exc))
        if not row.errors and not (row.email or row.phone or row.values.get("person_id")):
            row.error("__all__", "no e-mail, phone number or person id to know who this is")
    live = [r for r in rows if not r.errors]
    by_email, by_phone = find_customers(
        workspace, {r.email.lower() for r in live if r.email}, {r.phone for r in live if r.phone}
    )
    for row in live:
        found = (by_email.get(row.email.lower()) if row.email else None) or (
            by_phone.get(row.phone) if row.phone else None
        )
        row.customer = (
            found.external_id
            if found is not None
            else person_external_id(row.email, row.phone, row.values.get("person_id"))
        )


def _upsert(
    workspace: Workspace, rows: list[_Row], *, overwrite: bool, attributes: bool
) -> BatchResult:
    """Upsert the customers the rows name; a customer's errors become its rows' errors.

    ``overwrite`` False (responses): a field already set on a customer is left alone, so an
    old response does not roll back a name or phone the CRM has since corrected.
    """
    live = [r for r in rows if not r.errors]
    current = {
        c.external_id: c
        for c in Customer.objects.filter(
            workspace=workspace, external_id__in=sorted({r.customer for r in live})
        )
    }
    items: list[dict[str, Any]] = []
    owners: list[_Row] = []
    for row in live:
        item: dict[str, Any] = {"external_id": row.customer}
        stored = current.get(row.customer)
        for name, value in (
            ("name", row.values.get("name", "")),
            ("email", row.email),
            ("phone", row.phone),
        ):
            if value and (overwrite or stored is None or not getattr(stored, name)):
                item[name] = value
        if attributes and row.properties:
            item["attributes"] = row.properties
        items.append(item)
        owners.append(row)
    result = upsert_customers(workspace, items)
    for err in result.errors:
        owner = owners[err["index"]]
        for name, messages in err["errors"].items():
            for message in messages:
                owner.error(name, message)
    return result


def _check_response(row: _Row, definition: SurveyDefinition) -> None:
    """The row's response, checked before its person is written: a row refused for its score
    or date leaves no customer behind."""
    if row.errors:
        return
    rid = row.values.get("response_id", "")
    if not rid:
        row.error("response_id", "Response ID is empty")
    elif not CODE_RE.match(f"delighted-{rid}"):
        row.error("response_id", f"{rid!r} is not a Delighted response id")
    raw_time = row.values.get("timestamp") or row.values.get("date")
    answered_at: dt.datetime | None = None
    if not raw_time:
        row.error("answered_at", "the response has no date")
    else:
        try:
            answered_at = parse_time(raw_time)
        except (ValueError, OverflowError, OSError) as exc:
            row.error("answered_at", str(exc))
    score = row.values.get("score")
    if score is None:
        row.error("score", "Score is empty")
    else:
        try:
            check_score(definition, score)
        except ValueError as exc:
            row.error("score", str(exc))
    if len(row.values.get("comment", "")) > MAX_TEXT:
        row.error("comment", f"must be at most {MAX_TEXT} characters")
    if not row.errors:
        row.response = {
            "external_id": f"delighted-{rid}",
            "score": score,
            "comment": row.values.get("comment") or None,
            "answered_at": answered_at,
        }


def _responses(workspace: Workspace, survey: Survey, rows: list[_Row]) -> BatchResult:
    owners = [r for r in rows if not r.errors and r.response is not None]
    items = [
        {**row.response, "survey": survey.code, "customer": row.customer}
        for row in owners
        if row.response is not None
    ]
    # History is not news: no webhook events for a past export.
    result = import_responses(workspace, items, notify=False)
    for err in result.errors:
        owner = owners[err["index"]]
        for name, messages in err["errors"].items():
            for message in messages:
                owner.error(name, message)
    _attach_meta(workspace, [r for r in owners if not r.errors])
    return result


def split_tags(cell: str) -> list[str]:
    return [t.strip() for t in cell.split(",") if t.strip()]


def split_notes(cell: str) -> list[dict[str, Any]]:
    """Delighted exports a response's notes in one cell, one note a line."""
    return [{"text": line.strip()} for line in cell.splitlines() if line.strip()]


def _attach_meta(workspace: Workspace, rows: list[_Row]) -> None:
    """Person properties, tags and notes for the responses that have none yet (a re-run
    neither duplicates nor overwrites what was imported, or edited, since)."""
    if not rows:
        return
    ids = {
        ext: pk
        for ext, pk in Response.objects.filter(
            workspace=workspace,
            external_id__in=[f"delighted-{r.values['response_id']}" for r in rows],
        ).values_list("external_id", "pk")
    }
    have = set(
        ResponseMeta.objects.filter(response_id__in=list(ids.values())).values_list(
            "response_id", flat=True
        )
    )
    fresh: dict[int, ResponseMeta] = {}
    for row in rows:
        pk = ids.get(f"delighted-{row.values['response_id']}")
        if pk is None or pk in have or pk in fresh:
            continue
        fresh[pk] = ResponseMeta(
            response_id=pk,
            person_properties=row.properties,
            tags=split_tags(row.values.get("tags", "")),
            notes=split_notes(row.values.get("notes", "")),
        )
    ResponseMeta.objects.bulk_create(list(fresh.values()), ignore_conflicts=True)


def import_delighted(
    workspace: Workspace,
    kind: str,
    path: Path,
    *,
    survey_code: str | None = None,
    encoding: str | None = None,
    rejects_path: Path | None = None,
    progress: Callable[[CsvFile, ImportReport], None] | None = None,
) -> ImportReport:
    """Import a Delighted ``people`` or ``responses`` export; ``CsvError`` when the file as a
    whole cannot be (wrong kind of file, unknown survey).

    Rejected rows go, as with ``cxloop import``, to ``FILE.rejects.csv``: line, reasons, then
    the row as it was, ready to be fixed and imported again.
    """
    if kind not in KINDS:
        raise CsvError(f"unknown kind {kind!r}; choose people or responses")
    survey: Survey | None = None
    definition: SurveyDefinition | None = None
    if kind == "responses":
        survey = _survey(workspace, survey_code)
        try:
            definition = definition_of(survey)
        except ValueError:
            raise CsvError(
                f"survey {survey.code!r} has an invalid definition; fix it first"
            ) from None
    csv_file = open_csv(path, encoding)
    report = ImportReport(
        kind="customers" if kind == "people" else "responses",
        encoding=csv_file.encoding,
        delimiter=csv_file.delimiter,
    )
    rejects = _Rejects(
        rejects_path or path.with_name(path.stem + ".rejects.csv"),
        csv_file.header,
        csv_file.delimiter,
    )
    try:
        cols = map_columns(kind, csv_file.header)
        report.ignored_columns = cols.ignored
        width = len(csv_file.header)
        batch: list[_Row] = []

        def flush() -> None:
            if definition is not None:
                for row in batch:
                    _check_response(row, definition)
            _identify(workspace, batch)
            if survey is None:
                result = _upsert(workspace, batch, overwrite=True, attributes=True)
            else:
                _upsert(workspace, batch, overwrite=False, attributes=False)
                result = _responses(workspace, survey, batch)
            result.errors, result.rejected = [], 0
            report.result.add(result)
            for row in batch:
                if row.errors:
                    report.result.rejected += 1
                    rejects.write(row)
                    if len(report.sample_errors) < SAMPLE_ERRORS:
                        report.sample_errors.append({"line": row.line, "errors": row.errors})
            batch.clear()
            if progress:
                progress(csv_file, report)

        for line, cells in csv_file.rows():
            report.rows += 1
            batch.append(_read_row(cols, line, cells, width))
            if len(batch) >= BATCH_ROWS:
                flush()
        if batch:
            flush()
    finally:
        csv_file.close()
        rejects.close()
    report.rejects_path = rejects.path if rejects.file is not None else None
    return report


class _Rejects:
    """The rejected rows, in a CSV next to the input; created only when there is one."""

    def __init__(self, path: Path, header: list[str], delimiter: str) -> None:
        self.path, self.header, self.delimiter = path, header, delimiter
        self.file: IO[str] | None = None
        self.writer: Any = None

    def write(self, row: _Row) -> None:
        if self.file is None:
            # surrogateescape writes undecodable bytes back as they were in the input
            self.file = self.path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
            self.writer = csv.writer(self.file, delimiter=self.delimiter)
            self.writer.writerow(["line", "errors", *self.header])
        reasons = "; ".join(f"{k}: {', '.join(v)}" for k, v in row.errors.items())
        self.writer.writerow([row.line, reasons, *row.cells])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _survey(workspace: Workspace, code: str | None) -> Survey:
    if code:
        survey = Survey.objects.filter(workspace=workspace, code=code.strip().lower()).first()
        if survey is None:
            raise CsvError(f"no survey with code {code!r} in workspace {workspace.slug}")
        return survey
    try:
        return compat_survey(workspace)
    except ApiError as exc:
        raise CsvError(f"{exc.message} Or name one: --survey CODE.") from None
