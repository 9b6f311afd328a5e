"""Reading a CSV export as it comes out of a CRM: UTF-8 or Windows-1251, `,` or `;`.

The file is streamed: only one batch of rows is in memory at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SAMPLE_BYTES = 64 * 1024
ENCODINGS = {"utf-8", "utf-8-sig", "cp1251", "windows-1251"}

CUSTOMER_FIELDS = ("external_id", "name", "email", "phone", "language", "time_zone", "segment",
                   "is_b2b", "account", "account_name")  # fmt: skip
INTERACTION_FIELDS = ("source", "external_id", "customer", "type", "occurred_at", "touchpoint",
                      "branch", "employee", "product", "channel")  # fmt: skip
FIELDS = {"customers": CUSTOMER_FIELDS, "interactions": INTERACTION_FIELDS}

# Header names seen in real exports (English, Russian, Romanian), normalised by ``_norm``.
ALIASES = {
    "customers": {
        "id": "external_id", "customer_id": "external_id", "client_id": "external_id",
        "код_клиента": "external_id", "id_client": "external_id",
        "full_name": "name", "фио": "name", "имя": "name", "nume": "name", "client": "name",
        "e-mail": "email", "mail": "email", "почта": "email",
        "phone_number": "phone", "mobile": "phone", "телефон": "phone", "telefon": "phone",
        "lang": "language", "язык": "language", "limba": "language",
        "timezone": "time_zone", "tz": "time_zone",
        "сегмент": "segment", "b2b": "is_b2b", "company": "account", "company_id": "account",
        "account_id": "account", "company_name": "account_name",
    },
    "interactions": {
        "id": "external_id", "interaction_id": "external_id", "event_id": "external_id",
        "customer_id": "customer", "client_id": "customer", "клиент": "customer",
        "event_type": "type", "interaction_type": "type", "тип": "type",
        "date": "occurred_at", "datetime": "occurred_at", "timestamp": "occurred_at",
        "time": "occurred_at", "дата": "occurred_at", "data": "occurred_at",
        "branch_code": "branch", "филиал": "branch", "filiala": "branch",
        "employee_code": "employee", "сотрудник": "employee", "angajat": "employee",
        "product_code": "product", "продукт": "product", "produs": "product",
        "channel_code": "channel", "канал": "channel", "canal": "channel",
        "touchpoint_code": "touchpoint",
    },
}  # fmt: skip

TRUE_WORDS = {"1", "true", "yes", "y", "on", "да", "da", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "off", "нет", "nu", "f"}


class CsvError(ValueError):
    """The file as a whole cannot be imported (no header, missing columns, wrong encoding)."""


def _norm(header: str) -> str:
    return re.sub(r"[\s]+", "_", header.strip().lower())


class CountingReader(io.RawIOBase):
    """A byte stream that counts what has been read, for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=False)  # a character cut at the sample's end is fine
    except UnicodeDecodeError:
        return "cp1251"
    return "utf-8"


def detect_delimiter(first_line: str) -> str:
    counts = {d: 0 for d in (",", ";", "\t")}
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class Columns:
    """How the file's columns map onto cxloop's fields."""

    fields: dict[int, str] = field(default_factory=dict)  # column index → field
    attributes: dict[int, str] = field(default_factory=dict)  # column index → attribute name
    consent: dict[int, str] = field(default_factory=dict)  # column index → channel
    ignored: list[str] = field(default_factory=list)


REQUIRED = {
    "customers": ("external_id",),
    "interactions": ("source", "external_id", "customer", "type", "occurred_at"),
}


def map_columns(kind: str, header: list[str], mapping: dict[str, str] | None = None) -> Columns:
    """Map header names; ``mapping`` ({"Header in file": "field"}) wins over the automatic one."""
    known = FIELDS[kind]
    aliases = ALIASES[kind]
    explicit = {_norm(k): v.strip() for k, v in (mapping or {}).items()}
    for wanted in explicit.values():
        base = wanted.split(".", 1)[0]
        if wanted not in known and base not in ("attributes", "consent") and wanted != "-":
            raise CsvError(f"mapping names an unknown field {wanted!r}; fields: {', '.join(known)}")
    unknown_sources = set(explicit) - {_norm(h) for h in header}
    if unknown_sources:
        raise CsvError(f"mapping names columns the file does not have: {sorted(unknown_sources)}")
    cols = Columns()
    for index, name in enumerate(header):
        key = _norm(name)
        target: str | None = explicit.get(key) or (key if key in known else aliases.get(key))
        if target is None and key.startswith(("attr_", "attributes.")):
            target = "attributes." + key.split("_", 1)[1] if key.startswith("attr_") else key
        if target is None and kind == "customers" and key.startswith(("consent_", "consent.")):
            target = "consent." + key[len("consent_") :]
        if target is None or target == "-":
            cols.ignored.append(name)
        elif target.startswith("attributes."):
            cols.attributes[index] = target.removeprefix("attributes.")
        elif target.startswith("consent."):
            cols.consent[index] = target.removeprefix("consent.")
        elif target in cols.fields.values():
            raise CsvError(f"two columns map to {target!r}; map one of them to '-' to skip it")
        else:
            cols.fields[index] = target
    missing = [f for f in REQUIRED[kind] if f not in cols.fields.values()]
    if kind == "interactions" and "source" in missing:
        missing.remove("source")  # a file may leave it to --source
    if missing:
        raise CsvError(
            f"the file has no column for {', '.join(missing)}; header is {header}. "
            "Rename the column or map it (Header=field)."
        )
    return cols


def _bool(cell: str) -> bool | str:
    word = cell.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return cell  # left for validation to reject with its own message


DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})([ T].*)?$")


def _date(cell: str) -> str:
    """ISO 8601 as it is; 31.12.2026 [10:00] (how ru/ro exports write dates) turned into ISO."""
    match = DOTTED_DATE.match(cell.strip())
    if not match:
        return cell
    day, month, year, rest = match.groups()
    time = (rest or "").strip()
    return f"{year}-{int(month):02d}-{int(day):02d}" + (f"T{time}" if time else "T00:00")


def row_to_item(cols: Columns, row: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = dict(defaults)
    for index, name in cols.fields.items():
        cell = row[index] if index < len(row) else ""
        if cell.strip() != "":
            if name == "is_b2b":
                item[name] = _bool(cell)
            elif name == "occurred_at":
                item[name] = _date(cell)
            else:
                item[name] = cell
    if cols.attributes:
        attrs = {
            name: row[i] for i, name in cols.attributes.items() if i < len(row) and row[i] != ""
        }
        if attrs:
            item["attributes"] = attrs
    if cols.consent:
        consent = {
            name: _bool(row[i]) for i, name in cols.consent.items() if i < len(row) and row[i] != ""
        }
        if consent:
            item["consent"] = consent
    return item


@dataclass
class CsvFile:
    path: Path
    encoding: str
    delimiter: str
    header: list[str]
    size: int
    _stream: CountingReader
    _text: io.TextIOWrapper
    _reader: Any

    @property
    def bytes_read(self) -> int:
        return self._stream.count

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number where the row starts, cells); blank lines are skipped."""
        line = self._reader.line_num + 1
        try:
            for row in self._reader:
                if row and any(cell.strip() for cell in row):
                    yield line, row
                line = self._reader.line_num + 1
        except csv.Error as exc:
            raise CsvError(f"line {line}: {exc}") from None

    def close(self) -> None:
        self._text.close()


def open_csv(path: Path, encoding: str | None = None, delimiter: str | None = None) -> CsvFile:
    raw = path.open("rb")
    sample = raw.read(SAMPLE_BYTES)
    raw.seek(0)
    if encoding:
        encoding = encoding.lower()
        if encoding not in ENCODINGS:
            raise CsvError(f"encoding must be utf-8 or cp1251, got {encoding!r}")
        if encoding == "utf-8" and sample.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
    else:
        encoding = detect_encoding(sample)
    stream = CountingReader(raw)
    # Undecodable bytes become lone surrogates, so the row holding them is rejected on its own
    # line instead of the whole file failing somewhere ahead of the reader.
    text = io.TextIOWrapper(
        io.BufferedReader(stream, 1 << 16),
        encoding=encoding,
        errors="surrogateescape",
        newline="",
    )
    try:
        first = sample.decode(encoding, errors="ignore").lstrip("\ufeff").splitlines()
    except LookupError:
        raise CsvError(f"unknown encoding {encoding!r}") from None
    if not first or not first[0].strip():
        text.close()
        raise CsvError("the file is empty or its first line (the header) is blank")
    delimiter = delimiter or detect_delimiter(first[0])
    if delimiter not in (",", ";", "\t"):
        text.close()
        raise CsvError(f"delimiter must be ',', ';' or a tab, got {delimiter!r}")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader)
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        text.close()
        raise CsvError(f"cannot read the header line: {exc}") from None
    return CsvFile(path, encoding, delimiter, [h.strip() for h in header], path.stat().st_size,
                   stream, text, reader)  # fmt: skip
