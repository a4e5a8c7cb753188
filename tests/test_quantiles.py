"""fwbench.quantiles against an independent brute force: exact binomial tails in integer arithmetic.

The reference below shares no code with the module: the probabilities are exact fractions built from
``math.comb`` (q is read as the decimal it is written as), the bounds are searched over every rank, and the
coverage is summed term by term. A Monte-Carlo run checks the coverage claim on real samples, and the
median's ranks must agree with :func:`fwbench.stats.median_ci_ranks`, the older code for q = 1/2.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest

from fwbench.quantiles import LATENCY_PERCENTILES, latency_summary, quantile, quantile_ranks
from fwbench.stats import median_ci_ranks

QS = (0.5, 0.9, 0.99)
NS = tuple(range(1, 61)) + (100, 367, 368, 400, 1000)
HALF = Fraction(1, 40)  # (1 - 0.95) / 2


@lru_cache(maxsize=None)
def table(n: int, q: float) -> tuple[int, tuple[int, ...]]:
    """Exact binomial weights as integers over the common denominator ``d**n`` (q = a/d read as the decimal
    it is written as): ``(d**n, cum)`` with ``cum[k] = d**n * P(B <= k - 1)``, k = 0..n+1."""
    p = Fraction(str(q))
    a, d = p.numerator, p.denominator
    cum = [0]
    for k in range(n + 1):
        cum.append(cum[-1] + math.comb(n, k) * a**k * (d - a) ** (n - k))
    assert cum[-1] == d**n  # the weights sum to one
    return d**n, tuple(cum)


def below(n: int, q: float, l: int) -> Fraction:
    """P(x_(l) > Q_q) = P(B <= l - 1): fewer than l samples under the true quantile."""
    total, cum = table(n, q)
    return Fraction(cum[l], total)


def above(n: int, q: float, u: int) -> Fraction:
    """P(x_(u) < Q_q) = P(B >= u)."""
    total, cum = table(n, q)
    return Fraction(total - cum[u], total)


def exact_coverage(n: int, q: float, l: int, u: int) -> Fraction:
    """P(x_(l) <= Q_q <= x_(u)) = P(l <= B <= u - 1)."""
    total, cum = table(n, q)
    return Fraction(cum[u] - cum[l], total)


def point_rank(n: int, q: float) -> int:
    return max(1, math.ceil(n * Fraction(str(q))))


def brute_ranks(n: int, q: float) -> tuple[int, int, bool]:
    """Search every rank: the innermost l <= point whose lower tail is <= alpha/2, the innermost u >= point
    whose upper tail is; the extremes (and not attained) where no rank qualifies."""
    point = point_rank(n, q)
    lows = [l for l in range(1, point + 1) if below(n, q, l) <= HALF]
    highs = [u for u in range(point, n + 1) if above(n, q, u) <= HALF]
    attained = bool(lows) and bool(highs)
    return (max(lows) if lows else 1), (min(highs) if highs else n), attained


CASES = [(n, q) for n in NS for q in QS]


@pytest.mark.parametrize("q", QS)
def test_ranks_and_coverage_match_brute_force(q):
    for n in NS:
        r = quantile_ranks(n, q)
        low, high, attained = brute_ranks(n, q)
        assert r.point == point_rank(n, q), (n, q)
        assert (r.low, r.high, r.attained) == (low, high, attained), (n, q)
        assert r.coverage == pytest.approx(float(exact_coverage(n, q, r.low, r.high)), abs=1e-9), (n, q)
        assert r.low <= r.point <= r.high


@pytest.mark.parametrize("q", QS)
def test_attained_intervals_hold_each_tail_and_are_tightest(q):
    seen = 0
    for n in NS:
        r = quantile_ranks(n, q)
        if not r.attained:
            # the level is out of reach: an extreme sample is the bound because even it breaks the tail rule
            # (the other tail may be so small that the coverage still reaches the level: n = 367, p99)
            assert below(n, q, 1) > HALF or above(n, q, n) > HALF, (n, q)
            continue
        seen += 1
        assert below(n, q, r.low) <= HALF and above(n, q, r.high) <= HALF, (n, q)
        assert exact_coverage(n, q, r.low, r.high) >= Fraction(95, 100), (n, q)
        # moving either bound inward breaks its tail (or crosses the point estimate)
        assert r.low == r.point or below(n, q, r.low + 1) > HALF, (n, q)
        assert r.high == r.point or above(n, q, r.high - 1) > HALF, (n, q)
    assert seen >= 3  # p99 reaches 95% only from n = 368: 368, 400, 1000


def test_p99_needs_368_samples_and_1000_gives_ranks_983_to_997():
    """The figures the latency stopping rule (fwbench.latency) and the docs quote."""
    assert not quantile_ranks(367, 0.99).attained and brute_ranks(367, 0.99)[2] is False
    assert quantile_ranks(368, 0.99).attained and brute_ranks(368, 0.99)[2] is True
    r = quantile_ranks(1000, 0.99)
    assert (r.point, r.low, r.high) == (990, 983, 997) == (990,) + brute_ranks(1000, 0.99)[:2]


def test_five_cold_starts_median_is_min_max_at_93_75_percent():
    r = quantile_ranks(5, 0.5)
    assert (r.low, r.high, r.attained) == (1, 5, False)
    assert r.coverage == pytest.approx(0.9375) and exact_coverage(5, 0.5, 1, 5) == Fraction(15, 16)


@pytest.mark.parametrize("n,q", [(60, 0.9), (400, 0.99), (25, 0.5)])
def test_monte_carlo_coverage_of_exponential_samples(n, q):
    """4000 samples of n exponential latencies: the share of intervals that hold the true quantile
    -ln(1 - q) is the exact coverage within sampling error (and so at least the level, where attained)."""
    trials = 4000
    r = quantile_ranks(n, q)
    rng = np.random.default_rng(18)
    xs = np.sort(rng.exponential(1.0, size=(trials, n)), axis=1)
    truth = -math.log1p(-q)
    hits = float(np.mean((xs[:, r.low - 1] <= truth) & (truth <= xs[:, r.high - 1])))
    se = math.sqrt(r.coverage * (1 - r.coverage) / trials)
    assert abs(hits - r.coverage) <= 4 * se + 1e-12
    if r.attained:
        assert hits >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def test_median_agrees_with_stats_median_ci_ranks():
    for n in list(range(1, 201)) + [367, 1000, 4001]:
        r = quantile_ranks(n, 0.5)
        assert (r.low - 1, r.high - 1) == median_ci_ranks(n, 0.95), n
        r90 = quantile_ranks(n, 0.5, level=0.9)
        assert (r90.low - 1, r90.high - 1) == median_ci_ranks(n, 0.9), n


def test_quantile_picks_the_order_statistics():
    xs = [float(v) for v in range(100, 0, -1)]  # unsorted input: 100 .. 1
    p = quantile(xs, 0.9)
    r = quantile_ranks(100, 0.9)
    assert (p.value, p.low, p.high) == (float(r.point), float(r.low), float(r.high))
    assert p.name == "p90" and p.n == 100 and p.q == 0.9


def test_latency_summary_shape():
    rng = np.random.default_rng(0)
    xs = list(rng.exponential(1e-3, size=500))
    s = latency_summary(xs)
    assert set(s) == {"n", "level", "max", "percentiles"}
    assert s["n"] == 500 and s["level"] == 0.95 and s["max"] == max(xs)
    names = [p["name"] for p in s["percentiles"]]
    assert names == [name for name, _ in LATENCY_PERCENTILES] == ["p50", "p90", "p99"]
    for p, (_, q) in zip(s["percentiles"], LATENCY_PERCENTILES):
        assert set(p) == {"name", "q", "value", "low", "high", "coverage", "attained", "n"}
        assert p["q"] == q and p["n"] == 500 and p["attained"] is True
        assert p["low"] <= p["value"] <= p["high"] <= s["max"]
        assert p["coverage"] >= 0.95
    assert [p["value"] for p in s["percentiles"]] == sorted(p["value"] for p in s["percentiles"])
    assert latency_summary(list(reversed(xs))) == s  # order of requests does not matter
    small = latency_summary([0.003, 0.001, 0.002])
    assert small["n"] == 3 and small["max"] == 0.003
    assert [p["attained"] for p in small["percentiles"]] == [False, False, False]
    with pytest.raises(ValueError):
        latency_summary([])
