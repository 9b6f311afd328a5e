"""Relationship waves: sample size for a margin of error, strata, competitor NPS."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Decision, Invitation, Response, SurveyKind
from cxloop.surveys.sampling import (
    allocate,
    competitor_nps,
    create_wave,
    nps_variance,
    plan_wave,
    sample_size,
)
from cxloop.surveys.suppression import unsubscribe

from .factories import make_customer, make_survey


def relationship_definition() -> dict[str, object]:
    definition = default_definition("Acme")
    definition["questions"].append(
        {
            "code": "competitors",
            "type": "competitors",
            "text": {"en": "Which others do you use?", "ru": "Чем ещё пользуетесь?",
                     "ro": "Ce alți furnizori folosiți?"},
            "competitors": ["Orion", "Prut Net"],
        }
    )  # fmt: skip
    return definition


def test_sample_size_matches_the_textbook_formula() -> None:
    # Worst case variance 1, ±5 NPS points at 95%: (1.96 / 0.05)² = 1536.6 → 1537.
    assert sample_size(margin=5, confidence=0.95, variance=1.0, population=10**9) == 1537
    # The finite population correction for 2,000 customers.
    n0 = 1.96**2 / 0.05**2
    assert sample_size(margin=5, confidence=0.95, variance=1.0, population=2000) == math.ceil(
        n0 / (1 + (n0 - 1) / 2000)
    )
    # A tight margin needs nearly everyone; a wider one needs fewer.
    assert sample_size(margin=1, confidence=0.99, variance=1.0, population=300) == 299
    assert sample_size(margin=10, confidence=0.90, variance=0.5, population=10**6) == 136
    with pytest.raises(ValueError):
        sample_size(margin=0, confidence=0.95, variance=1, population=10)
    with pytest.raises(ValueError):
        sample_size(margin=5, confidence=0.5, variance=1, population=10)


def test_nps_variance() -> None:
    # 50% promoters, 50% detractors: the worst case.
    assert nps_variance([10, 0]) == 1.0
    # All passives: no variance.
    assert nps_variance([7, 8, 7]) == 0.0
    assert nps_variance([10, 10, 7, 3]) == pytest.approx(0.75 - 0.0625)


def test_allocation_is_proportional_and_exact() -> None:
    got = allocate({"a": 500, "b": 300, "c": 200}, 101)
    assert sum(got.values()) == 101
    assert got == {"a": 51, "b": 30, "c": 20}
    assert allocate({"a": 3, "b": 1000}, 500)["a"] <= 3
    assert allocate({"a": 10}, 50) == {"a": 10}
    assert allocate({}, 10) == {}


def test_a_wave_samples_reachable_customers_by_segment(workspace: Workspace) -> None:
    survey = make_survey(
        workspace, "relationship", kind=SurveyKind.RELATIONSHIP,
        definition=relationship_definition(), quiet_period_days=30,
    )  # fmt: skip
    for n in range(300):
        make_customer(workspace, f"C{n:03}", segment="business" if n % 3 == 0 else "consumer")
    unsubscribe(make_customer(workspace, "GONE", segment="consumer"), via="cli", source="t")
    make_customer(workspace, "NOMAIL", email="", phone="", segment="consumer")

    plan = plan_wave(survey, margin=10, confidence=0.95, response_rate=0.5, strata="segment")
    assert plan.population == 300
    assert plan.variance == 1.0  # no history yet: the worst case
    assert plan.excluded == {"unsubscribed": 1, "no_contact": 1}
    assert plan.allocation["business"]["population"] == 100
    assert plan.sample_size == sum(a["sample"] for a in plan.allocation.values())
    share = plan.allocation["business"]["sample"] / plan.sample_size
    assert abs(share - 1 / 3) < 0.02

    wave = create_wave(
        survey, margin=10, confidence=0.95, response_rate=0.5, strata="segment", seed=7,
        via="cli",
    )  # fmt: skip
    invited = Invitation.objects.filter(wave=wave)
    assert invited.count() == plan.sample_size == wave.sample_size
    assert not invited.filter(customer__external_id__in=["GONE", "NOMAIL"]).exists()
    assert (
        Decision.objects.filter(invitation__wave=wave, outcome="scheduled").count()
        == wave.sample_size
    )
    # The quiet period now keeps them out of the next wave.
    again = plan_wave(survey, margin=10, confidence=0.95, response_rate=0.5, strata="")
    assert again.population == 300 - wave.sample_size
    assert again.excluded["quiet_period"] == wave.sample_size


def test_history_narrows_the_sample(workspace: Workspace) -> None:
    survey = make_survey(workspace, "relationship", kind=SurveyKind.RELATIONSHIP)
    customer = make_customer(workspace, "C0")
    now = clock.now()
    Response.objects.bulk_create(
        Response(
            workspace=workspace,
            survey=survey,
            customer=customer,
            external_id=f"R{n}",
            score=8 if n % 2 else 9,
            answered_at=now - dt.timedelta(days=1),
            source="import",
        )
        for n in range(120)
    )
    plan = plan_wave(survey, margin=5, confidence=0.95, response_rate=0.2, strata="")
    assert plan.variance == pytest.approx(0.5 - 0.25)


def test_competitor_nps(workspace: Workspace) -> None:
    survey = make_survey(
        workspace, "relationship", kind=SurveyKind.RELATIONSHIP,
        definition=relationship_definition(),
    )  # fmt: skip
    customer = make_customer(workspace)
    now = clock.now()
    answers = [
        (10, {"uses": ["Orion"], "scores": {"Orion": 3}}),
        (9, {"uses": ["Orion", "Prut Net"], "scores": {"Orion": 10, "Prut Net": 9}}),
        (2, {"uses": ["Orion"], "scores": {"Orion": 4}}),
        (8, {"uses": [], "scores": {}}),
    ]
    for n, (score, competitors) in enumerate(answers):
        Response.objects.create(
            workspace=workspace, survey=survey, customer=customer, external_id=f"R{n}",
            score=score, answers={"competitors": competitors}, answered_at=now, source="import",
        )  # fmt: skip
    got = {row.name: (row.nps, row.respondents, row.is_us) for row in competitor_nps(survey)}
    assert got == {
        "Acme": (25.0, 4, True),  # 2 promoters, 1 detractor of 4
        "Orion": (round(100 * (1 - 2) / 3, 1), 3, False),
        "Prut Net": (100.0, 1, False),
    }
