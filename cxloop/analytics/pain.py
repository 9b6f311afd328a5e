"""The pain map: why detractors are unhappy, ranked, with what fixing each reason is worth.

Definitions (``docs/pain-map.md`` has them with a worked example):

* **responses**: the scored, non-test answers of the NPS survey(s) in [since, until), after the
  filters; **detractors**: those scoring at or below their survey's detractor threshold
  (``analytics.NpsThresholds``, 6 by default).
* A detractor **cites** a reason when the case opened for their answer carries the reason code
  (the root cause a supervisor recorded on the call-back), **or** their comment was coded with
  it (text analytics: a model, an analyst or the call-back, ``text.CommentReason``), **or** they
  ticked an option of that code in a single/multiple choice question of the survey. A ``ReasonCode`` whose code equals
  an option code is the same reason: it counts once per detractor, however many ways it is
  cited. An option without a ``ReasonCode`` shows by the option's text.
* **share** = citing / detractors (with its Wilson interval); the reasons are ranked by it
  (Pareto). A detractor may cite several reasons, so the shares add up to more than 100 %;
  **cumulative** is therefore the share of detractors citing *at least one* of the reasons
  ranked so far (the coverage of fixing the top k), never above 100 %.
* **NPS gain** = 100 x citing / responses: the points the NPS would rise if the detractors
  citing the reason became passives (and nobody else changed); **cumulative gain** likewise for
  the detractors covered by the reasons so far.
* **trend**: the share per ISO week or calendar month (workspace's time zone).
* **customers affected**: respondents are counted once each (a customer by their record, an
  anonymous answer on its own); the share of respondents with a detractor answer citing the
  reason, times the number of customers in the workspace, with the Wilson interval scaled alike
  (``stats.extrapolate``). Left out (``None``) when asked not to, or when there are fewer
  customers on record than respondents (anonymous answers), where the scaling means nothing.

Computed from the reason cells (``reasons.py``: per survey, local day and score, the answers
sharing the same reason tokens, with their customers) for whole local days whose cells are
current, from the raw answers for the rest; both give the same numbers (``cells=False`` reads
the raw answers only). ``docs/pain-map.md`` says how the cells are kept current.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import QuerySet
from django.utils.translation import get_language

from cxloop.accounts.models import Workspace
from cxloop.cases.models import ReasonCode
from cxloop.customers.models import Customer
from cxloop.surveys.definition import texts_for
from cxloop.surveys.models import Response, Survey
from cxloop.surveys.render import definition_of

from . import reasons, rollups
from .queries import QueryError, _midnight, _whole_days
from .stats import Extrapolation, extrapolate, wilson_interval

__all__ = [
    "EVERY",
    "FILTERS",
    "PainMap",
    "PainQuery",
    "Reason",
    "TrendPoint",
    "choice_options",
    "pain_map",
    "payload",
    "period_of",
    "scored_responses",
]

EVERY = ("week", "month")
# Filter name -> the response's lookup of the code.
FILTERS: dict[str, str] = {
    "region": "branch__region__code",
    "branch": "branch__code",
    "employee": "employee__code",
    "product": "product__code",
}


@dataclass(frozen=True)
class PainQuery:
    workspace: Workspace
    survey: Survey | None = None  # None: every NPS survey of the workspace
    since: dt.datetime | None = None  # aware, inclusive
    until: dt.datetime | None = None  # aware, exclusive
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)  # FILTERS: codes
    every: str = "week"
    confidence: float = 0.95
    extrapolate: bool = True


@dataclass(frozen=True)
class TrendPoint:
    period: str  # "2025-W10" or "2025-03"
    start: dt.date
    detractors: int
    citing: int

    @property
    def share(self) -> float | None:
        return self.citing / self.detractors if self.detractors else None


@dataclass(frozen=True)
class Reason:
    code: str
    label: str
    source: str  # "reason_code": in the taxonomy; "option": a survey option only
    citing: int  # detractors citing it
    share: float  # citing / detractors, 0..1
    share_low: float
    share_high: float
    cumulative: float  # detractors citing this or a reason ranked above, / detractors
    nps_gain: float  # 100 * citing / responses, points
    cumulative_gain: float
    respondents: int  # distinct respondents citing it
    extrapolation: Extrapolation | None
    trend: list[TrendPoint]


@dataclass(frozen=True)
class PainMap:
    responses: int
    promoters: int
    detractors: int
    citing_any: int  # detractors citing at least one reason
    respondents: int  # distinct respondents (customers; anonymous answers one each)
    customers: int  # customers on record in the workspace
    confidence: float
    every: str
    periods: list[TrendPoint]  # detractors per period (citing: those citing any reason)
    reasons: list[Reason]

    @property
    def nps(self) -> float | None:
        if not self.responses:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.responses


# --------------------------------------------------------------------------- helpers


def _validate(query: PainQuery) -> None:
    for name in ("since", "until"):
        value = getattr(query, name)
        if value is not None and value.tzinfo is None:
            raise QueryError(name, f"{name} needs a time-zone offset")
    if query.since and query.until and query.since >= query.until:
        raise QueryError("until", "until must be after since")
    if query.every not in EVERY:
        raise QueryError("every", f"every must be one of {', '.join(EVERY)}")
    if not 0.0 < query.confidence < 1.0:
        raise QueryError("confidence", "confidence must lie strictly between 0 and 1")
    for name in query.filters:
        if name not in FILTERS:
            raise QueryError(name, f"cannot filter by {name!r}; one of {', '.join(FILTERS)}")
    if query.survey is not None:
        if query.survey.workspace_id != query.workspace.pk:
            raise QueryError("survey", "no such survey in this workspace")
        if not rollups.is_nps(query.survey):
            raise QueryError("survey", f"survey {query.survey.code!r} is not an NPS survey")


def period_of(moment: dt.datetime, every: str, zone: dt.tzinfo) -> tuple[str, dt.date]:
    """The week ("2025-W10", its Monday) or month ("2025-03", its 1st) of a moment, locally."""
    local = moment.astimezone(zone)
    if every == "month":
        return f"{local.year:04d}-{local.month:02d}", dt.date(local.year, local.month, 1)
    year, week, _ = local.isocalendar()
    return f"{year:04d}-W{week:02d}", dt.date.fromisocalendar(year, week, 1)


def scored_responses(
    workspace: Workspace,
    survey_ids: Sequence[int],
    since: dt.datetime | None,
    until: dt.datetime | None,
    filters: Mapping[str, Sequence[str]] | None = None,
) -> QuerySet[Response]:
    """The scored, non-test answers of these surveys in [since, until), filtered by codes."""
    qs = Response.objects.filter(
        workspace=workspace, survey_id__in=list(survey_ids), is_test=False, score__isnull=False
    )
    if since is not None:
        qs = qs.filter(answered_at__gte=since)
    if until is not None:
        qs = qs.filter(answered_at__lt=until)
    for name, codes in (filters or {}).items():
        qs = qs.filter(**{f"{FILTERS[name]}__in": [str(c) for c in codes]})
    return qs


def choice_options(survey: Survey, language: str) -> dict[str, dict[str, str]]:
    """{question code: {option code: option text}} of the survey's single/multiple questions."""
    try:
        definition = definition_of(survey)
    except Exception:  # an invalid definition has no questions to read
        return {}
    return {
        question.code: {
            option.code: texts_for(option.text, language, definition.default_language)
            for option in question.options
        }
        for question in definition.questions
        if question.type in ("single", "multiple")
    }


# --------------------------------------------------------------------------- the map


def period_of_day(day: dt.date, every: str) -> tuple[str, dt.date]:
    """``period_of`` for a local day."""
    if every == "month":
        return f"{day.year:04d}-{day.month:02d}", dt.date(day.year, day.month, 1)
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}", dt.date.fromisocalendar(year, week, 1)


def _cell_plan(query: PainQuery) -> tuple[str, list[int] | None] | None:
    """(reason-cell kind, entity ids or None for all) answering the filters, or None when
    they span two kinds (the raw answers are read then)."""
    from cxloop.organisation.models import Branch, Employee, Product

    kinds = {"branch" if name == "region" else name for name in query.filters}
    if not kinds:
        return "all", None
    if len(kinds) > 1:
        return None
    kind = kinds.pop()
    codes = {name: [str(c) for c in values] for name, values in query.filters.items()}
    # No workspace filter: the raw answers are matched by code alone, and the cells read are
    # this workspace's surveys' anyway.
    if kind == "branch":
        branches = Branch.objects.all()
        if "branch" in codes:
            branches = branches.filter(code__in=codes["branch"])
        if "region" in codes:
            branches = branches.filter(region__code__in=codes["region"])
        return kind, list(branches.values_list("pk", flat=True))
    model = Employee if kind == "employee" else Product
    return kind, list(model.objects.filter(code__in=codes[kind]).values_list("pk", flat=True))


def _groups(
    query: PainQuery,
    surveys: Sequence[Survey],
    zone: Any,
    cuts: Mapping[int, int],
    *,
    cells: bool = True,
) -> tuple[list[reasons.Respondents], list[reasons.Group]]:
    """The period's respondents per (survey, local day) and its detractors grouped by (survey,
    local day, score, reason tokens): from the reason cells for whole local days whose cells
    are current, from the raw answers for the rest."""
    workspace = query.workspace
    survey_ids = [s.pk for s in surveys]
    questions = {s.pk: reasons.choice_questions(s) for s in surveys}
    respondents: list[reasons.Respondents] = []
    found: list[reasons.Group] = []

    def raw(since: dt.datetime | None, until: dt.datetime | None) -> None:
        qs = scored_responses(workspace, survey_ids, since, until, query.filters)
        who, groups = reasons.groups(workspace, qs, zone, questions)
        respondents.extend(who)
        found.extend(groups)

    plan = _cell_plan(query) if cells else None
    if plan is not None:
        rollups.prepare(workspace)  # a small workspace never rolled up is built now
    if plan is None or not rollups.is_built(workspace):
        raw(query.since, query.until)
        return respondents, found
    first, last = _whole_days(query.since, query.until, zone)
    if first is not None and last is not None and first >= last:
        raw(query.since, query.until)
        return respondents, found
    dirty = reasons.dirty_days(survey_ids, first, last)
    who, groups = reasons.stored(survey_ids, plan[0], plan[1], first, last, dirty, cuts)
    respondents.extend(who)
    found.extend(groups)
    for start, end in reasons.day_ranges(dirty, zone):
        raw(start, end)
    if first is not None and query.since is not None and _midnight(first, zone) > query.since:
        raw(query.since, _midnight(first, zone))
    if last is not None and query.until is not None and _midnight(last, zone) < query.until:
        raw(_midnight(last, zone), query.until)
    return respondents, found


def _by_period(
    groups: Sequence[reasons.Group], every: str, cuts: Mapping[int, tuple[int, int]]
) -> list[reasons.Group]:
    """The detractors' groups merged per (survey, period, score, tokens), dated by the period's
    first day, in that order: the map counts per period, and a quarter of days' worth of
    groups becomes a dozen weeks' worth."""
    starts: dict[dt.date, dt.date] = {}
    merged: dict[tuple[int, dt.date, int, str], list[Any]] = {}
    for group in groups:
        if group.score > cuts[group.survey_id][1]:
            continue
        start = starts.get(group.day)
        if start is None:
            start = starts[group.day] = period_of_day(group.day, every)[1]
        key = (group.survey_id, start, group.score, group.tokens)
        found = merged.get(key)
        if found is None:
            merged[key] = [group.n, group.anonymous, [group.customers]]
        else:
            found[0] += group.n
            found[1] += group.anonymous
            found[2].append(group.customers)
    return [
        reasons.Group(
            survey_id, start, score, tokens, n, anonymous,
            parts[0] if len(parts) == 1 else np.concatenate(parts),
        )
        for (survey_id, start, score, tokens), (n, anonymous, parts) in sorted(
            merged.items(), key=lambda item: (item[0][1], item[0][0], item[0][2], item[0][3])
        )
    ]  # fmt: skip


def pain_map(query: PainQuery, *, cells: bool = True) -> PainMap:
    """The reasons detractors cite in the period, ranked by the share of detractors citing.

    Read from the reason cells (``reasons.py``) for whole local days when they are current
    and the filters lie along one dimension; ``cells=False`` reads the raw answers (the same
    numbers, for tests and comparisons)."""
    _validate(query)
    workspace = query.workspace
    surveys = (
        [query.survey]
        if query.survey is not None
        else [
            s
            for s in Survey.objects.filter(workspace=workspace).order_by("pk")
            if rollups.is_nps(s)
        ]
    )
    survey_ids = [s.pk for s in surveys]
    if not survey_ids:
        return PainMap(0, 0, 0, 0, 0, 0, query.confidence, query.every, [], [])
    cuts = rollups.thresholds(survey_ids)
    zone = rollups.tz_of(workspace)
    who, groups = _groups(
        query, surveys, zone, {pk: cut[1] for pk, cut in cuts.items()}, cells=cells
    )
    language = (get_language() or "en")[:2]
    options = {s.pk: choice_options(s, language) for s in surveys}

    n = sum(sum(r.histogram) for r in who)
    promoters = sum(sum(r.histogram[cuts[r.survey_id][0] :]) for r in who)
    respondents = reasons.count_distinct([r.customers for r in who]) + sum(r.anonymous for r in who)
    # Each detractor group's codes: a choice answer counts when it is an option of the question
    # (the survey's current definition); case and comment codes always.
    cited: list[tuple[reasons.Group, set[str]]] = []
    option_labels: dict[str, str] = {}
    parsed: dict[str, list[reasons.Token]] = {}
    for group in _by_period(groups, query.every, cuts):
        questions = options.get(group.survey_id, {})
        codes: set[str] = set()
        ticked: set[str] = set()
        tokens = parsed.get(group.tokens)
        if tokens is None:
            tokens = parsed[group.tokens] = reasons.parse(group.tokens)
        for token in tokens:
            if token.source != "o":
                codes.add(token.code)
            elif token.code in questions.get(token.question, {}):
                ticked.add(token.code)
        for question in questions.values():
            for code in ticked & question.keys():
                option_labels.setdefault(code, question[code])
        cited.append((group, codes | ticked))

    citing_by: dict[str, int] = defaultdict(int)
    members: dict[str, list[int]] = defaultdict(list)  # code -> indexes into ``cited``
    per_period: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    starts: dict[str, dt.date] = {}
    detractor_periods: dict[str, int] = defaultdict(int)
    citing_periods: dict[str, int] = defaultdict(int)
    detractors = 0
    for i, (group, codes) in enumerate(cited):
        detractors += group.n
        period, start = period_of_day(group.day, query.every)
        starts[period] = start
        detractor_periods[period] += group.n
        if codes:
            citing_periods[period] += group.n
        for code in codes:
            citing_by[code] += group.n
            members[code].append(i)
            per_period[code][period] += group.n

    taxonomy = {
        rc.code: rc
        for rc in ReasonCode.objects.filter(workspace=workspace, code__in=list(citing_by))
    }
    customers = Customer.objects.filter(workspace=workspace).count()
    can_scale = query.extrapolate and respondents > 0 and customers >= respondents

    def label(code: str) -> str:
        if code in taxonomy:
            return taxonomy[code].label(language)
        return option_labels.get(code, code)

    def affected_by(code: str) -> int:
        found = [cited[i][0] for i in members[code]]
        return reasons.count_distinct([g.customers for g in found]) + sum(
            g.anonymous for g in found
        )

    ranked = sorted(citing_by, key=lambda code: (-citing_by[code], label(code).lower(), code))
    order = sorted(starts, key=lambda p: starts[p])
    covered_groups: set[int] = set()
    covered = 0
    reasons_out: list[Reason] = []
    for code in ranked:
        citing = citing_by[code]
        for i in members[code]:
            if i not in covered_groups:
                covered_groups.add(i)
                covered += cited[i][0].n
        low, high = wilson_interval(citing, detractors, query.confidence)
        affected = affected_by(code)
        reasons_out.append(
            Reason(
                code=code,
                label=label(code),
                source="reason_code" if code in taxonomy else "option",
                citing=citing,
                share=citing / detractors,
                share_low=low,
                share_high=high,
                cumulative=covered / detractors,
                nps_gain=100.0 * citing / n,
                cumulative_gain=100.0 * covered / n,
                respondents=affected,
                extrapolation=(
                    extrapolate(affected, respondents, customers, query.confidence)
                    if can_scale
                    else None
                ),
                trend=[
                    TrendPoint(p, starts[p], detractor_periods[p], per_period[code].get(p, 0))
                    for p in order
                ],
            )
        )
    return PainMap(
        responses=n,
        promoters=promoters,
        detractors=detractors,
        citing_any=covered,
        respondents=respondents,
        customers=customers,
        confidence=query.confidence,
        every=query.every,
        periods=[TrendPoint(p, starts[p], detractor_periods[p], citing_periods[p]) for p in order],
        reasons=reasons_out,
    )


# --------------------------------------------------------------------------- JSON


def _extrapolation(value: Extrapolation | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "respondents": value.successes,
        "of_respondents": value.n,
        "customers": value.population,
        "share": value.share,
        "estimate": value.estimate,
        "low": value.low,
        "high": value.high,
    }


def _trend(point: TrendPoint) -> dict[str, Any]:
    return {
        "period": point.period,
        "start": point.start.isoformat(),
        "detractors": point.detractors,
        "citing": point.citing,
        "share": point.share,
    }


def payload(result: PainMap) -> dict[str, Any]:
    """The API's JSON (``docs/pain-map.md``)."""
    return {
        "confidence": result.confidence,
        "every": result.every,
        "responses": result.responses,
        "detractors": result.detractors,
        "nps": result.nps,
        "citing_any": result.citing_any,
        "respondents": result.respondents,
        "customers": result.customers,
        "periods": [_trend(p) for p in result.periods],
        "reasons": [
            {
                "code": r.code,
                "label": r.label,
                "source": r.source,
                "citing": r.citing,
                "share": r.share,
                "share_low": r.share_low,
                "share_high": r.share_high,
                "cumulative": r.cumulative,
                "nps_gain": r.nps_gain,
                "cumulative_gain": r.cumulative_gain,
                "affected": _extrapolation(r.extrapolation),
                "trend": [_trend(p) for p in r.trend],
            }
            for r in result.reasons
        ],
    }
