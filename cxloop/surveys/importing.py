"""Importing responses collected elsewhere: a migration from another tool, kiosks, an IVR.

Each item ends up accepted, a duplicate or rejected with its index and reasons, exactly as an
interactions batch. The steps, and why in this order:

1. the item's shape (pydantic) — a malformed item is refused whatever else is true;
2. its ``external_id`` already stored → a duplicate, judged on nothing else: re-sending a batch
   answers "all duplicates" even if a survey or customer changed since;
3. references, looked up once per kind for the whole batch (surveys, customers, interactions,
   codes), then the score, answers and language against the item's survey;
4. a second valid item with the same ``external_id`` in the batch is a duplicate;
5. ``INSERT … ON CONFLICT (workspace, external_id) DO NOTHING``: its row count says how many
   were new, so two requests carrying the same response at the same moment insert it once
   and both answer exactly.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from pydantic import ValidationError

from cxloop.accounts.models import Workspace
from cxloop.analytics.rollups import mark_responses as mark_rollup_days
from cxloop.core import clock
from cxloop.core.validation import BatchResult, error_dict
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Channel, Employee, Product, Touchpoint
from cxloop.webhooks import events as webhook_events

from .definition import SurveyDefinition
from .models import Response, ResponseSource, Survey
from .render import definition_of
from .responses import AnswerError, check_answers, check_score
from .schemas import CODES, ResponseIn

log = logging.getLogger(__name__)

# How far ahead of the server clock an answered_at may be (clock skew between systems).
FUTURE_TOLERANCE = dt.timedelta(hours=24)
LOOKUP_CHUNK = 5000
# About 21 columns a row: 500 rows stay well under SQLite's and PostgreSQL's parameter limits.
INSERT_CHUNK = 500

CODED: dict[str, type[Model]] = {
    "branch": Branch,
    "employee": Employee,
    "product": Product,
    "channel": Channel,
    "touchpoint": Touchpoint,
}


@dataclass(frozen=True)
class FoundInteraction:
    """An interaction as the import needs it: its customer and its references."""

    pk: int
    key: str  # source:external_id
    customer_id: int
    ids: dict[str, int | None]
    codes: dict[str, str | None]


@dataclass
class Lookups:
    """Everything a batch refers to, loaded with one query per kind (and chunk)."""

    surveys: dict[str, tuple[Survey, SurveyDefinition | None]]
    customers: dict[str, int]
    by_key: dict[tuple[str, str], FoundInteraction]
    by_bare_id: dict[str, list[FoundInteraction]]
    codes: dict[str, dict[str, int]]


def _chunks(values: set[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        yield ordered[start : start + LOOKUP_CHUNK]


def _ids(model: type[Model], workspace: Workspace, field: str, values: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(values):
        found.update(
            model._default_manager.filter(
                workspace=workspace, **{f"{field}__in": chunk}
            ).values_list(field, "pk")
        )
    return found


def split_interaction(value: str) -> tuple[str | None, str]:
    """``"crm:V-1"`` → ``("crm", "V-1")``; a bare ``"V-1"`` → ``(None, "V-1")``.

    A source is a slug and never holds a colon, so the first colon separates; an external id
    that holds a colon itself must therefore be written with its source.
    """
    source, colon, external_id = value.partition(":")
    if not colon:
        return None, value
    return source.strip().lower(), external_id.strip()


_INTERACTION_FIELDS = (
    "pk", "source", "external_id", "customer_id",
    *(f"{name}_id" for name in CODES), *(f"{name}__code" for name in CODES),
)  # fmt: skip


def _found(row: dict[str, Any]) -> FoundInteraction:
    return FoundInteraction(
        pk=row["pk"],
        key=f"{row['source']}:{row['external_id']}",
        customer_id=row["customer_id"],
        ids={name: row[f"{name}_id"] for name in CODES},
        codes={name: row[f"{name}__code"] for name in CODES},
    )


def _load_interactions(
    workspace: Workspace, values: set[str]
) -> tuple[dict[tuple[str, str], FoundInteraction], dict[str, list[FoundInteraction]]]:
    # One query per source, so that the (workspace, source, external_id) unique index is used
    # whole; bare ids cannot use it past the workspace, which is why source:id is recommended.
    by_source: dict[str, set[str]] = defaultdict(set)
    bare: set[str] = set()
    for value in values:
        source, external_id = split_interaction(value)
        if source is None:
            bare.add(external_id)
        elif source and external_id:
            by_source[source].add(external_id)
    by_key: dict[tuple[str, str], FoundInteraction] = {}
    for source, external_ids in sorted(by_source.items()):
        for chunk in _chunks(external_ids):
            rows = Interaction.objects.filter(
                workspace=workspace, source=source, external_id__in=chunk
            ).values(*_INTERACTION_FIELDS)
            for row in rows:
                by_key[(row["source"], row["external_id"])] = _found(row)
    by_bare_id: dict[str, list[FoundInteraction]] = defaultdict(list)
    for chunk in _chunks(bare):
        rows = (
            Interaction.objects.filter(workspace=workspace, external_id__in=chunk)
            .order_by("source")
            .values(*_INTERACTION_FIELDS)
        )
        for row in rows:
            by_bare_id[row["external_id"]].append(_found(row))
    return by_key, dict(by_bare_id)


def load_lookups(workspace: Workspace, items: Sequence[ResponseIn]) -> Lookups:
    surveys: dict[str, tuple[Survey, SurveyDefinition | None]] = {}
    codes = {i.survey for i in items}
    for survey in Survey.objects.filter(workspace=workspace, code__in=sorted(codes)):
        try:
            definition: SurveyDefinition | None = definition_of(survey)
        except ValueError:  # stored before a rule tightened; says so per item
            definition = None
        surveys[survey.code] = (survey, definition)
    customers = _ids(Customer, workspace, "external_id", {i.customer for i in items})
    by_key, by_bare_id = _load_interactions(
        workspace, {i.interaction for i in items if i.interaction}
    )
    coded: dict[str, dict[str, int]] = {}
    for name, model in CODED.items():
        wanted = {code for i in items if not i.interaction and (code := getattr(i, name))}
        coded[name] = _ids(model, workspace, "code", wanted) if wanted else {}
    return Lookups(surveys, customers, by_key, by_bare_id, coded)


def _interaction(value: str, lookups: Lookups) -> tuple[FoundInteraction | None, list[str]]:
    source, external_id = split_interaction(value)
    if source is not None:
        if not source or not external_id:
            return None, ["write the interaction as source:external_id, e.g. crm:V-778812"]
        found = lookups.by_key.get((source, external_id))
        if found is None:
            return None, [f"unknown interaction {source}:{external_id}"]
        return found, []
    candidates = lookups.by_bare_id.get(external_id, [])
    if not candidates:
        return None, [f"unknown interaction external_id {external_id!r}"]
    if len(candidates) > 1:
        keys = ", ".join(c.key for c in candidates)
        return None, [
            f"external_id {external_id!r} is an interaction of several sources ({keys}); "
            "write it as source:external_id"
        ]
    return candidates[0], []


def _language(item: ResponseIn, definition: SurveyDefinition) -> tuple[str, list[str]]:
    if not item.language:
        return definition.default_language, []
    if item.language in definition.languages:
        return item.language, []
    spoken = ", ".join(definition.languages)
    return "", [f"the survey speaks {spoken}, not {item.language!r}"]


def build_response(
    workspace: Workspace, item: ResponseIn, lookups: Lookups, now: dt.datetime
) -> tuple[Response | None, dict[str, list[str]]]:
    """The row to insert, or every reason the item cannot be one (all at once)."""
    errors: dict[str, list[str]] = {}
    if item.answered_at > now + FUTURE_TOLERANCE:
        errors["answered_at"] = ["is more than 24 hours in the future"]

    customer_id = lookups.customers.get(item.customer)
    if customer_id is None:
        errors["customer"] = [f"unknown customer external_id {item.customer!r}"]

    ids: dict[str, int | None] = dict.fromkeys(CODES)
    interaction: FoundInteraction | None = None
    if item.interaction:
        interaction, problems = _interaction(item.interaction, lookups)
        if problems:
            errors["interaction"] = problems
        elif interaction is not None:
            if customer_id is not None and interaction.customer_id != customer_id:
                errors["interaction"] = [
                    f"interaction {interaction.key} is not customer {item.customer!r}'s"
                ]
            ids = dict(interaction.ids)
            for name in CODES:
                given, own = getattr(item, name), interaction.codes[name]
                if given and given != own:
                    errors[name] = [
                        f"the interaction's {name} is {own!r}; leave {name} out or give the same"
                        if own
                        else f"the interaction has no {name}; leave {name} out"
                    ]
    else:
        for name in CODES:
            code = getattr(item, name)
            if code:
                if code in lookups.codes[name]:
                    ids[name] = lookups.codes[name][code]
                else:
                    errors[name] = [f"unknown {name} code {code!r}"]

    score: int | None = None
    answers: dict[str, Any] = {}
    language = ""
    may_contact: bool | None = None
    contact_phone = ""
    found = lookups.surveys.get(item.survey)
    if found is None:
        errors["survey"] = [f"unknown survey code {item.survey!r}"]
    elif found[1] is None:
        errors["survey"] = [f"survey {item.survey!r} has an invalid definition; fix it first"]
    else:
        definition = found[1]
        try:
            score = check_score(definition, item.score)
        except ValueError as exc:
            errors["score"] = [str(exc)]
        try:
            answers = check_answers(definition, item.answers or {}, workspace.phone_region or None)
        except AnswerError as exc:
            errors.update(exc.errors)
        language, problems = _language(item, definition)
        if problems:
            errors["language"] = problems
        for code, value in answers.items():
            question = definition.question(code)
            if question is not None and question.type == "contact":
                may_contact = value["may_contact"]
                contact_phone = value["phone"] if may_contact else ""

    if errors or found is None:
        return None, errors
    return (
        Response(
            workspace_id=workspace.pk,
            external_id=item.external_id,
            survey_id=found[0].pk,
            customer_id=customer_id,
            interaction_id=interaction.pk if interaction else None,
            score=score,
            comment=(item.comment or "").strip(),
            answers=answers,
            language=language,
            answered_at=item.answered_at,
            source=ResponseSource.IMPORT.value,
            may_contact=may_contact,
            contact_phone=contact_phone,
            is_test=False,
            branch_id=ids["branch"],
            employee_id=ids["employee"],
            product_id=ids["product"],
            channel_id=ids["channel"],
            touchpoint_id=ids["touchpoint"],
        ),
        {},
    )


def _existing(workspace: Workspace, external_ids: set[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(external_ids):
        found.update(
            Response.objects.filter(workspace=workspace, external_id__in=chunk).values_list(
                "external_id", flat=True
            )
        )
    return found


def import_responses(
    workspace: Workspace, raw_items: Sequence[Any], *, notify: bool = True
) -> BatchResult:
    """Each item ends up accepted, duplicate or rejected (with its index and reasons).

    ``notify=False`` imports history: no ``response.created`` webhook events (the closed
    loop's sweep still ignores answers older than a week).
    """
    result = BatchResult()
    now = clock.now()
    valid: list[tuple[int, ResponseIn]] = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            result.reject(index, {"__all__": ["an item must be a JSON object"]})
            continue
        try:
            valid.append((index, ResponseIn.model_validate(raw)))
        except ValidationError as exc:
            result.reject(index, error_dict(exc))

    stored = _existing(workspace, {item.external_id for _, item in valid})
    fresh = [(index, item) for index, item in valid if item.external_id not in stored]
    result.duplicates += len(valid) - len(fresh)

    lookups = load_lookups(workspace, [item for _, item in fresh])
    rows: list[Response] = []
    seen: set[str] = set()
    for index, item in fresh:
        row, errors = build_response(workspace, item, lookups, now)
        if row is None:
            result.reject(index, errors)
        elif item.external_id in seen:
            result.duplicates += 1
        else:
            seen.add(item.external_id)
            rows.append(row)

    if rows:
        # One transaction for the rows and their webhook events (an outbox); no savepoint of
        # its own, and one query when no endpoint wants response.created.
        with transaction.atomic(savepoint=False):
            inserted = insert_responses(rows)
            mark_rollup_days(rows, workspace)  # the days the NPS rollups must recompute
            if notify:
                webhook_events.emit_imported(workspace, rows)
        result.accepted += inserted
        result.duplicates += len(rows) - inserted  # inserted meanwhile by another request
    result.errors.sort(key=lambda e: e["index"])
    log.info(
        "responses imported: workspace=%s accepted=%s duplicates=%s rejected=%s",
        workspace.pk, result.accepted, result.duplicates, result.rejected,
    )  # fmt: skip
    return result


def insert_responses(rows: Sequence[Response]) -> int:
    """Insert the rows whose (workspace, external_id) is new; return how many were.

    The columns and their database values come from the model's own fields (defaults,
    ``auto_now``, JSON adaptation), so a field added to ``Response`` later is written too.
    """
    fields = [f for f in Response._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ",".join(quote(f.column) for f in fields)
    row_sql = "(" + ",".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(Response._meta.db_table)} ({columns}) VALUES {{values}} "
        "ON CONFLICT (workspace_id, external_id) DO NOTHING"
    )
    inserted = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            params = [
                field.get_db_prep_save(field.pre_save(row, True), connection)
                for row in chunk
                for field in fields
            ]
            cursor.execute(sql.format(values=",".join([row_sql] * len(chunk))), params)
            # rowcount counts the rows inserted, not those skipped by ON CONFLICT
            inserted += cursor.rowcount
    return inserted
