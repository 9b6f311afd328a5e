"""Reason cells (``models.ReasonCell``): what the pain map and key drivers read instead of
every answer of their period.

A cell groups the scored, non-test answers of a (survey, local day) that share a score and the
same reason *tokens* (the choice answers, the case's reason codes, the comment's codes), once
over the whole day (kind ``all``) and once per branch, employee and product (the pain map's
filters). It keeps how many answers it holds, how many of them had no customer, and the set of
their customers, so that distinct respondents (not additive over days) are counted exactly by
uniting the sets.

They are recomputed with the NPS cells (``rollups._refresh_day``/``rebuild``): the days are
marked dirty by a changed response (``receivers.py``), a case whose reasons change (``m2m``,
``post_save``/``post_delete`` of ``Case``), a comment code saved or deleted one by one, and
comments analysed since the last heartbeat (``reconcile``: the model coder bulk-creates its
codes, which sends no signal).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import zlib
import zoneinfo
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from cxloop.accounts.models import Workspace
from cxloop.core import bulk, clock
from cxloop.surveys.models import Response, Survey

from .models import REASON_KINDS, ReasonCell, ReasonDirtyDay, ReasonWatermark

# The response column of each reason-cell kind.
REASON_COLUMN = {"branch": "branch_id", "employee": "employee_id", "product": "product_id"}
CREATE_BATCH = 2000
_EMPTY = np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- customers


def pack(ids: Iterable[int]) -> bytes:
    """Distinct ids as bytes: sorted, delta-coded int64, zlib-compressed."""
    values = np.unique(np.fromiter(ids, dtype=np.int64))
    if not values.size:
        return b""
    return zlib.compress(np.diff(values, prepend=0).astype("<i8").tobytes(), 1)


def unpack(blob: bytes | memoryview | None) -> np.ndarray:
    if not blob:
        return _EMPTY
    return np.cumsum(np.frombuffer(zlib.decompress(bytes(blob)), dtype="<i8"))


def count_distinct(arrays: Sequence[np.ndarray]) -> int:
    """How many distinct ids the arrays hold together."""
    parts = [a for a in arrays if a.size]
    if not parts:
        return 0
    if len(parts) == 1:
        return int(parts[0].size)
    joined = np.concatenate(parts)
    low, high = int(joined.min()), int(joined.max())
    if high - low < 64_000_000:  # a bitmap is far cheaper than sorting
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[joined - low] = True
        return int(np.count_nonzero(seen))
    return int(np.unique(joined).size)


# --------------------------------------------------------------------------- tokens


def choice_questions(survey: Any) -> set[str]:
    """The codes of the survey's single/multiple choice questions (current definition)."""
    from cxloop.surveys.render import definition_of

    try:
        definition = definition_of(survey)
    except Exception:  # an invalid definition has no questions
        return set()
    return {q.code for q in definition.questions if q.type in ("single", "multiple")}


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def tokens_of(
    answers: Any, questions: Iterable[str], case_codes: Iterable[str], text_codes: Iterable[str]
) -> str:
    found: set[str] = {f"c\t{code}" for code in case_codes}
    found.update(f"t\t{code}" for code in text_codes)
    if isinstance(answers, dict):
        for question in questions:
            found.update(f"o\t{question}\t{v}" for v in _values(answers.get(question)))
    return "\n".join(sorted(found))


@dataclass(frozen=True)
class Token:
    source: str  # "o" (a choice answer), "c" (case), "t" (comment)
    code: str  # the option's or the reason's code
    question: str = ""


def parse(tokens: str) -> list[Token]:
    parsed = []
    for item in tokens.split("\n") if tokens else ():
        parts = item.split("\t")
        if parts[0] == "o" and len(parts) == 3:
            parsed.append(Token("o", parts[2], parts[1]))
        elif len(parts) == 2:
            parsed.append(Token(parts[0], parts[1]))
    return parsed


# --------------------------------------------------------------------------- computing


@dataclass
class Group:
    """A token row's worth: answers of a survey and local day with one score and token set."""

    survey_id: int
    day: dt.date
    score: int
    tokens: str
    n: int
    anonymous: int
    customers: np.ndarray


@dataclass
class Respondents:
    """A respondents row's worth: a survey's answers of a local day, per score, and who."""

    survey_id: int
    day: dt.date
    histogram: list[int]
    anonymous: int
    customers: np.ndarray


@dataclass
class Computed:
    # (kind, entity id, survey id, day, score, tokens) -> [n, anonymous, {customer ids}]
    tokens: dict[tuple[Any, ...], list[Any]]
    # (kind, entity id, survey id, day) -> [histogram, anonymous, {customer ids}]
    respondents: dict[tuple[Any, ...], list[Any]]


def _annotated(qs: QuerySet[Response], zone: zoneinfo.ZoneInfo) -> QuerySet[Response]:
    return qs.annotate(reason_day=TruncDate("answered_at", tzinfo=zone))


def _codes(
    workspace: Workspace, qs: QuerySet[Response]
) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """The case reason codes and the comment codes of the answers in ``qs``."""
    from cxloop.cases.models import Case
    from cxloop.text.models import CommentReason

    case_codes: dict[int, set[str]] = defaultdict(set)
    for response_id, code in (
        Case.objects.filter(workspace=workspace, response__in=qs.values("pk"))
        .filter(reasons__isnull=False)
        .values_list("response_id", "reasons__code")
        .distinct()
    ):
        case_codes[response_id].add(code)
    text_codes: dict[int, set[str]] = defaultdict(set)
    for response_id, code in (
        CommentReason.objects.filter(comment__response__in=qs.values("pk"))
        .values_list("comment__response_id", "reason__code")
        .distinct()
    ):
        text_codes[response_id].add(code)
    return case_codes, text_codes


def compute(
    workspace: Workspace,
    qs: QuerySet[Response],
    zone: zoneinfo.ZoneInfo,
    kinds: Sequence[str] = REASON_KINDS,
    questions: Mapping[int, set[str]] | None = None,
    all_tokens: bool = True,
) -> Computed:
    """The rows of the scored answers in ``qs`` (this workspace's, scored and non-test):
    respondents per (kind, entity, survey, day), tokens per (…, score, tokens) for every score
    in kind ``all`` when ``all_tokens``, else (and in the other kinds) for detractor scores
    only (the survey's thresholds now)."""
    from cxloop.surveys.models import Survey

    from .rollups import thresholds

    case_codes, text_codes = _codes(workspace, qs)
    ids = set(qs.values_list("survey_id", flat=True).distinct().order_by())
    if questions is None:
        questions = {s.pk: choice_questions(s) for s in Survey.objects.filter(pk__in=ids)}
    cut = {pk: detractor_max for pk, (_p, detractor_max) in thresholds(ids).items()}
    columns = [REASON_COLUMN[k] for k in kinds if k in REASON_COLUMN]
    found = Computed({}, {})
    rows = _annotated(qs, zone).values_list(
        "pk", "survey_id", "reason_day", "score", "customer_id", "answers", *columns
    )
    for pk, survey_id, day, score, customer_id, answers, *placed in rows.iterator(chunk_size=5000):
        detractor = score <= cut.get(survey_id, 6)
        tokens = (
            tokens_of(
                answers, questions.get(survey_id, ()), case_codes.get(pk, ()),
                text_codes.get(pk, ()),
            )
            if detractor or all_tokens
            else ""
        )  # fmt: skip
        entity = dict(zip(columns, placed, strict=True))
        for kind in kinds:
            value = entity.get(REASON_COLUMN.get(kind, ""))
            who = found.respondents.get((kind, value, survey_id, day))
            if who is None:
                who = found.respondents[(kind, value, survey_id, day)] = [[0] * 11, 0, set()]
            who[0][score] += 1
            if customer_id is None:
                who[1] += 1
            else:
                who[2].add(customer_id)
            if not detractor and not (all_tokens and kind == "all"):
                continue
            key = (kind, value, survey_id, day, score, tokens)
            cell = found.tokens.get(key)
            if cell is None:
                cell = found.tokens[key] = [0, 0, set()]
            cell[0] += 1
            if customer_id is None:
                cell[1] += 1
            else:
                cell[2].add(customer_id)
    return found


def build(workspace: Workspace, qs: QuerySet[Response], zone: zoneinfo.ZoneInfo) -> int:
    """Insert the reason cells of the answers in ``qs``; how many."""
    found = compute(workspace, qs, zone)
    made = [
        ReasonCell(
            workspace_id=workspace.pk, survey_id=survey_id, day=day, kind=kind,
            entity_id=entity, score=None, n=sum(histogram), anonymous=anonymous,
            customers=pack(customers), histogram=histogram,
        )
        for (kind, entity, survey_id, day), (histogram, anonymous, customers)
        in found.respondents.items()
    ] + [
        ReasonCell(
            workspace_id=workspace.pk, survey_id=survey_id, day=day, kind=kind,
            entity_id=entity, score=score, tokens=tokens, n=n, anonymous=anonymous,
            customers=pack(customers),
        )
        for (kind, entity, survey_id, day, score, tokens), (n, anonymous, customers)
        in found.tokens.items()
    ]  # fmt: skip
    bulk.insert(ReasonCell, made, batch_size=CREATE_BATCH)
    return len(made)


def _array(ids: Iterable[int]) -> np.ndarray:
    return np.fromiter(ids, dtype=np.int64)


def groups(
    workspace: Workspace,
    qs: QuerySet[Response],
    zone: zoneinfo.ZoneInfo,
    questions: Mapping[int, set[str]] | None = None,
) -> tuple[list[Respondents], list[Group]]:
    """The raw answers of ``qs`` as the pain map reads the cells: the respondents per survey
    (counted by the database; their ``day`` is meaningless) and the detractors' token groups
    (only they are read one by one)."""
    from .rollups import thresholds

    ids = sorted(set(qs.values_list("survey_id", flat=True).distinct().order_by()))
    if not ids:
        return [], []
    cuts = thresholds(ids)
    histograms: dict[int, list[int]] = {pk: [0] * 11 for pk in ids}
    anonymous: dict[int, int] = defaultdict(int)
    for row in (
        qs.values("survey_id", "score")
        .annotate(n=Count("pk"), anonymous=Count("pk", filter=Q(customer__isnull=True)))
        .order_by()
    ):
        histograms[row["survey_id"]][row["score"]] += row["n"]
        anonymous[row["survey_id"]] += row["anonymous"]
    customers = _array(
        qs.filter(customer__isnull=False)
        .values_list("customer_id", flat=True)
        .distinct()
        .order_by()
    )
    day = dt.date.min
    respondents = [
        Respondents(pk, day, histograms[pk], anonymous[pk], customers if i == 0 else _EMPTY)
        for i, pk in enumerate(ids)
    ]
    detractor_q = Q()
    for survey_id, (_promoter_min, detractor_max) in cuts.items():
        detractor_q |= Q(survey_id=survey_id, score__lte=detractor_max)
    found = compute(workspace, qs.filter(detractor_q), zone, ("all",), questions)
    return respondents, [
        Group(survey_id, day, score, tokens, n, anonymous, _array(customers))
        for (_k, _e, survey_id, day, score, tokens), (n, anonymous, customers)
        in found.tokens.items()
    ]  # fmt: skip


def dirty_days(
    survey_ids: Sequence[int], first: dt.date | None, last: dt.date | None
) -> list[dt.date]:
    """The days of [first, last) whose reason cells are not current (any of these surveys)."""
    from .rollups import marked_days

    return marked_days(ReasonDirtyDay, survey_ids, first, last)


def _cells(
    survey_ids: Sequence[int],
    kind: str,
    entity_ids: Sequence[int] | None,
    first: dt.date | None,
    last: dt.date | None,
    skip: Sequence[dt.date],
) -> QuerySet[ReasonCell]:
    qs = ReasonCell.objects.filter(survey_id__in=list(survey_ids), kind=kind)
    if entity_ids is not None:
        qs = qs.filter(entity_id__in=list(entity_ids))
    if first is not None:
        qs = qs.filter(day__gte=first)
    if last is not None:
        qs = qs.filter(day__lt=last)
    if skip:
        qs = qs.exclude(day__in=list(skip))
    return qs


# Customer sets already decoded, by cell (id, answers, anonymous): a cell is never updated (a day
# recomputed gets new rows, new ids; the counts guard against an id SQLite hands out again after
# a rollback), so a set read once serves every later request of this process. Bounded in bytes
# (``REASON_SETS_BYTES``), least recently used first out.
REASON_SETS_BYTES = 96 * 1024 * 1024
_decoded: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
_decoded_bytes = 0
_decoded_lock = threading.Lock()
BLOB_BATCH = 2000


def _remember(key: tuple[int, int, int], values: np.ndarray) -> None:
    global _decoded_bytes
    with _decoded_lock:
        if key in _decoded:
            return
        _decoded[key] = values
        _decoded_bytes += values.nbytes
        while _decoded_bytes > REASON_SETS_BYTES and _decoded:
            _old, dropped = _decoded.popitem(last=False)
            _decoded_bytes -= dropped.nbytes


def forget_sets() -> None:
    """Empty the decoded sets (tests; the cache is only an optimisation)."""
    global _decoded_bytes
    with _decoded_lock:
        _decoded.clear()
        _decoded_bytes = 0


def customer_sets(keys: Sequence[tuple[int, int, int]]) -> dict[int, np.ndarray]:
    """{cell id: its decoded customer set} of these cells' (id, n, anonymous): from the
    process's cache, the rest read from the database."""
    found: dict[int, np.ndarray] = {}
    with _decoded_lock:
        for key in keys:
            values = _decoded.get(key)
            if values is not None:
                _decoded.move_to_end(key)
                found[key[0]] = values
    missing = {key[0]: key for key in keys if key[0] not in found}
    ids = list(missing)
    for start in range(0, len(ids), BLOB_BATCH):
        batch = ids[start : start + BLOB_BATCH]
        for pk, blob in ReasonCell.objects.filter(pk__in=batch).values_list("pk", "customers"):
            values = unpack(blob)
            values.flags.writeable = False  # shared between requests
            _remember(missing[pk], values)
            found[pk] = values
    return found


def stored(
    survey_ids: Sequence[int],
    kind: str,
    entity_ids: Sequence[int] | None,
    first: dt.date | None,
    last: dt.date | None,
    skip: Sequence[dt.date] = (),
    cuts: Mapping[int, int] | None = None,
) -> tuple[list[Respondents], list[Group]]:
    """The stored rows of these surveys and kind (entities) on the days [first, last) but
    ``skip``; token rows only for scores at or below ``cuts`` (survey id -> detractor max)."""
    qs = _cells(survey_ids, kind, entity_ids, first, last, skip)
    if cuts:
        qs = qs.filter(score__lte=max(cuts.values())) | qs.filter(score__isnull=True)
    rows = list(
        qs.values_list(
            "pk", "survey_id", "day", "score", "tokens", "n", "anonymous", "histogram"
        ).order_by()
    )
    sets = customer_sets([(row[0], row[5], row[6]) for row in rows])
    respondents: list[Respondents] = []
    found: list[Group] = []
    for pk, survey_id, day, score, tokens, n, anonymous, histogram in rows:
        if score is None:
            counts = [int(c) for c in histogram or ()]
            respondents.append(Respondents(survey_id, day, counts, anonymous, sets[pk]))
        else:
            found.append(Group(survey_id, day, score, tokens, n, anonymous, sets[pk]))
    return respondents, found


def patterns(
    survey_ids: Sequence[int],
    first: dt.date | None,
    last: dt.date | None,
    skip: Sequence[dt.date] = (),
) -> list[tuple[int, int, str, int]]:
    """(survey id, score, tokens, answers) over the days [first, last) but ``skip``, summed in
    SQL from the token rows of kind ``all``."""
    qs = _cells(survey_ids, "all", None, first, last, skip).filter(score__isnull=False)
    return [
        (row["survey_id"], row["score"], row["tokens"], row["total"])
        for row in qs.values("survey_id", "score", "tokens").annotate(total=Sum("n")).order_by()
    ]


def day_ranges(
    days: Sequence[dt.date], zone: zoneinfo.ZoneInfo
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Consecutive local days joined into [start, end) ranges of aware datetimes."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + dt.timedelta(days=1))
        else:
            ranges.append((day, day + dt.timedelta(days=1)))
    return [
        (
            dt.datetime.combine(a, dt.time(), tzinfo=zone),
            dt.datetime.combine(b, dt.time(), tzinfo=zone),
        )
        for a, b in ranges
    ]


def refresh(workspace: Workspace | None = None, limit: int = 200) -> int:
    """Recompute up to ``limit`` dirty reason days (the heartbeat); how many were."""
    from . import rollups

    dirty = ReasonDirtyDay.objects.order_by("marked_at")
    if workspace is not None:
        dirty = dirty.filter(workspace_id=workspace.pk)
    cache: dict[int, Workspace | None] = {}
    done = 0
    for mark in list(dirty[:limit]):
        if mark.workspace_id not in cache:
            cache[mark.workspace_id] = Workspace.objects.filter(pk=mark.workspace_id).first()
        owner = cache[mark.workspace_id]
        with transaction.atomic():
            if not rollups.claim(ReasonDirtyDay, mark):
                continue  # another process recomputes it (or did)
            ReasonCell.objects.filter(survey_id=mark.survey_id, day=mark.day).delete()
            survey = Survey.objects.filter(pk=mark.survey_id).first()
            if owner is not None and survey is not None and rollups.is_nps(survey):
                build(owner, rollups.day_answers(owner, survey.pk, mark.day), rollups.tz_of(owner))
            ReasonDirtyDay.objects.filter(pk=mark.pk, token=mark.token).delete()
        done += 1
    return done


# --------------------------------------------------------------------------- marking


def mark_days(items: Iterable[tuple[int, int, dt.date]]) -> None:
    """Mark (workspace id, survey id, local day) triples' reason cells dirty (``rollups.mark_days``
    marks both; a change of thresholds only these)."""
    now = clock.now()
    rows = {
        (survey_id, day): ReasonDirtyDay(
            workspace_id=workspace_id, survey_id=survey_id, day=day,
            token=secrets.token_hex(8), marked_at=now,
        )
        for workspace_id, survey_id, day in items
    }  # fmt: skip
    if rows:
        ReasonDirtyDay.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["survey_id", "day"],
            update_fields=["token", "marked_at"],
        )


def mark_survey(survey_id: int) -> None:
    """Mark every day of a survey that has cells (its thresholds changed)."""
    from .models import DailyCell

    mark_days(
        DailyCell.objects.filter(survey_id=survey_id, kind="all")
        .values_list("workspace_id", "survey_id", "day")
        .distinct()
    )


def mark_response_ids(ids: Iterable[int | None]) -> None:
    """Mark the days of these responses dirty (a case's or a comment's reasons changed)."""
    from . import rollups

    wanted = {pk for pk in ids if pk is not None}
    if wanted:
        rollups.mark_responses(
            list(
                Response.objects.filter(pk__in=wanted).only(
                    "pk", "workspace_id", "survey_id", "answered_at"
                )
            )
        )


def mark_comments(comment_ids: Iterable[int]) -> None:
    """Mark the days of the responses of these comments dirty: call after changing their
    ``CommentReason`` rows in bulk (``bulk_create`` and ``update`` send no signal)."""
    from cxloop.text.models import Comment

    mark_response_ids(
        Comment.objects.filter(pk__in=list(comment_ids), response__isnull=False).values_list(
            "response_id", flat=True
        )
    )


def reconcile(now: dt.datetime | None = None) -> int:
    """Mark the days of the comments analysed since the last call; how many comments."""
    from cxloop.text.models import Comment

    now = now or clock.now()
    mark = ReasonWatermark.objects.order_by("pk").first()
    if mark is None:
        ReasonWatermark.objects.create(checked_at=now)
        return 0  # the first heartbeat: the rebuild that follows a deployment reads all
    ids = list(
        Comment.objects.filter(
            analysed_at__gte=mark.checked_at, analysed_at__lte=now, response__isnull=False
        ).values_list("response_id", flat=True)
    )
    mark_response_ids(ids)
    ReasonWatermark.objects.filter(pk=mark.pk).update(checked_at=now)
    return len(ids)
