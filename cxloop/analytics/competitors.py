"""Our NPS against the competitors' NPS, from surveys with a competitors question.

A competitors question's answer is ``{"uses": [names], "scores": {name: 0-10}}``: the other
providers the respondent also uses, and how likely they are to recommend each. From the scored,
non-test answers of the survey(s) in [since, until):

* **our NPS**: the respondents' own score (the survey's score question), every respondent;
* **a competitor's NPS**: the scores given to that competitor, by those who scored it; both
  classified with the survey's thresholds (``analytics.NpsThresholds``, 9 / 6 by default) and
  given with the adjusted-Wald interval (``stats.nps_interval``);
* **difference** = our NPS - the competitor's (positive: we are ahead), tested by the
  adjusted-Wald z-test of ``stats.nps_difference``.

That test assumes two *independent* samples. Here the competitor's raters are among our
respondents, so the samples overlap, and a respondent's two scores tend to move together; the
independent test is what the issue asks for and is kept as the headline. Beside it, ``paired``
gives the test that uses the overlap: among the respondents who scored both, each answer is
coded +1 promoter / 0 passive / -1 detractor for us and for the competitor; the NPS difference
is 100 x the mean of (ours - theirs) and t = mean / (sd / sqrt(n)) with the sample sd (n - 1),
two-sided p from Student's t with n - 1 degrees of freedom (the paired t-test of the
per-respondent differences). Where the two scores are positively correlated it is the sharper
(and the appropriate) test.
``docs/pain-map.md`` has the formulas.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

from cxloop.accounts.models import Workspace
from cxloop.surveys.models import Response, Survey, SurveyKind
from cxloop.surveys.render import definition_of

from . import rollups
from .queries import QueryError, stats_payload
from .stats import Difference, NpsStats, nps_difference, nps_interval

__all__ = [
    "Comparison",
    "Competitor",
    "CompetitorQuery",
    "Paired",
    "compare",
    "competitor_question",
    "competitor_surveys",
    "payload",
]


@dataclass(frozen=True)
class CompetitorQuery:
    workspace: Workspace
    survey: Survey | None = None  # None: every relationship survey with a competitors question
    since: dt.datetime | None = None  # aware, inclusive
    until: dt.datetime | None = None  # aware, exclusive
    confidence: float = 0.95


@dataclass(frozen=True)
class Paired:
    """Among the ``n`` respondents who scored both: our NPS, theirs, and the paired t-test
    (``t`` on ``n - 1`` degrees of freedom)."""

    n: int
    ours: float | None
    theirs: float | None
    diff: float | None
    t: float | None
    p_two_sided: float | None


@dataclass(frozen=True)
class Competitor:
    name: str
    users: int  # respondents who said they use it
    stats: NpsStats  # the scores given to it
    difference: Difference  # ours - theirs, independent samples
    paired: Paired


@dataclass(frozen=True)
class Comparison:
    ours: NpsStats
    competitors: list[Competitor]
    confidence: float
    surveys: list[str]  # codes of the surveys read


def competitor_question(survey: Survey) -> tuple[str, list[str]] | None:
    """(question code, competitor names) of an NPS survey's competitors question, else None."""
    try:
        definition = definition_of(survey)
    except Exception:  # an invalid definition has no questions to read
        return None
    if definition.score_question.type != "nps":
        return None
    question = next((q for q in definition.questions if q.type == "competitors"), None)
    return None if question is None else (question.code, list(question.competitors))


def competitor_surveys(workspace: Workspace) -> list[Survey]:
    """The workspace's relationship NPS surveys with a competitors question."""
    return [
        survey
        for survey in Survey.objects.filter(
            workspace=workspace, kind=SurveyKind.RELATIONSHIP
        ).order_by("name", "code")
        if competitor_question(survey) is not None
    ]


def _category(score: int, promoter_min: int, detractor_max: int) -> int:
    """+1 promoter, 0 passive, -1 detractor."""
    return 1 if score >= promoter_min else -1 if score <= detractor_max else 0


def _triple(categories: list[int]) -> tuple[int, int, int]:
    promoters = sum(1 for c in categories if c == 1)
    detractors = sum(1 for c in categories if c == -1)
    return promoters, len(categories) - promoters - detractors, detractors


def paired_test(pairs: list[tuple[int, int]]) -> Paired:
    """The paired t-test of ours - theirs over (our category, their category) pairs."""
    n = len(pairs)
    if n == 0:
        return Paired(0, None, None, None, None, None)
    ours = 100.0 * sum(a for a, _ in pairs) / n
    theirs = 100.0 * sum(b for _, b in pairs) / n
    diffs = [a - b for a, b in pairs]
    mean = sum(diffs) / n
    t: float | None = None
    p: float | None = None
    if n >= 2:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        if sd > 0:
            t = mean / (sd / math.sqrt(n))
            p = float(2.0 * sps.t.sf(abs(t), n - 1))
        elif mean == 0:
            t, p = 0.0, 1.0
    return Paired(n, ours, theirs, 100.0 * mean, t, p)


def compare(query: CompetitorQuery) -> Comparison:
    """Our NPS and each competitor's, with intervals and the tests of the differences."""
    for name in ("since", "until"):
        value = getattr(query, name)
        if value is not None and value.tzinfo is None:
            raise QueryError(name, f"{name} needs a time-zone offset")
    if query.since and query.until and query.since >= query.until:
        raise QueryError("until", "until must be after since")
    if not 0.0 < query.confidence < 1.0:
        raise QueryError("confidence", "confidence must lie strictly between 0 and 1")
    if query.survey is not None:
        if query.survey.workspace_id != query.workspace.pk:
            raise QueryError("survey", "no such survey in this workspace")
        if competitor_question(query.survey) is None:
            raise QueryError(
                "survey", f"survey {query.survey.code!r} has no NPS score and competitors question"
            )
        surveys = [query.survey]
    else:
        surveys = competitor_surveys(query.workspace)
    questions = {s.pk: competitor_question(s) for s in surveys}
    cuts = rollups.thresholds([s.pk for s in surveys])
    names: list[str] = []
    for found in questions.values():
        if found is not None:
            names.extend(n for n in found[1] if n not in names)

    qs = Response.objects.filter(
        workspace=query.workspace,
        survey_id__in=[s.pk for s in surveys],
        is_test=False,
        score__isnull=False,
    )
    if query.since is not None:
        qs = qs.filter(answered_at__gte=query.since)
    if query.until is not None:
        qs = qs.filter(answered_at__lt=query.until)

    ours: list[int] = []
    theirs: dict[str, list[int]] = defaultdict(list)
    pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    users: dict[str, int] = defaultdict(int)
    for survey_id, score, answers in qs.values_list("survey_id", "score", "answers").iterator(
        chunk_size=5000
    ):
        if score is None:  # excluded by the query; for the type checker
            continue
        promoter_min, detractor_max = cuts[survey_id]
        own = _category(score, promoter_min, detractor_max)
        ours.append(own)
        found = questions.get(survey_id)
        answer = (answers or {}).get(found[0]) if found is not None else None
        if not isinstance(answer, dict):
            continue
        for name in answer.get("uses") or []:
            if isinstance(name, str):
                users[name] += 1
        scores = answer.get("scores") or {}
        if not isinstance(scores, dict):
            continue
        for name, value in scores.items():
            if name not in names or isinstance(value, bool) or not isinstance(value, int):
                continue
            if not 0 <= value <= 10:
                continue
            category = _category(value, promoter_min, detractor_max)
            theirs[name].append(category)
            pairs[name].append((own, category))

    our_triple = _triple(ours)
    our_stats = nps_interval(*our_triple, confidence=query.confidence)
    competitors = []
    for name in names:
        triple = _triple(theirs[name])
        competitors.append(
            Competitor(
                name=name,
                users=users[name],
                stats=nps_interval(*triple, confidence=query.confidence),
                difference=nps_difference(our_triple, triple),
                paired=paired_test(pairs[name]),
            )
        )
    return Comparison(
        ours=our_stats,
        competitors=competitors,
        confidence=query.confidence,
        surveys=[s.code for s in surveys],
    )


def payload(result: Comparison) -> dict[str, Any]:
    """The API's JSON (``docs/pain-map.md``)."""
    return {
        "confidence": result.confidence,
        "method": "adjusted-wald",
        "surveys": result.surveys,
        "ours": stats_payload(result.ours),
        "competitors": [
            {
                "name": c.name,
                "users": c.users,
                **stats_payload(c.stats),
                "diff": c.difference.diff,
                "z": c.difference.z,
                "p_value": c.difference.p_two_sided,
                "paired": {
                    "n": c.paired.n,
                    "ours": c.paired.ours,
                    "theirs": c.paired.theirs,
                    "diff": c.paired.diff,
                    "t": c.paired.t,
                    "p_value": c.paired.p_two_sided,
                },
            }
            for c in result.competitors
        ],
    }
