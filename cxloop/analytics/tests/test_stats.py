"""cxloop.analytics.stats against hand arithmetic, statsmodels and simulation.

Plain functions: no database. The expected numbers are written out from the formulas in
docs/analytics-statistics.md, or come from an independent implementation (statsmodels, math.erfc),
never from the function under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from cxloop.analytics.stats import (
    MIN_EFFECT_N,
    Counts,
    below_average,
    benjamini_hochberg,
    ces,
    csat,
    extrapolate,
    fix_effect,
    nps_bayes_interval,
    nps_counts,
    nps_difference,
    nps_interval,
    sample_size,
    two_proportions,
    wilson_interval,
    z_for,
)

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def _normal_sf(z: float) -> float:
    """P(Z >= z) from math.erfc, independent of scipy."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# --------------------------------------------------------------------------- z and counts


def test_z_for_known_quantiles() -> None:
    assert z_for(0.95) == pytest.approx(Z95, abs=1e-12)
    assert z_for(0.90) == pytest.approx(1.6448536269514722, abs=1e-12)
    assert z_for(0.99) == pytest.approx(2.5758293035489004, abs=1e-12)


def test_nps_counts_uses_the_boundaries() -> None:
    counts = nps_counts([0, 6, 7, 8, 9, 10, 10])
    assert counts == Counts(n=7, promoters=3, passives=2, detractors=2)
    assert counts.nps == pytest.approx(100 * (3 - 2) / 7)
    stricter = nps_counts([0, 6, 7, 8, 9, 10, 10], promoter_min=10, detractor_max=7)
    assert stricter == Counts(n=7, promoters=2, passives=2, detractors=3)


def test_nps_counts_empty_has_no_score() -> None:
    assert nps_counts([]) == Counts(0, 0, 0, 0)
    assert nps_counts([]).nps is None
    assert nps_counts(iter([5, 5])).nps == -100.0


# --------------------------------------------------------------------------- adjusted Wald


def test_nps_interval_by_hand() -> None:
    stats = nps_interval(50, 30, 20)
    # n' = 100 + 3 = 103, p' = (50 + 0.75)/103, d' = (20 + 0.75)/103
    p_adj = 50.75 / 103
    d_adj = 20.75 / 103
    variance = p_adj + d_adj - (p_adj - d_adj) ** 2  # 71.5/103 - (30/103)**2
    assert variance == pytest.approx(71.5 / 103 - 900 / 103**2, abs=1e-15)
    half = Z95 * math.sqrt(variance / 103)
    assert stats.n == 100 and stats.n_adj == 103
    assert stats.nps == 30.0
    assert stats.variance == pytest.approx(variance, abs=1e-12)
    assert stats.ci_low == pytest.approx(100 * (30 / 103 - half), abs=1e-9)
    assert stats.ci_high == pytest.approx(100 * (30 / 103 + half), abs=1e-9)
    # The numbers themselves, so that a change of formula shows up in review.
    assert stats.ci_low == pytest.approx(14.0511, abs=1e-4)
    assert stats.ci_high == pytest.approx(44.2013, abs=1e-4)


def test_nps_interval_narrows_with_lower_confidence() -> None:
    wide = nps_interval(50, 30, 20, confidence=0.99)
    narrow = nps_interval(50, 30, 20, confidence=0.80)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_nps_interval_without_answers_comes_from_the_adjustment() -> None:
    stats = nps_interval(0, 0, 0)
    # n' = 3, p' = d' = 0.25, Var = 0.5: 100 * (0 +- z * sqrt(0.5 / 3))
    assert stats.nps is None and stats.n == 0 and stats.n_adj == 3
    assert stats.variance == pytest.approx(0.5)
    assert stats.ci_high == pytest.approx(100 * Z95 * math.sqrt(0.5 / 3), abs=1e-9)
    assert stats.ci_low == pytest.approx(-stats.ci_high, abs=1e-12)


def test_nps_interval_is_clipped_to_the_scale() -> None:
    stats = nps_interval(3, 0, 0)
    # Unclipped: p' = 3.75/6, d' = 0.75/6, centre 0.5, Var = 0.75 - 0.25 = 0.5,
    # upper = 100 * (0.5 + 1.96 * sqrt(0.5 / 6)) = 106.6 -> 100.
    assert 100 * (0.5 + Z95 * math.sqrt(0.5 / 6)) > 100
    assert stats.ci_high == 100.0
    assert stats.ci_low == pytest.approx(100 * (0.5 - Z95 * math.sqrt(0.5 / 6)), abs=1e-9)
    assert nps_interval(0, 0, 3).ci_low == -100.0


@pytest.mark.parametrize("n", [50, 500])
def test_nps_interval_covers_the_true_nps_about_95_percent(n: int) -> None:
    rng = np.random.default_rng(20240601 + n)
    probabilities = [0.45, 0.30, 0.25]
    true_nps = 100 * (0.45 - 0.25)
    samples = rng.multinomial(n, probabilities, size=2000)
    covered = 0
    for promoters, passives, detractors in samples:
        stats = nps_interval(int(promoters), int(passives), int(detractors))
        covered += stats.ci_low <= true_nps <= stats.ci_high
    assert 0.93 <= covered / 2000 <= 0.97, covered / 2000


@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 2000), st.floats(0.5, 0.999))
def test_nps_interval_is_ordered_and_on_the_scale(p: int, q: int, d: int, conf: float) -> None:
    stats = nps_interval(p, q, d, confidence=conf)
    assert -100.0 <= stats.ci_low < stats.ci_high <= 100.0
    assert 0.0 < stats.variance <= 1.0
    assert stats.n_adj == p + q + d + 3


# --------------------------------------------------------------------------- Bayesian


def test_bayes_interval_is_close_to_adjusted_wald_for_large_n() -> None:
    wald = nps_interval(2250, 1500, 1250)
    low, high = nps_bayes_interval(2250, 1500, 1250)
    assert low == pytest.approx(wald.ci_low, abs=0.3)
    assert high == pytest.approx(wald.ci_high, abs=0.3)


def test_bayes_interval_is_reproducible_and_symmetric_without_data() -> None:
    assert nps_bayes_interval(10, 5, 3, seed=7) == nps_bayes_interval(10, 5, 3, seed=7)
    assert nps_bayes_interval(10, 5, 3, seed=7) != nps_bayes_interval(10, 5, 3, seed=8)
    low, high = nps_bayes_interval(0, 0, 0, draws=200_000)
    # Uniform Dirichlet(1, 1, 1): p - d is symmetric about 0.
    assert low == pytest.approx(-high, abs=1.0)
    assert 60 < high < 90


def test_bayes_interval_follows_the_prior() -> None:
    # A strong prior towards promoters pulls a small sample's interval up.
    plain = nps_bayes_interval(2, 2, 2)
    optimistic = nps_bayes_interval(2, 2, 2, prior=(50.0, 1.0, 1.0))
    assert optimistic[0] > plain[0] and optimistic[1] > plain[1]


# --------------------------------------------------------------------------- differences


def test_nps_difference_by_hand() -> None:
    result = nps_difference((50, 30, 20), Counts(100, 40, 30, 30))
    # n' = 103 on both sides; NPS'a = (50.75 - 20.75)/103 = 30/103, NPS'b = 10/103
    var_a = 71.5 / 103 - (30 / 103) ** 2
    var_b = 71.5 / 103 - (10 / 103) ** 2
    z = (30 / 103 - 10 / 103) / math.sqrt(var_a / 103 + var_b / 103)
    assert result.diff == pytest.approx(20.0)
    assert result.z == pytest.approx(z, abs=1e-12)
    assert result.p_greater == pytest.approx(_normal_sf(z), abs=1e-12)
    assert result.p_less == pytest.approx(1 - _normal_sf(z), abs=1e-12)
    assert result.p_two_sided == pytest.approx(2 * _normal_sf(abs(z)), abs=1e-12)
    assert result.p_greater < 0.05 < result.p_two_sided  # one-sided only


def test_nps_difference_is_antisymmetric_and_accepts_stats() -> None:
    a, b = nps_interval(60, 20, 20), nps_interval(30, 30, 40)
    forward, backward = nps_difference(a, b), nps_difference(b, a)
    assert forward.z == pytest.approx(-backward.z)
    assert forward.p_greater == pytest.approx(backward.p_less)
    assert nps_difference((0, 0, 0), (5, 0, 0)).diff is None


# --------------------------------------------------------------------------- below average

BRANCH = [0.45, 0.30, 0.25]


def _draw(rng: np.random.Generator, n: int, probabilities: list[float]) -> tuple[int, int, int]:
    p, q, d = rng.multinomial(n, probabilities)
    return int(p), int(q), int(d)


def test_below_average_flags_the_weak_branch_only() -> None:
    rng = np.random.default_rng(11)
    groups = {f"branch-{i}": _draw(rng, 400, BRANCH) for i in range(9)}
    groups["weak"] = _draw(rng, 400, [0.30, 0.30, 0.40])  # NPS about -10 against 20
    groups["strong"] = _draw(rng, 400, [0.70, 0.20, 0.10])  # far above: never "below"
    result = below_average(groups)
    assert result["weak"].below_average and result["weak"].tested
    assert result["weak"].p_value is not None and result["weak"].p_value < 1e-6
    assert not result["strong"].below_average
    assert result["strong"].p_value is not None and result["strong"].p_value > 0.99
    assert [k for k, r in result.items() if r.below_average] == ["weak"]


def test_below_average_flags_none_when_all_share_a_distribution() -> None:
    rng = np.random.default_rng(12)
    groups = {f"branch-{i}": _draw(rng, 400, BRANCH) for i in range(10)}
    result = below_average(groups)
    assert all(r.tested for r in result.values())
    assert not any(r.below_average for r in result.values())
    # Not vacuous: some raw one-sided p-values are small, but none survive the correction.
    assert min(r.p_value for r in result.values() if r.p_value is not None) < 0.2


def test_below_average_compares_each_group_with_the_sum_of_the_others() -> None:
    groups = {"a": (50, 30, 20), "b": (40, 30, 30), "c": (30, 40, 30)}
    result = below_average(groups, min_n=1)
    expected = nps_difference((30, 40, 30), (90, 60, 50)).p_less
    assert result["c"].p_value == pytest.approx(expected, abs=1e-15)


def test_small_group_is_never_flagged_and_left_out_of_the_correction() -> None:
    groups: dict[str, tuple[int, int, int]] = {f"b{i}": (180, 120, 100) for i in range(9)}
    groups["low"] = (158, 120, 122)  # NPS 9 against about 20: borderline
    groups["tiny"] = (0, 0, 10)  # NPS -100, but only 10 answers
    result = below_average(groups, min_n=30)

    assert result["tiny"].p_value is None
    assert not result["tiny"].tested and not result["tiny"].below_average
    # The tiny group still belongs to everyone else's "rest".
    rest_of_low = (9 * 180 + 0, 9 * 120 + 0, 9 * 100 + 10)
    p_low = nps_difference(groups["low"], rest_of_low).p_less
    assert result["low"].p_value == pytest.approx(p_low, abs=1e-15)

    tested = [k for k in groups if k != "tiny"]
    raw = [result[k].p_value for k in tested]
    assert all(p is not None for p in raw)
    reject_tested, *_ = multipletests(raw, alpha=0.05, method="fdr_bh")
    assert [result[k].below_average for k in tested] == list(reject_tested)
    assert not result["low"].below_average  # m = 10: 0.0069 > 1/10 * 0.05

    # Had the tiny group's tiny p-value joined the correction, "low" would have been flagged
    # (rank 2 of 11: 0.0069 <= 2/11 * 0.05), so the exclusion is what decides it.
    p_tiny = nps_difference(groups["tiny"], (9 * 180 + 158, 9 * 120 + 120, 9 * 100 + 122)).p_less
    with_tiny, *_ = multipletests([*raw, p_tiny], alpha=0.05, method="fdr_bh")
    assert with_tiny[tested.index("low")]


def test_below_average_flags_only_a_group_whose_nps_is_lower() -> None:
    # Both score 100, but the adjustment shrinks the small group's NPS' more (30/33 against
    # 1000/1003), so its one-sided p is 0.079 and at a lenient fdr its q passes: still not
    # below average, because its NPS is not below the rest's.
    result = below_average({"small": (30, 0, 0), "big": (1000, 0, 0)}, fdr=0.5)
    assert result["small"].q_value is not None and result["small"].q_value <= 0.5
    assert not result["small"].below_average


def test_below_average_needs_someone_to_compare_with() -> None:
    assert below_average({"only": (10, 10, 80)}, min_n=1)["only"].tested is False
    assert below_average({}) == {}


def test_benjamini_hochberg_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    p_values = np.concatenate([rng.uniform(0, 0.01, 5), rng.uniform(0, 1, 25)])
    ours = benjamini_hochberg(list(p_values), 0.05)
    reject, adjusted, *_ = multipletests(p_values, alpha=0.05, method="fdr_bh")
    assert ours == pytest.approx(list(adjusted), abs=1e-12)
    assert [q <= 0.05 for q in ours] == list(reject)
    assert benjamini_hochberg([]) == []


# --------------------------------------------------------------------------- sample size


def test_sample_size_by_hand() -> None:
    # ceil(1.959964**2 / 0.05**2 - 3) = ceil(3.841459 / 0.0025 - 3) = ceil(1533.58) = 1534
    assert sample_size(5) == 1534
    assert sample_size(5, variance=1.0) == 1534
    # Var 0.6: ceil(3.841459 * 0.6 / 0.0025 - 3) = ceil(918.95) = 919
    assert sample_size(5, variance=0.6) == 919
    # 90 %: ceil(1.644854**2 / 0.0001 - 3) = ceil(27052.4 - 3) = 27050
    assert sample_size(1, confidence=0.90) == math.ceil(1.6448536269514722**2 / 0.0001 - 3)
    assert sample_size(100, variance=0.1) == 0  # never negative


def test_sample_size_gives_the_margin_it_promises() -> None:
    n = sample_size(5, variance=0.6)
    # At that n the half-width z*sqrt(Var/(n+3)) is within 5 points; one fewer is not.
    assert 100 * Z95 * math.sqrt(0.6 / (n + 3)) <= 5
    assert 100 * Z95 * math.sqrt(0.6 / (n - 1 + 3)) > 5


# --------------------------------------------------------------------------- shares


def test_wilson_matches_statsmodels_and_a_closed_form() -> None:
    low, high = wilson_interval(5, 1000)
    sm_low, sm_high = proportion_confint(5, 1000, alpha=0.05, method="wilson")
    assert low == pytest.approx(sm_low, abs=1e-12)
    assert high == pytest.approx(sm_high, abs=1e-12)
    # 0 of n: lower 0, upper z^2 / (n + z^2).
    zero_low, zero_high = wilson_interval(0, 10)
    assert zero_low == pytest.approx(0.0, abs=1e-15)
    assert zero_high == pytest.approx(Z95**2 / (10 + Z95**2), abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(7, 7)[1] == pytest.approx(1.0)


def test_extrapolate_sentence() -> None:
    result = extrapolate(5, 1000, 1_000_000)
    sm_low, sm_high = proportion_confint(5, 1000, alpha=0.05, method="wilson")
    assert result.share == 0.005 and result.estimate == 5000
    assert result.low == round(sm_low * 1_000_000) == 2138
    assert result.high == round(sm_high * 1_000_000) == 11651
    assert result.describe() == (
        "5 of 1,000 surveyed → about 5,000 of 1,000,000 customers (95% interval 2,138\u201311,651)"
    )
    assert "(90% interval" in extrapolate(5, 1000, 1_000_000, confidence=0.90).describe()


def test_csat_top_box_share() -> None:
    result = csat([5, 4, 3, 2, 1, 5])
    assert result.n == 6 and result.share == pytest.approx(0.5)
    sm_low, sm_high = proportion_confint(3, 6, alpha=0.05, method="wilson")
    assert (result.low, result.high) == pytest.approx((sm_low, sm_high), abs=1e-12)
    assert csat([5, 4, 3, 2, 1, 5], top_box_min=5).share == pytest.approx(2 / 6)
    empty = csat([])
    assert empty.share is None and (empty.low, empty.high) == (0.0, 1.0)


def test_ces_student_t_by_hand() -> None:
    result = ces([1, 2, 3, 4, 5])
    # mean 3, s = sqrt(2.5), t(4, 0.975) = 2.7764451051977934
    half = 2.7764451051977934 * math.sqrt(2.5) / math.sqrt(5)
    assert result.n == 5 and result.mean == 3.0
    assert result.low == pytest.approx(3 - half, abs=1e-12)
    assert result.high == pytest.approx(3 + half, abs=1e-12)
    assert ces([4]) == type(result)(1, 4.0, None, None)
    assert ces([]).mean is None


# --------------------------------------------------------------------------- before / after


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(40, 100, 20, 100), (30, 200, 28, 180), (5, 50, 9, 60), (0, 30, 3, 40)],
)
@pytest.mark.parametrize(
    ("ours", "theirs"), [("greater", "larger"), ("less", "smaller"), ("two-sided", "two-sided")]
)
def test_two_proportions_matches_statsmodels(
    x1: int, n1: int, x2: int, n2: int, ours: Any, theirs: str
) -> None:
    result = two_proportions(x1, n1, x2, n2, alternative=ours)
    z, p_value = proportions_ztest([x1, x2], [n1, n2], alternative=theirs)
    assert result.z == pytest.approx(z, abs=1e-12)
    assert result.p_value == pytest.approx(p_value, abs=1e-12)
    assert result.diff == pytest.approx(x1 / n1 - x2 / n2)


def test_two_proportions_by_hand() -> None:
    result = two_proportions(40, 100, 20, 100)
    # pooled 60/200 = 0.3; se = sqrt(0.3 * 0.7 * 0.02); z = 0.2 / se
    z = 0.2 / math.sqrt(0.3 * 0.7 * 0.02)
    assert (result.p1, result.p2) == (0.4, 0.2)
    assert result.z == pytest.approx(z, abs=1e-12)
    assert result.p_value == pytest.approx(_normal_sf(z), abs=1e-12)
    same = two_proportions(0, 20, 0, 30, alternative="two-sided")
    assert same.z == 0.0 and same.p_value == pytest.approx(1.0)


def test_fix_effect_verdicts() -> None:
    real = fix_effect(40, 100, 20, 100)
    assert real.verdict == "verified" and real.significant
    assert real.drop_points == pytest.approx(20.0)
    assert real.p_value == pytest.approx(two_proportions(40, 100, 20, 100).p_value)

    flat = fix_effect(30, 100, 30, 100)
    assert flat.verdict == "not_effective" and not flat.significant
    assert flat.p_value == pytest.approx(0.5)

    worse = fix_effect(20, 100, 40, 100)
    assert worse.verdict == "not_effective" and worse.drop_points == pytest.approx(-20.0)

    small_drop = fix_effect(12, 40, 9, 40)  # 30 % -> 22.5 %: real-looking, not significant
    assert small_drop.verdict == "not_effective"

    # 30 % -> 20 % of 100 each: z = 0.1 / sqrt(0.25 * 0.75 * 0.02) = 1.633, p = 0.0512.
    borderline = fix_effect(30, 100, 20, 100)
    assert borderline.p_value == pytest.approx(_normal_sf(0.1 / math.sqrt(0.25 * 0.75 * 0.02)))
    assert borderline.verdict == "not_effective"
    assert fix_effect(30, 100, 20, 100, alpha=0.10).verdict == "verified"

    tiny = fix_effect(9, MIN_EFFECT_N - 1, 0, 50)
    assert tiny.verdict == "insufficient_data" and tiny.p_value is None
    assert tiny.before_share == 1.0 and not tiny.significant
    assert fix_effect(50, 50, 0, MIN_EFFECT_N - 1).verdict == "insufficient_data"
    assert fix_effect(9, MIN_EFFECT_N, 0, MIN_EFFECT_N).verdict == "verified"
    assert fix_effect(0, 0, 0, 0).before_share is None


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: nps_interval(-1, 0, 0),
        lambda: nps_interval(1, 1, 1, confidence=1.0),
        lambda: nps_interval(1, 1, 1, confidence=0.0),
        lambda: nps_interval(1, 1, 1, confidence=95),
        lambda: nps_interval(1.5, 1, 1),  # type: ignore[arg-type]
        lambda: nps_counts([3, 11]),
        lambda: nps_counts([-1]),
        lambda: nps_counts([9], promoter_min=6, detractor_max=6),
        lambda: nps_bayes_interval(1, 1, 1, prior=(1.0, 0.0, 1.0)),
        lambda: nps_bayes_interval(1, 1, 1, draws=0),
        lambda: nps_difference((1, 1, -1), (1, 1, 1)),
        lambda: below_average({"a": (1, 1, 1)}, fdr=0),
        lambda: below_average({"a": (-1, 1, 1)}),
        lambda: sample_size(0),
        lambda: sample_size(-5),
        lambda: sample_size(5, variance=0),
        lambda: sample_size(5, confidence=1.5),
        lambda: wilson_interval(11, 10),
        lambda: wilson_interval(-1, 10),
        lambda: extrapolate(1, 0, 100),
        lambda: extrapolate(1, 10, 5),
        lambda: two_proportions(1, 0, 1, 10),
        lambda: two_proportions(1, 10, 1, 0),
        lambda: two_proportions(11, 10, 1, 10),
        lambda: two_proportions(-1, 10, 1, 10),
        lambda: two_proportions(1, 10, 1, 10, alternative="larger"),  # type: ignore[arg-type]
        lambda: fix_effect(5, 4, 1, 10),
        lambda: fix_effect(1, 10, 1, 10, alpha=0),
        lambda: z_for(-0.5),
        lambda: ces([1.0, float("nan")]),
    ],
)
def test_bad_input_raises_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()
