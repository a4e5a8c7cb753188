"""Statistics for the gate: checked against naive implementations and SciPy, and for coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm, ttest_ind

from fwbench import stats


@pytest.mark.parametrize("n", [7, 8, 31, 40])
def test_exact_sampler_matches_naive_bootstrap_of_the_median(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.lognormal(0, 0.1, size=n)
    naive = np.median(x[rng.integers(0, n, size=(40000, n))], axis=1)
    fast = stats.bootstrap_medians(x, 40000, seed=1)
    assert np.quantile(fast, [0.025, 0.5, 0.975]) == pytest.approx(np.quantile(naive, [0.025, 0.5, 0.975]), rel=2e-3)
    assert fast.std() == pytest.approx(naive.std(), rel=0.05)
    if n % 2:  # odd n: every bootstrap median is one of the samples
        assert set(np.unique(fast)) <= set(x)


def test_bootstrap_is_vectorised_and_reproducible() -> None:
    x = np.random.default_rng(0).lognormal(0, 0.05, size=(4, 5, 30))
    med, lo, hi = stats.bootstrap_median_ci(x, seed=3)
    assert med.shape == lo.shape == hi.shape == (4, 5)
    assert np.all(lo <= med) and np.all(med <= hi)
    again = stats.bootstrap_median_ci(x, seed=3)
    assert np.array_equal(lo, again[1]) and np.array_equal(hi, again[2])
    assert np.array_equal(stats.bootstrap_median_ci(x)[1], stats.bootstrap_median_ci(x)[1])  # default seed fixed


def test_ratio_ci_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(2)
    base = rng.lognormal(0, 0.05, size=(400, 40))
    cur = 1.07 * rng.lognormal(0, 0.05, size=(400, 40))
    ratio, lo, hi, se = stats.ratio_of_medians_ci(base, cur, 0.95, n_boot=2000, seed=5)
    assert ratio == pytest.approx(np.median(cur, -1) / np.median(base, -1))
    coverage = np.mean((lo <= 1.07) & (1.07 <= hi))
    assert 0.90 <= coverage <= 0.99
    # the bootstrap standard error of log(ratio) agrees with the asymptotic one for the median
    assert np.median(se) == pytest.approx(math.sqrt(2) * math.sqrt(math.pi / 2) * 0.05 / math.sqrt(40), rel=0.2)


def test_mann_whitney_is_scipys_two_sided_test() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 25)), rng.normal(0.5, size=(3, 25))
    got = stats.mann_whitney_p(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(mannwhitneyu(b[i], a[i], alternative="two-sided").pvalue)
    assert stats.mann_whitney_p(a[0], a[0]) == pytest.approx(1.0, abs=0.05)


def test_t_log_ratio_agrees_with_scipy_and_covers() -> None:
    rng = np.random.default_rng(4)
    base = rng.lognormal(0, 0.03, size=(2000, 3))
    cur = 1.05 * rng.lognormal(0, 0.03, size=(2000, 3))
    ratio, lo, hi, p, se, df = stats.t_log_ratio(base, cur, 0.95)
    assert p[:5] == pytest.approx(ttest_ind(np.log(cur[:5]), np.log(base[:5]), axis=-1).pvalue)
    assert ratio[0] == pytest.approx(math.exp(np.log(cur[0]).mean() - np.log(base[0]).mean()))
    assert np.all(df == 4)
    assert 0.93 <= np.mean((lo <= 1.05) & (1.05 <= hi)) <= 0.97


def test_t_log_ratio_with_no_spread() -> None:
    same = np.array([1.0, 1.0, 1.0])
    r, lo, hi, p, se, _ = stats.t_log_ratio(same, same)
    assert (r, p, se) == (1.0, 1.0, 0.0)
    r, lo, hi, p, se, _ = stats.t_log_ratio(same, 2 * same)
    assert r == pytest.approx(2.0) and p == 0.0


def test_benjamini_hochberg_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 = .02, .02, .04, .04 (monotone)
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    with_nan = stats.benjamini_hochberg(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
    rows = stats.benjamini_hochberg(np.array([[0.01, 0.04, 0.03, 0.005], [0.5, 0.5, 0.5, 0.5]]))
    assert rows[0] == pytest.approx([0.02, 0.04, 0.04, 0.02]) and rows[1] == pytest.approx([0.5] * 4)
    assert stats.benjamini_hochberg(np.array([])).shape == (0,)


def test_min_detectable_change() -> None:
    se = 0.01
    normal = math.expm1((norm.ppf(0.995) + norm.ppf(0.8)) * se)
    assert stats.min_detectable_change(se, 0.01) == pytest.approx(normal)
    assert stats.min_detectable_change(se, 0.01, df=4) > normal  # few processes: less power, larger MDC
    assert stats.min_detectable_change(2 * se, 0.01) > normal
    assert stats.min_detectable_change(0.0, 0.01) == 0.0


def test_compare_processes_picks_the_unit_of_replication() -> None:
    rng = np.random.default_rng(6)
    three = [rng.lognormal(0, 0.05, 30) for _ in range(3)]
    two = three[:2]
    by_process = stats.compare_processes(three, [1.2 * x for x in three])
    assert by_process.method == "processes" and (by_process.n_base, by_process.df) == (3, 4.0)
    pooled = stats.compare_processes(two, [1.2 * x for x in three])
    assert pooled.method == "steps" and pooled.n_base == 60 and pooled.n_current == 90
    assert pooled.ci_low < pooled.ratio < pooled.ci_high
    with pytest.raises(ValueError):
        stats.compare_processes([], three)


def test_geometric_mean_ci() -> None:
    g, lo, hi = stats.geometric_mean_ci(np.array([1.0, 2.0, 4.0]))
    assert g == pytest.approx(2.0) and lo < 2.0 < hi


def test_summarize_keeps_its_interface() -> None:
    s = stats.summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (s.n, s.median, s.min, s.max) == (5, 3.0, 1.0, 5.0)
    assert stats.median_ci_ranks(5) == (0, 4)
