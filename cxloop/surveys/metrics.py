"""cxloop's own Net Promoter Score arithmetic: the one place NPS is counted.

Every reader of NPS — the Delighted-compatible ``metrics`` endpoint today, the analytics
dashboards later — calls ``nps_summary`` (or groups with ``nps_counts`` and builds summaries
with ``NpsSummary.from_counts``), so the same responses always give the same number.

What counts, whatever queryset the caller passes (``nps_responses``):

* only answers to an NPS-scale survey (its first question is of type ``nps``): a CSAT 5 or a
  CES 7 is not a promoter, and mixing scales would make the number meaningless;
* never test responses (``is_test``): "send a test to me" must not move a dashboard;
* only responses with a score (a partial response that has only answered later questions
  says nothing about the score).

Promoters score 9-10, passives 7-8, detractors 0-6 (Bain's definition, as Delighted used).

Rounding, chosen to give Delighted's numbers (its documented example: 32 promoters,
13 passives and 6 detractors of 51 → 63 %, 25 %, 12 %, NPS 51): percentages and the NPS are
whole numbers, rounded half away from zero (like Ruby's ``round``; Delighted was a Rails
application), with integer arithmetic so that no float error turns 12.5 into 12. The NPS is
rounded from the exact value (promoter share minus detractor share), not from the two rounded
percentages: it is the figure a reader compares across periods, so it must not inherit two
rounding errors.
``NpsSummary.exact`` keeps the unrounded score for charts and confidence intervals.

No responses: every number is 0, so that a client doing arithmetic on the fields never meets
``null``; ``response_count == 0`` (and ``exact is None``) tells "no data" apart from a real
NPS of 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from django.db.models import Count, Q, QuerySet

from .models import Response

PROMOTER = Q(score__gte=9, score__lte=10)
PASSIVE = Q(score__gte=7, score__lte=8)
DETRACTOR = Q(score__gte=0, score__lte=6)
# The survey's first question is its score (definition.SurveyDefinition); its type is the scale.
NPS_SURVEY = Q(survey__definition__questions__0__type="nps")


def nps_responses(responses: QuerySet[Response]) -> QuerySet[Response]:
    """The responses of ``responses`` that count towards an NPS (see the module's docstring)."""
    return responses.filter(NPS_SURVEY, is_test=False, score__isnull=False)


def nps_counts() -> dict[str, Count]:
    """Conditional counts for ``aggregate()`` or, per group, ``values(...).annotate()``.

    Only meaningful on ``nps_responses(...)``; the keys are ``NpsSummary.from_counts``'s
    parameters, so ``NpsSummary.from_counts(**row_without_group_keys)`` builds a summary.
    """
    return {
        "promoters": Count("pk", filter=PROMOTER),
        "passives": Count("pk", filter=PASSIVE),
        "detractors": Count("pk", filter=DETRACTOR),
    }


def round_half_up(value: Fraction) -> int:
    """Round half away from zero (2.5 → 3, -2.5 → -3), exactly: Python's ``round`` would give
    2 for 2.5 (banker's rounding) where Ruby, and so Delighted, gave 3."""
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


@dataclass(frozen=True)
class NpsSummary:
    """Counts, whole-number percentages and the NPS of a set of responses (Delighted's fields)."""

    nps: int
    promoter_count: int
    promoter_percent: int
    passive_count: int
    passive_percent: int
    detractor_count: int
    detractor_percent: int
    response_count: int

    @classmethod
    def from_counts(cls, promoters: int, passives: int, detractors: int) -> NpsSummary:
        total = promoters + passives + detractors

        def percent(part: int) -> int:
            return round_half_up(Fraction(100 * part, total)) if total else 0

        return cls(
            nps=round_half_up(Fraction(100 * (promoters - detractors), total)) if total else 0,
            promoter_count=promoters,
            promoter_percent=percent(promoters),
            passive_count=passives,
            passive_percent=percent(passives),
            detractor_count=detractors,
            detractor_percent=percent(detractors),
            response_count=total,
        )

    @property
    def exact(self) -> float | None:
        """The unrounded NPS (-100…100), or None without responses."""
        if not self.response_count:
            return None
        return 100 * (self.promoter_count - self.detractor_count) / self.response_count

    def as_dict(self) -> dict[str, Any]:
        """Delighted's ``GET metrics`` body, key for key."""
        return asdict(self)


def nps_summary(responses: QuerySet[Response]) -> NpsSummary:
    """The NPS of ``responses`` (any unsliced Response queryset, already filtered by the caller
    to a workspace, survey, period…), in one aggregate query."""
    counts = nps_responses(responses).aggregate(**nps_counts())
    return NpsSummary.from_counts(counts["promoters"], counts["passives"], counts["detractors"])
