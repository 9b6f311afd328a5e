"""The pain map: why detractors are unhappy, ranked, with what fixing each reason is worth.

Definitions (``docs/pain-map.md`` has them with a worked example):

* **responses**: the scored, non-test answers of the NPS survey(s) in [since, until), after the
  filters; **detractors**: those scoring at or below their survey's detractor threshold
  (``analytics.NpsThresholds``, 6 by default).
* A detractor **cites** a reason when the case opened for their answer carries the reason code
  (the root cause a supervisor recorded on the call-back) **or** they ticked an option of that
  code in a single/multiple choice question of the survey. A ``ReasonCode`` whose code equals
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
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils.translation import get_language

from cxloop.accounts.models import Workspace
from cxloop.cases.models import Case, ReasonCode
from cxloop.customers.models import Customer
from cxloop.surveys.definition import texts_for
from cxloop.surveys.models import Response, Survey
from cxloop.surveys.render import definition_of

from . import rollups
from .queries import QueryError
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


def _ticked(answers: Any, questions: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The option codes ticked in the choice questions (unknown codes ignored)."""
    ticked: set[str] = set()
    if not isinstance(answers, dict):
        return ticked
    for code, options in questions.items():
        value = answers.get(code)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        ticked.update(v for v in values if isinstance(v, str) and v in options)
    return ticked


# --------------------------------------------------------------------------- the map


def pain_map(query: PainQuery) -> PainMap:
    """The reasons detractors cite in the period, ranked by the share of detractors citing."""
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
    qs = scored_responses(workspace, survey_ids, query.since, query.until, query.filters)
    detractor_q = Q()
    promoter_q = Q()
    for survey_id, (promoter_min, detractor_max) in cuts.items():
        detractor_q |= Q(survey_id=survey_id, score__lte=detractor_max)
        promoter_q |= Q(survey_id=survey_id, score__gte=promoter_min)
    totals = qs.aggregate(
        n=Count("pk"),
        promoters=Count("pk", filter=promoter_q),
        detractors=Count("pk", filter=detractor_q),
        customers=Count("customer_id", distinct=True),
        anonymous=Count("pk", filter=Q(customer__isnull=True)),
    )
    n = totals["n"]
    respondents = totals["customers"] + totals["anonymous"]
    detractors_qs = qs.filter(detractor_q)

    language = (get_language() or "en")[:2]
    options = {s.pk: choice_options(s, language) for s in surveys}
    case_codes: dict[int, set[str]] = defaultdict(set)
    for response_id, code in (
        Case.objects.filter(
            workspace=workspace,
            response__in=detractors_qs.values("pk"),
            reasons__isnull=False,
        )
        .values_list("response_id", "reasons__code")
        .distinct()
    ):
        case_codes[response_id].add(code)

    zone = rollups.tz_of(workspace)
    cited_by: dict[str, set[int]] = defaultdict(set)
    who: dict[str, set[Any]] = defaultdict(set)
    per_period: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    starts: dict[str, dt.date] = {}
    detractor_periods: dict[str, int] = defaultdict(int)
    citing_periods: dict[str, int] = defaultdict(int)
    option_labels: dict[str, str] = {}
    detractors = 0
    rows = detractors_qs.values_list("pk", "survey_id", "customer_id", "answered_at", "answers")
    for pk, survey_id, customer_id, answered_at, answers in rows.iterator(chunk_size=5000):
        detractors += 1
        questions = options.get(survey_id, {})
        ticked = _ticked(answers, questions)
        for question in questions.values():
            for code in ticked & question.keys():
                option_labels.setdefault(code, question[code])
        codes = case_codes.get(pk, set()) | ticked
        period, start = period_of(answered_at, query.every, zone)
        starts[period] = start
        detractor_periods[period] += 1
        if codes:
            citing_periods[period] += 1
        respondent = customer_id if customer_id is not None else f"response:{pk}"
        for code in codes:
            cited_by[code].add(pk)
            who[code].add(respondent)
            per_period[code][period] += 1

    taxonomy = {
        rc.code: rc
        for rc in ReasonCode.objects.filter(workspace=workspace, code__in=list(cited_by))
    }
    customers = Customer.objects.filter(workspace=workspace).count()
    can_scale = query.extrapolate and respondents > 0 and customers >= respondents

    def label(code: str) -> str:
        if code in taxonomy:
            return taxonomy[code].label(language)
        return option_labels.get(code, code)

    ranked = sorted(cited_by, key=lambda code: (-len(cited_by[code]), label(code).lower(), code))
    order = sorted(starts, key=lambda p: starts[p])
    covered: set[int] = set()
    reasons: list[Reason] = []
    for code in ranked:
        citing = len(cited_by[code])
        covered |= cited_by[code]
        low, high = wilson_interval(citing, detractors, query.confidence)
        reasons.append(
            Reason(
                code=code,
                label=label(code),
                source="reason_code" if code in taxonomy else "option",
                citing=citing,
                share=citing / detractors,
                share_low=low,
                share_high=high,
                cumulative=len(covered) / detractors,
                nps_gain=100.0 * citing / n,
                cumulative_gain=100.0 * len(covered) / n,
                respondents=len(who[code]),
                extrapolation=(
                    extrapolate(len(who[code]), respondents, customers, query.confidence)
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
        promoters=totals["promoters"],
        detractors=detractors,
        citing_any=len(covered),
        respondents=respondents,
        customers=customers,
        confidence=query.confidence,
        every=query.every,
        periods=[TrendPoint(p, starts[p], detractor_periods[p], citing_periods[p]) for p in order],
        reasons=reasons,
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
