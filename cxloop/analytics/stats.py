"""How sure a number is: intervals, tests and sample sizes for NPS, CSAT, CES and shares.

Pure functions on counts and scores; nothing here touches the database, so the dashboards, the
closed loop and the command line all get the same answers from the same counts. The formulas,
with a worked example, are in ``docs/analytics-statistics.md``.

Conventions:

* counts are whole numbers >= 0 and ``confidence`` lies strictly between 0 and 1, otherwise
  ``ValueError`` says which argument is wrong;
* NPS is on the -100..100 scale wherever it is reported (``nps``, ``ci_low``, ``diff``, ...);
  variances are on the proportion scale (NPS / 100, so at most 1), the scale the formulas use;
* "no data" is ``None``, never 0, so that an NPS of 0 stays distinguishable from no answers.

Libraries: numpy draws the Bayesian posterior samples, scipy gives the normal and Student t
quantiles; the Benjamini-Hochberg step-up is written out here (statsmodels, a development
dependency only, checks it in the tests).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import numpy as np
from scipy import special as spc
from scipy import stats as sps

__all__ = [
    "MIN_EFFECT_N",
    "Counts",
    "Difference",
    "Extrapolation",
    "FixEffect",
    "GroupTest",
    "MeanStats",
    "NpsStats",
    "ProportionTest",
    "ShareStats",
    "below_average",
    "benjamini_hochberg",
    "ces",
    "csat",
    "extrapolate",
    "fix_effect",
    "nps_bayes_interval",
    "nps_counts",
    "nps_difference",
    "nps_interval",
    "sample_size",
    "two_proportions",
    "wilson_interval",
    "z_for",
]

K = TypeVar("K", bound=Hashable)
Alternative = Literal["greater", "less", "two-sided"]
Verdict = Literal["verified", "not_effective", "insufficient_data"]

# Fewer answers than this before or after a fix, and fix_effect does not judge it.
MIN_EFFECT_N = 10
# Adjusted Wald: add 3 answers, ¾ of one to promoters and to detractors (and 1½ to passives).
_ADD_N = 3
_ADD_EACH = 0.75


# --------------------------------------------------------------------------- validation


def _count(name: str, value: int) -> int:
    """``value`` as an ``int`` >= 0 (numpy integers welcome), or ``ValueError`` naming it."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


def _check_confidence(confidence: float, name: str = "confidence") -> float:
    if not (isinstance(confidence, int | float) and 0.0 < confidence < 1.0):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _check_share(successes: int, n: int, what: str = "successes") -> tuple[int, int]:
    successes, n = _count(what, successes), _count("n", n)
    if successes > n:
        raise ValueError(f"{what} ({successes}) cannot exceed n ({n})")
    return successes, n


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 0.95 → 1.959963984540054 (``scipy.stats.norm.ppf``)."""
    return _z_for(_check_confidence(confidence))


@functools.lru_cache(maxsize=64)
def _z_for(confidence: float) -> float:
    # Once per confidence level: a dashboard asks for the same z hundreds of times, and
    # scipy's distribution machinery costs about 0.1 ms a call.
    return float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def _norm_cdf(z: float) -> float:
    """P(Z <= z): ``scipy.special.ndtr``, the very function ``scipy.stats.norm.cdf`` evaluates
    (``norm.sf(z)`` is ``ndtr(-z)``), without its argument checks — same bits, a hundredth of
    the time."""
    return float(spc.ndtr(z))


# --------------------------------------------------------------------------- NPS


@dataclass(frozen=True)
class Counts:
    """Promoters, passives and detractors of ``n`` answers."""

    n: int
    promoters: int
    passives: int
    detractors: int

    @property
    def nps(self) -> float | None:
        """100 * (promoters - detractors) / n; ``None`` without answers."""
        if self.n == 0:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.n


class HasNpsCounts(Protocol):
    """Anything carrying the three NPS counts: ``Counts``, ``NpsStats``, a summary object."""

    @property
    def promoters(self) -> int: ...
    @property
    def passives(self) -> int: ...
    @property
    def detractors(self) -> int: ...


NpsCountsLike = HasNpsCounts | tuple[int, int, int]


def _triple(counts: NpsCountsLike, name: str) -> tuple[int, int, int]:
    if isinstance(counts, tuple):
        if len(counts) != 3:
            raise ValueError(f"{name} must be (promoters, passives, detractors), got {counts!r}")
        promoters, passives, detractors = counts
    else:
        promoters, passives, detractors = counts.promoters, counts.passives, counts.detractors
    prefix = f"{name} " if name else ""
    return (
        _count(f"{prefix}promoters", promoters),
        _count(f"{prefix}passives", passives),
        _count(f"{prefix}detractors", detractors),
    )


def nps_counts(scores: Iterable[int], promoter_min: int = 9, detractor_max: int = 6) -> Counts:
    """Count 0..10 scores: ``>= promoter_min`` promote, ``<= detractor_max`` detract."""
    if not 0 <= detractor_max < promoter_min <= 10:
        raise ValueError(
            "need 0 <= detractor_max < promoter_min <= 10, "
            f"got detractor_max={detractor_max}, promoter_min={promoter_min}"
        )
    n = promoters = detractors = 0
    for raw in scores:
        score = _count("score", raw)
        if score > 10:
            raise ValueError(f"an NPS score lies in 0..10, got {score}")
        n += 1
        if score >= promoter_min:
            promoters += 1
        elif score <= detractor_max:
            detractors += 1
    return Counts(n, promoters, n - promoters - detractors, detractors)


@dataclass(frozen=True)
class NpsStats:
    """An NPS with its adjusted-Wald interval.

    ``nps`` is the plain score (``None`` without answers); ``ci_low``/``ci_high`` are on the
    NPS scale, clipped to -100..100; ``variance`` is the adjusted per-answer variance
    p' + d' - (p' - d')² (proportion scale) and ``n_adj`` = n + 3.
    """

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    ci_low: float
    ci_high: float
    variance: float
    n_adj: int


def _adjusted(promoters: int, passives: int, detractors: int) -> tuple[int, float, float, float]:
    """(n', p', d', Var) of the adjusted-Wald method."""
    n_adj = promoters + passives + detractors + _ADD_N
    p_adj = (promoters + _ADD_EACH) / n_adj
    d_adj = (detractors + _ADD_EACH) / n_adj
    variance = p_adj + d_adj - (p_adj - d_adj) ** 2
    return n_adj, p_adj, d_adj, variance


def nps_interval(
    promoters: int, passives: int, detractors: int, confidence: float = 0.95
) -> NpsStats:
    """NPS with the adjusted-Wald interval (Rocks 2016; Sauro & Lewis).

    n' = n + 3, p' = (P + ¾)/n', d' = (D + ¾)/n', Var = p' + d' - (p' - d')²,
    interval = 100 * ((p' - d') ± z·√(Var/n')), clipped to [-100, 100]. With n = 0 the
    interval still comes from the adjusted values (±80 at 95 %) and ``nps`` is ``None``.
    """
    promoters, passives, detractors = _triple((promoters, passives, detractors), "")
    z = z_for(confidence)
    n = promoters + passives + detractors
    n_adj, p_adj, d_adj, variance = _adjusted(promoters, passives, detractors)
    centre = p_adj - d_adj
    half = z * math.sqrt(variance / n_adj)
    return NpsStats(
        n=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps=Counts(n, promoters, passives, detractors).nps,
        ci_low=max(-100.0, 100.0 * (centre - half)),
        ci_high=min(100.0, 100.0 * (centre + half)),
        variance=variance,
        n_adj=n_adj,
    )


def nps_bayes_interval(
    promoters: int,
    passives: int,
    detractors: int,
    confidence: float = 0.95,
    prior: tuple[float, float, float] = (1.0, 1.0, 1.0),
    draws: int = 20000,
    seed: int = 0,
) -> tuple[float, float]:
    """Equal-tailed credible interval of the NPS under a Dirichlet posterior.

    (p, passive, d) ~ Dirichlet(prior + counts); NPS = 100 (p - d); the interval is the
    (alpha/2, 1 - alpha/2) quantiles of ``draws`` samples from ``numpy.random.default_rng(seed)``, so
    the same arguments always give the same interval.
    """
    counts = np.array(_triple((promoters, passives, detractors), ""), dtype=float)
    confidence = _check_confidence(confidence)
    if len(prior) != 3 or not all(math.isfinite(a) and a > 0 for a in prior):
        raise ValueError(f"prior must be three positive numbers, got {prior!r}")
    if _count("draws", draws) < 1:
        raise ValueError("draws must be at least 1")
    rng = np.random.default_rng(seed)
    sample = rng.dirichlet(counts + np.array(prior, dtype=float), size=draws)
    nps = 100.0 * (sample[:, 0] - sample[:, 2])
    alpha = 1.0 - confidence
    low, high = np.quantile(nps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


@dataclass(frozen=True)
class Difference:
    """NPS of a minus NPS of b, and the adjusted-Wald z-test of that difference.

    ``diff`` is the plain difference in NPS points (``None`` when either side has no answers);
    ``z`` compares the adjusted scores; ``p_greater`` is the one-sided p-value for "a > b",
    ``p_less`` for "a < b".
    """

    diff: float | None
    z: float
    p_two_sided: float
    p_greater: float
    p_less: float


def nps_difference(a: NpsCountsLike, b: NpsCountsLike) -> Difference:
    """z = (NPS'a - NPS'b) / √(Var_a/n'a + Var_b/n'b), NPS' = p' - d' (proportion scale).

    ``a`` and ``b`` are ``(promoters, passives, detractors)`` or anything with those
    attributes (``Counts``, ``NpsStats``). The adjusted variance is never 0, so ``z`` is
    always defined, even for empty groups.
    """
    pa, qa, da = _triple(a, "a")
    pb, qb, db = _triple(b, "b")
    na_adj, pa_adj, da_adj, var_a = _adjusted(pa, qa, da)
    nb_adj, pb_adj, db_adj, var_b = _adjusted(pb, qb, db)
    z = ((pa_adj - da_adj) - (pb_adj - db_adj)) / math.sqrt(var_a / na_adj + var_b / nb_adj)
    nps_a = Counts(pa + qa + da, pa, qa, da).nps
    nps_b = Counts(pb + qb + db, pb, qb, db).nps
    return Difference(
        diff=None if nps_a is None or nps_b is None else nps_a - nps_b,
        z=z,
        p_two_sided=2.0 * _norm_cdf(-abs(z)),
        p_greater=_norm_cdf(-z),
        p_less=_norm_cdf(z),
    )


# --------------------------------------------------------------------------- groups


def benjamini_hochberg(p_values: Sequence[float], fdr: float = 0.05) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values); reject where q <= ``fdr``.

    q₍ᵢ₎ = min over j >= i of m·p₍ⱼ₎/j, capped at 1, for the p-values sorted ascending — the
    same as ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``. ``fdr`` is only
    validated here; the caller compares.
    """
    _check_confidence(fdr, "fdr")
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values lie in 0..1, got {p!r}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, m * p_values[i] / rank)
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class GroupTest:
    """One group against the rest: raw one-sided p (``None`` if untested) and the verdict.

    ``q_value`` is the Benjamini-Hochberg adjusted p-value among the tested groups.
    """

    p_value: float | None
    below_average: bool
    tested: bool
    q_value: float | None = None


def below_average(
    groups: Mapping[K, tuple[int, int, int]], min_n: int = 30, fdr: float = 0.05
) -> dict[K, GroupTest]:
    """Which groups (branches, agents, ...) have an NPS below that of all the others together.

    Each group with at least ``min_n`` answers is compared with the sum of every other group
    (small ones included) by the one-sided adjusted-Wald z-test of ``nps_difference``
    (p = P(Z <= z)); the p-values of the tested groups are corrected with Benjamini-Hochberg at
    ``fdr``, and a group is flagged when its q-value is <= ``fdr`` and its plain NPS is below
    the rest's. Groups under ``min_n`` (or with no other answers to compare with) are not
    tested, not flagged and do not count in the correction.
    """
    min_n = _count("min_n", min_n)
    _check_confidence(fdr, "fdr")
    triples = {key: _triple(value, f"group {key!r}") for key, value in groups.items()}
    total = tuple(sum(t[i] for t in triples.values()) for i in range(3))
    raw: dict[K, tuple[float, bool]] = {}
    for key, own in triples.items():
        rest = (total[0] - own[0], total[1] - own[1], total[2] - own[2])
        if sum(own) < min_n or sum(rest) == 0:
            continue
        own_nps = Counts(sum(own), *own).nps
        rest_nps = Counts(sum(rest), *rest).nps
        lower = own_nps is not None and rest_nps is not None and own_nps < rest_nps
        raw[key] = (nps_difference(own, rest).p_less, lower)
    tested = list(raw)
    q_values = dict(zip(tested, benjamini_hochberg([raw[k][0] for k in tested], fdr), strict=True))
    result: dict[K, GroupTest] = {}
    for key in triples:
        if key not in raw:
            result[key] = GroupTest(p_value=None, below_average=False, tested=False)
            continue
        p_value, lower = raw[key]
        q = q_values[key]
        result[key] = GroupTest(
            p_value=p_value, below_average=lower and q <= fdr, tested=True, q_value=q
        )
    return result


def sample_size(margin: float, variance: float | None = None, confidence: float = 0.95) -> int:
    """Answers needed for an adjusted-Wald NPS interval of ± ``margin`` NPS points.

    n = ⌈z²·Var/E² - 3⌉ with E = margin/100, never below 0. ``variance`` is the per-answer
    variance on the proportion scale (``NpsStats.variance`` of a previous wave); without one
    the worst case, 1 (half promoters, half detractors), is assumed.
    """
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number of NPS points, got {margin!r}")
    if variance is None:
        variance = 1.0
    elif not (isinstance(variance, int | float) and math.isfinite(variance) and variance > 0):
        raise ValueError(f"variance must be a positive number, got {variance!r}")
    z = z_for(confidence)
    error = margin / 100.0
    return max(0, math.ceil(z * z * variance / (error * error) - _ADD_N))


# --------------------------------------------------------------------------- shares


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion, on 0..1; (0, 1) when n = 0.

    centre = (p̂ + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · √(p̂(1 - p̂)/n + z²/4n²).
    """
    successes, n = _check_share(successes, n)
    z = z_for(confidence)
    if n == 0:
        return 0.0, 1.0
    share = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (share + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(share * (1.0 - share) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.10g}%"


@dataclass(frozen=True)
class Extrapolation:
    """A sample share scaled to a population, with the Wilson interval scaled alike."""

    successes: int
    n: int
    population: int
    confidence: float
    share: float
    estimate: int
    low: int
    high: int

    def describe(self) -> str:
        """E.g. "5 of 1,000 surveyed → about 5,000 of 1,000,000 customers (95% interval …)"."""
        return (
            f"{self.successes:,} of {self.n:,} surveyed → about {self.estimate:,} of "
            f"{self.population:,} customers ({_percent(self.confidence)} interval "
            f"{self.low:,}\u2013{self.high:,})"
        )


def extrapolate(successes: int, n: int, population: int, confidence: float = 0.95) -> Extrapolation:
    """``successes`` of ``n`` surveyed → how many of ``population`` customers (Wilson bounds).

    estimate = round(share * population), low/high = round(Wilson bound * population). No
    finite-population correction: with a sample much smaller than the population it is
    negligible, and without it the interval errs on the wide side.
    """
    successes, n = _check_share(successes, n)
    population = _count("population", population)
    if n == 0:
        raise ValueError("cannot extrapolate from n = 0 surveyed")
    if population < n:
        raise ValueError(f"population ({population}) cannot be smaller than n ({n})")
    low, high = wilson_interval(successes, n, confidence)
    share = successes / n
    return Extrapolation(
        successes=successes,
        n=n,
        population=population,
        confidence=float(confidence),
        share=share,
        estimate=round(share * population),
        low=round(low * population),
        high=round(high * population),
    )


@dataclass(frozen=True)
class ShareStats:
    """A share of answers (e.g. CSAT top-box) with its Wilson interval; ``share`` None if n = 0."""

    n: int
    share: float | None
    low: float
    high: float


def csat(scores: Iterable[int], top_box_min: int = 4, confidence: float = 0.95) -> ShareStats:
    """CSAT as the top-box share: answers ``>= top_box_min`` (4 and 5 on a 1..5 scale)."""
    values = [_count("score", s) for s in scores]
    hits = sum(1 for s in values if s >= top_box_min)
    low, high = wilson_interval(hits, len(values), confidence)
    return ShareStats(
        n=len(values), share=hits / len(values) if values else None, low=low, high=high
    )


@dataclass(frozen=True)
class MeanStats:
    """A mean score (e.g. CES) with its Student t interval; ``None`` where undefined."""

    n: int
    mean: float | None
    low: float | None
    high: float | None


def ces(scores: Iterable[float], confidence: float = 0.95) -> MeanStats:
    """Mean effort score with mean ± t(n-1)·s/√n (s with n - 1); no interval below 2 answers."""
    confidence = _check_confidence(confidence)
    values = np.array([float(s) for s in scores], dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("CES scores must be finite numbers")
    n = len(values)
    if n == 0:
        return MeanStats(0, None, None, None)
    mean = float(values.mean())
    if n < 2:
        return MeanStats(n, mean, None, None)
    t = float(sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1))
    half = t * float(values.std(ddof=1)) / math.sqrt(n)
    return MeanStats(n, mean, mean - half, mean + half)


# --------------------------------------------------------------------------- before / after


@dataclass(frozen=True)
class ProportionTest:
    """Pooled two-proportion z-test of p1 against p2."""

    p1: float
    p2: float
    diff: float
    z: float
    p_value: float


def two_proportions(
    x1: int, n1: int, x2: int, n2: int, alternative: Alternative = "greater"
) -> ProportionTest:
    """z = (p1 - p2) / √(p̄(1 - p̄)(1/n1 + 1/n2)), p̄ = (x1 + x2)/(n1 + n2).

    ``alternative="greater"`` tests p1 > p2 (p = P(Z >= z)), ``"less"`` p1 < p2, ``"two-sided"``
    p1 ≠ p2. When p̄ is 0 or 1 both shares are equal and z is taken as 0 (p = 0.5 one-sided,
    1 two-sided) instead of 0/0.
    """
    x1, n1 = _check_share(x1, n1, "x1")
    x2, n2 = _check_share(x2, n2, "x2")
    if n1 == 0 or n2 == 0:
        raise ValueError(f"both samples need answers, got n1={n1}, n2={n2}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, got {alternative!r}")
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = 0.0 if se == 0.0 else (p1 - p2) / se
    if alternative == "greater":
        p_value = _norm_cdf(-z)
    elif alternative == "less":
        p_value = _norm_cdf(z)
    else:
        p_value = 2.0 * _norm_cdf(-abs(z))
    return ProportionTest(p1=p1, p2=p2, diff=p1 - p2, z=z, p_value=p_value)


@dataclass(frozen=True)
class FixEffect:
    """Did a fix lower the share of answers citing a reason? ``drop_points`` = before - after."""

    before_share: float | None
    after_share: float | None
    drop_points: float | None
    p_value: float | None
    significant: bool
    verdict: Verdict


def fix_effect(
    before_hits: int, before_n: int, after_hits: int, after_n: int, alpha: float = 0.05
) -> FixEffect:
    """Closed-loop check: share citing the reason before vs after, one-sided (before > after).

    ``verified`` when ``two_proportions(..., alternative="greater").p_value < alpha``,
    ``not_effective`` otherwise, ``insufficient_data`` (no test) when either side has fewer
    than ``MIN_EFFECT_N`` answers.
    """
    before_hits, before_n = _check_share(before_hits, before_n, "before_hits")
    after_hits, after_n = _check_share(after_hits, after_n, "after_hits")
    alpha = _check_confidence(alpha, "alpha")
    before = before_hits / before_n if before_n else None
    after = after_hits / after_n if after_n else None
    drop = None if before is None or after is None else 100.0 * (before - after)
    if before_n < MIN_EFFECT_N or after_n < MIN_EFFECT_N:
        return FixEffect(before, after, drop, None, False, "insufficient_data")
    p_value = two_proportions(before_hits, before_n, after_hits, after_n, "greater").p_value
    significant = p_value < alpha
    return FixEffect(
        before, after, drop, p_value, significant, "verified" if significant else "not_effective"
    )
