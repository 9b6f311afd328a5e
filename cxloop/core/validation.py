"""Validation shared by the API and CSV import: pydantic errors as ``{"field": ["message"]}``."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import StringConstraints, ValidationError

CODE_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}\s*$"
SLUG_PATTERN = r"^\s*[A-Za-z][A-Za-z0-9_.-]{0,63}\s*$"
SLUG_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
CODE_RULE = "must be 1-128 letters, digits or _ . : / @ -, starting with a letter or digit"
SLUG_RULE = "must be a word of letters, digits, _ . - (at most 64), starting with a letter"

# Checked by pydantic-core (Rust), not by Python validators: ingestion validates millions of
# rows. Surrounding spaces are allowed and stripped; slugs are lower-cased.
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=CODE_PATTERN)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=SLUG_PATTERN)]
# "" for an optional reference means none, as CRM exports write it.
OptionalCode = Code | Literal[""] | None
FRIENDLY_PATTERNS = {CODE_PATTERN: CODE_RULE, SLUG_PATTERN: SLUG_RULE}
UNION_TAG = re.compile(r"^(constrained-str|str|none|literal\[.*\]|function-\w+\[.*\])$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


@functools.cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def error_dict(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        parts = [str(part) for part in err["loc"]]
        if any(part.startswith("literal[") for part in parts):
            continue  # the Literal[""] branch of an optional code: the other branch says why
        # drop the tags pydantic adds for the branches of a union ("constrained-str")
        loc = ".".join(p for p in parts if not UNION_TAG.match(p)) or "__all__"
        message = err["msg"]
        # pydantic prefixes messages raised by our validators with "Value error, ".
        message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "string_pattern_mismatch":
            message = FRIENDLY_PATTERNS.get(err["ctx"]["pattern"], message)
        errors.setdefault(loc, []).append(message)
    return errors


def check_slug(value: str, what: str) -> str:
    value = value.lower()
    if not SLUG_RE.match(value):
        raise ValueError(f"{what} {SLUG_RULE}")
    return value


def normalise_email(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError(f"{value!r} is not a valid e-mail address") from None
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_phone(value: str, region: str | None) -> str:
    """The number in E.164; a number without a country code is read in ``region``."""
    try:
        number = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        hint = "" if region else " (write it with the country code, e.g. +373…)"
        raise ValueError(f"{value!r} is not a phone number{hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_language(value: str) -> str:
    value = value.strip().lower().replace("_", "-")
    if not LANGUAGE_RE.match(value):
        raise ValueError(f"{value!r} is not a language code such as ru, ro or en")
    return value


def check_time_zone(value: str) -> str:
    if value not in time_zones():
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Chisinau")
    return value


def aware(value: dt.datetime, tz: str) -> dt.datetime:
    """A naive time is read in the workspace's time zone (how most CRM exports write it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    return value


@dataclass
class BatchResult:
    """Exactly what happened to each item of a batch; nothing dropped without a report."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Customers only: how the accepted ones split.
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def reject(self, index: int, errors: dict[str, list[str]]) -> None:
        self.rejected += 1
        self.errors.append({"index": index, "errors": errors})

    def add(self, other: BatchResult, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        for err in other.errors:
            self.errors.append({"index": err["index"] + offset, "errors": err["errors"]})
