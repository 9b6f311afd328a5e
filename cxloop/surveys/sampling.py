"""Relationship surveys: how many customers to ask, which ones, and competitor NPS.

Sample size for a target margin of error ``e`` (in NPS points) at confidence ``z``:
an NPS is the mean of +1 (promoter), 0 (passive) and -1 (detractor), so one answer has the
variance ``s² = p + d - (p - d)²`` (p, d: shares of promoters and detractors), at most 1.
We need ``n0 = z² s² / (e/100)²`` answers, ``n = n0 / (1 + (n0 - 1)/N)`` with the finite
population correction for N reachable customers, and ``n / response_rate`` invitations.
``s²`` comes from the survey's own past answers (or the workspace's NPS answers) when there
are at least 100 of them, else the worst case 1.

Strata (segment, or region of the branch of the customer's latest interaction) get
proportional allocation by largest remainder; within a stratum a seeded random sample.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery

from cxloop.accounts.services import audit
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction

from .definition import parse_rules
from .models import Decision, DecisionOutcome, Invitation, Reason, Response, Survey, Wave
from .render import definition_of
from .rules import _Ledger, choose_channel
from .schedule import local_zone, next_send_time
from .suppression import load_index

Z = {0.90: 1.6449, 0.95: 1.96, 0.99: 2.5758}
STRATA = ("", "segment", "region")
NONE_LABEL = "(none)"
MIN_HISTORY = 100


@dataclass
class WavePlan:
    population: int
    variance: float
    target_responses: int
    sample_size: int
    allocation: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    members: dict[str, list[int]] = field(default_factory=dict, repr=False)


@dataclass
class CompetitorScore:
    name: str
    nps: float | None
    respondents: int
    is_us: bool = False


def nps_variance(scores: list[int | None] | list[int]) -> float:
    values = [s for s in scores if s is not None]
    n = len(values)
    p = sum(1 for s in values if s >= 9) / n
    d = sum(1 for s in values if s <= 6) / n
    return p + d - (p - d) ** 2


def _variance(survey: Survey) -> float:
    own = list(
        Response.objects.filter(survey=survey, is_test=False, score__isnull=False)
        .order_by("-answered_at")
        .values_list("score", flat=True)[:5000]
    )
    if len(own) >= MIN_HISTORY and definition_of(survey).score_question.type == "nps":
        return max(nps_variance(own), 0.05)
    nps_surveys = [
        s.pk
        for s in Survey.objects.filter(workspace_id=survey.workspace_id)
        if s.definition.get("questions", [{}])[0].get("type") == "nps"
    ]
    scores = list(
        Response.objects.filter(survey_id__in=nps_surveys, is_test=False, score__isnull=False)
        .order_by("-answered_at")
        .values_list("score", flat=True)[:5000]
    )
    if len(scores) >= MIN_HISTORY:
        return max(nps_variance(scores), 0.05)
    return 1.0


def sample_size(*, margin: float, confidence: float, variance: float, population: int) -> int:
    if not 0 < margin <= 100:
        raise ValueError("the margin of error must be between 0 and 100 NPS points")
    if confidence not in Z:
        raise ValueError("confidence must be 0.90, 0.95 or 0.99")
    if population <= 0:
        return 0
    n0 = Z[confidence] ** 2 * variance / (margin / 100) ** 2
    return min(population, math.ceil(n0 / (1 + (n0 - 1) / population)))


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Proportional allocation by largest remainder; never more than a stratum holds."""
    population = sum(sizes.values())
    if population == 0 or total <= 0:
        return dict.fromkeys(sizes, 0)
    total = min(total, population)
    exact = {k: total * v / population for k, v in sizes.items()}
    out = {k: min(sizes[k], math.floor(x)) for k, x in exact.items()}
    left = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (exact[k] - math.floor(exact[k]), k), reverse=True):
        if left <= 0:
            break
        if out[k] < sizes[k]:
            out[k] += 1
            left -= 1
    return out


def _eligible(
    survey: Survey, strata: str, now: dt.datetime
) -> tuple[dict[str, list[Customer]], dict[str, int]]:
    workspace = survey.workspace
    rules = parse_rules(survey.rules)
    customers = Customer.objects.filter(workspace=workspace).select_related("workspace")
    if strata == "region":
        latest = Interaction.objects.filter(customer=OuterRef("pk"), branch__isnull=False).order_by(
            "-occurred_at"
        )
        customers = customers.annotate(stratum=Subquery(latest.values("branch__region__code")[:1]))
    people = list(customers.order_by("pk"))
    index = load_index(workspace, people)
    ledger = _Ledger(
        workspace, {c.pk for c in people}, now - dt.timedelta(days=rules.quiet_period_days + 2)
    )
    groups: dict[str, list[Customer]] = defaultdict(list)
    excluded: dict[str, int] = defaultdict(int)
    for customer in people:
        choice = choose_channel(customer, rules, index)
        if choice.channel is None:
            excluded[str(choice.reason)] += 1
            continue
        if ledger.quiet(customer.pk, now, rules.quiet_period_days):
            excluded[Reason.QUIET_PERIOD] += 1
            continue
        if strata == "segment":
            key = customer.segment or NONE_LABEL
        elif strata == "region":
            key = getattr(customer, "stratum", None) or NONE_LABEL
        else:
            key = "all"
        groups[key].append(customer)
    return groups, dict(excluded)


def plan_wave(
    survey: Survey,
    *,
    margin: float,
    confidence: float,
    response_rate: float,
    strata: str,
    seed: int = 0,
    now: dt.datetime | None = None,
) -> WavePlan:
    if strata not in STRATA:
        raise ValueError("strata must be none, segment or region")
    if not 0 < response_rate <= 1:
        raise ValueError("the expected response rate must be between 0 and 100%")
    now = now or clock.now()
    groups, excluded = _eligible(survey, strata, now)
    population = sum(len(g) for g in groups.values())
    variance = _variance(survey)
    target = sample_size(
        margin=margin, confidence=confidence, variance=variance, population=population
    )
    invitations = min(population, math.ceil(target / response_rate))
    shares = allocate({k: len(v) for k, v in groups.items()}, invitations)
    rng = random.Random(seed)
    members = {k: sorted(c.pk for c in rng.sample(groups[k], shares[k])) for k in sorted(groups)}
    return WavePlan(
        population=population,
        variance=round(variance, 4),
        target_responses=target,
        sample_size=sum(shares.values()),
        allocation={k: {"population": len(groups[k]), "sample": shares[k]} for k in sorted(groups)},
        excluded=excluded,
        members=members,
    )


def create_wave(
    survey: Survey,
    *,
    margin: float,
    confidence: float,
    response_rate: float,
    strata: str,
    actor: Any = None,
    via: str = "web",
    seed: int | None = None,
    now: dt.datetime | None = None,
) -> Wave:
    """Draw the sample and schedule its invitations (sent by the dispatcher)."""
    now = now or clock.now()
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    plan = plan_wave(
        survey,
        margin=margin,
        confidence=confidence,
        response_rate=response_rate,
        strata=strata,
        seed=seed,
        now=now,
    )
    rules = parse_rules(survey.rules)
    definition = definition_of(survey)
    workspace = survey.workspace
    chosen = [pk for pks in plan.members.values() for pk in pks]
    customers = Customer.objects.in_bulk(chosen)
    index = load_index(workspace, customers.values())
    with transaction.atomic():
        wave = Wave.objects.create(
            workspace=workspace,
            survey=survey,
            created_by=actor if actor and actor.is_authenticated else None,
            strata=strata,
            margin=margin,
            confidence=confidence,
            response_rate=response_rate,
            population=plan.population,
            target_responses=plan.target_responses,
            sample_size=plan.sample_size,
            allocation=plan.allocation,
            seed=seed,
        )
        invitations = []
        for pk in chosen:
            customer = customers[pk]
            choice = choose_channel(customer, rules, index)
            if choice.channel is None:
                continue
            tz = local_zone(customer.time_zone, workspace.time_zone)
            send_at = next_send_time(now, rules.send_window, tz)
            invitations.append(
                Invitation(
                    workspace=workspace,
                    survey=survey,
                    customer=customer,
                    wave=wave,
                    delivery_channel=choice.channel,
                    language=definition.pick_language(
                        customer.language, workspace.default_language
                    ),
                    scheduled_for=send_at,
                    expires_at=send_at + dt.timedelta(days=rules.expiry_days),
                )
            )
        Invitation.objects.bulk_create(invitations, batch_size=1000)
        Decision.objects.bulk_create(
            [
                Decision(
                    workspace=workspace,
                    survey=survey,
                    customer=inv.customer,
                    invitation=inv,
                    outcome=DecisionOutcome.SCHEDULED,
                    reason=Reason.MATCHED,
                    detail=f"relationship wave {wave.pk}",
                    created_at=now,
                )
                for inv in invitations
            ],
            batch_size=1000,
        )
        audit(
            workspace,
            "survey.wave",
            via=via,
            actor=actor,
            obj=survey,
            changes={"wave": wave.pk, "sample": plan.sample_size, "strata": strata},
        )
    return wave


def competitor_nps(survey: Survey) -> list[CompetitorScore]:
    """Our NPS and each competitor's, from the answers of customers who use them."""
    definition = definition_of(survey)
    question = next((q for q in definition.questions if q.type == "competitors"), None)
    if question is None:
        return []
    scores: dict[str, list[int]] = {name: [] for name in question.competitors}
    ours: list[int] = []
    rows = Response.objects.filter(survey=survey, is_test=False).values_list("score", "answers")
    for score, answers in rows.iterator(chunk_size=2000):
        if score is not None:
            ours.append(score)
        given = (answers or {}).get(question.code) or {}
        for name, value in (given.get("scores") or {}).items():
            if name in scores and isinstance(value, int):
                scores[name].append(value)

    def nps(values: list[int]) -> float | None:
        if not values:
            return None
        return round(
            100 * statistics.fmean(1 if v >= 9 else -1 if v <= 6 else 0 for v in values), 1
        )

    company = definition.branding.company_name or survey.workspace.name
    result = [CompetitorScore(company, nps(ours), len(ours), is_us=True)]
    result += [CompetitorScore(name, nps(v), len(v)) for name, v in scores.items()]
    return result
