"""cxloop's NPS arithmetic: which responses count, the rounding, and one query whatever the size."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys.definition import default_definition
from cxloop.surveys.metrics import NpsSummary, nps_counts, nps_responses, nps_summary
from cxloop.surveys.models import Response, Survey

from .factories import make_survey

pytestmark = pytest.mark.django_db


def csat_definition() -> dict[str, Any]:
    definition = default_definition("Acme")
    definition["questions"][0]["type"] = "csat"
    definition["questions"][3]["show_if_score_at_most"] = 2
    return definition


def respond(survey: Survey, *scores: int | None, is_test: bool = False) -> None:
    Response.objects.bulk_create(
        Response(
            workspace=survey.workspace,
            external_id=uuid.uuid4().hex,
            survey=survey,
            score=score,
            answered_at=clock.now(),
            source="import",
            is_test=is_test,
        )
        for score in scores
    )


@pytest.fixture
def nps(workspace: Workspace) -> Survey:
    return make_survey(workspace, "after-visit")


def summary(workspace: Workspace) -> NpsSummary:
    return nps_summary(Response.objects.filter(workspace=workspace))


def test_hand_counted(workspace: Workspace, nps: Survey) -> None:
    respond(nps, 9, 10, 10, 9, 10, 7, 8, 7, 0, 6)
    assert summary(workspace) == NpsSummary(
        nps=30,
        promoter_count=5,
        promoter_percent=50,
        passive_count=3,
        passive_percent=30,
        detractor_count=2,
        detractor_percent=20,
        response_count=10,
    )


def test_delighted_documented_example(workspace: Workspace, nps: Survey) -> None:
    """Delighted's docs: 32 promoters, 13 passives, 6 detractors → 63 %, 25 %, 12 %, NPS 51."""
    respond(nps, *[10] * 32, *[8] * 13, *[3] * 6)
    assert summary(workspace).as_dict() == {
        "nps": 51,
        "promoter_count": 32,
        "promoter_percent": 63,
        "passive_count": 13,
        "passive_percent": 25,
        "detractor_count": 6,
        "detractor_percent": 12,
        "response_count": 51,
    }


def test_no_responses_is_all_zeros_and_no_exact_score(workspace: Workspace, nps: Survey) -> None:
    result = summary(workspace)
    assert result == NpsSummary(0, 0, 0, 0, 0, 0, 0, 0)
    assert result.exact is None


def test_all_promoters_and_all_detractors(workspace: Workspace, nps: Survey) -> None:
    respond(nps, 9, 10)
    assert (summary(workspace).nps, summary(workspace).promoter_percent) == (100, 100)
    Response.objects.all().delete()
    respond(nps, 0, 6, 3)
    assert (summary(workspace).nps, summary(workspace).detractor_percent) == (-100, 100)


def test_halves_round_away_from_zero(workspace: Workspace, nps: Survey) -> None:
    respond(nps, 10, *[7] * 7)  # 1 of 8 = 12.5 %
    result = summary(workspace)
    assert (result.nps, result.promoter_percent, result.passive_percent) == (13, 13, 88)
    assert result.exact == 12.5
    Response.objects.all().delete()
    respond(nps, 0, *[7] * 7)
    assert summary(workspace).nps == -13


def test_nps_is_rounded_from_the_exact_value(workspace: Workspace, nps: Survey) -> None:
    """2 promoters and 1 detractor of 3: 66.7 % - 33.3 % = 33.3 → 33 (not 67 - 33 = 34)."""
    respond(nps, 10, 10, 0)
    result = summary(workspace)
    assert (result.promoter_percent, result.detractor_percent, result.nps) == (67, 33, 33)


def test_test_responses_do_not_count(workspace: Workspace, nps: Survey) -> None:
    respond(nps, 10, 0)
    respond(nps, 0, 0, 0, is_test=True)
    assert summary(workspace).response_count == 2
    assert summary(workspace).nps == 0


def test_other_scales_do_not_count(workspace: Workspace, nps: Survey) -> None:
    """A CSAT 5 (the best) is no NPS answer at all: it is neither counted nor a detractor."""
    csat = make_survey(workspace, "support-csat", definition=csat_definition())
    respond(csat, 5, 5, 1)
    respond(nps, 10)
    assert summary(workspace).response_count == 1
    assert summary(workspace).nps == 100
    assert nps_summary(Response.objects.filter(survey=csat)).response_count == 0


def test_responses_without_a_score_do_not_count(workspace: Workspace, nps: Survey) -> None:
    respond(nps, None, 9)
    assert summary(workspace).response_count == 1


def test_the_callers_filter_is_kept(
    workspace: Workspace, other_workspace: Workspace, nps: Survey
) -> None:
    respond(nps, 10)
    respond(make_survey(other_workspace, "after-visit"), 0, 0)
    assert summary(workspace).response_count == 1
    assert nps_summary(Response.objects.all()).response_count == 3


def test_one_query(workspace: Workspace, nps: Survey, django_assert_num_queries: Any) -> None:
    respond(nps, *range(11))
    with django_assert_num_queries(1):
        summary(workspace)


def test_grouped_counts_give_the_same_summaries(workspace: Workspace, nps: Survey) -> None:
    """Dashboards group with ``nps_counts``; each group's summary equals ``nps_summary``."""
    other = make_survey(workspace, "relationship")
    respond(nps, 10, 10, 8, 2)
    respond(other, 1, 9)
    rows = (
        nps_responses(Response.objects.filter(workspace=workspace))
        .values("survey_id")
        .annotate(**nps_counts())
        .order_by("survey_id")
    )
    by_survey = {row.pop("survey_id"): NpsSummary.from_counts(**row) for row in rows}
    for survey in (nps, other):
        assert by_survey[survey.pk] == nps_summary(Response.objects.filter(survey=survey))


def _half_up(numerator: int, denominator: int) -> int:
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), ROUND_HALF_UP))


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
)
def test_from_counts_matches_decimal_arithmetic(p: int, q: int, d: int) -> None:
    result = NpsSummary.from_counts(p, q, d)
    total = p + q + d
    assert result.response_count == total
    if not total:
        assert result.as_dict() == dict.fromkeys(result.as_dict(), 0)
        return
    assert result.promoter_percent == _half_up(100 * p, total)
    assert result.passive_percent == _half_up(100 * q, total)
    assert result.detractor_percent == _half_up(100 * d, total)
    assert result.nps == _half_up(100 * (p - d), total)
    assert -100 <= result.nps <= 100
