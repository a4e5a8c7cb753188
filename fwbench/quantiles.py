"""Percentiles of latency samples with distribution-free confidence intervals (pure Python, no SciPy).

The sample q-quantile is the order statistic of rank ``ceil(n q)`` (1-based; the smallest sample with at
least a fraction q of the samples at or below it). Its confidence interval is a pair of order statistics
``[x_(l), x_(u)]``: the number of samples below the true q-quantile is Binomial(n, q) for any continuous
distribution, so ``P(x_(l) <= Q_q <= x_(u)) = P(l <= B <= u - 1)`` with ``B ~ Binomial(n, q)`` exactly. Each
bound is chosen so that its tail holds at most ``(1 - level) / 2``: the largest ``l`` with
``P(B <= l - 1) <= alpha/2`` and the smallest ``u`` with ``P(B >= u) <= alpha/2``. This generalises the
median's interval of :func:`fwbench.stats.median_ci_ranks` (q = 1/2) to p90 and p99.

Where even the extreme sample cannot give a bound at the level (too few samples for that tail: p99 needs
n >= 368 for an upper bound at 95%, the median of 5 cold starts gets at most 93.75%), the extreme sample is
the bound, ``attained`` is false and ``coverage`` says what the interval actually holds; reports print that
coverage beside such an interval. The samples are assumed independent; successive latencies of one process are not quite (a
slow stretch of the machine shows up in a run of requests), which ``docs/scenarios.md`` says.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

LATENCY_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def _binom_pmf(n: int, q: float) -> list[float]:
    """P(B = k) for k = 0..n, computed in logs (stable for n in the millions of requests)."""
    if q <= 0.0 or q >= 1.0:
        raise ValueError("q must be strictly between 0 and 1")
    lq, l1q = math.log(q), math.log1p(-q)
    lg = math.lgamma(n + 1)
    return [math.exp(lg - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lq + (n - k) * l1q) for k in range(n + 1)]


@dataclass(frozen=True)
class Ranks:
    """1-based ranks of a quantile and its interval's bounds, the exact coverage of that interval, and
    whether it reaches the level asked for (else a bound is the extreme sample)."""

    point: int
    low: int
    high: int
    coverage: float
    attained: bool


def quantile_ranks(n: int, q: float, level: float = 0.95) -> Ranks:
    """The order statistics of :mod:`this module's <fwbench.quantiles>` rule for ``n`` samples."""
    if n < 1:
        raise ValueError("need at least one sample")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be strictly between 0 and 1")
    pmf = _binom_pmf(n, q)
    half = (1.0 - level) / 2.0
    point = min(n, max(1, math.ceil(n * q - 1e-12)))
    # lower bound x_(l): the true quantile lies below it when B <= l - 1
    low, below = None, 0.0
    for l in range(1, point + 1):
        below += pmf[l - 1]  # P(B <= l - 1)
        if below > half + 1e-15:
            break
        low = l
    # upper bound x_(u): the true quantile lies above it when B >= u
    high, above = None, 0.0
    for u in range(n, point - 1, -1):
        above += pmf[u]  # P(B >= u)
        if above > half + 1e-15:
            break
        high = u
    attained = low is not None and high is not None
    low, high = low or 1, high or n  # the extremes where the level is out of reach
    miss_low, miss_high = sum(pmf[:low]), sum(pmf[high:])
    return Ranks(point, low, high, max(0.0, 1.0 - miss_low - miss_high), attained)


@dataclass(frozen=True)
class Quantile:
    """One percentile of a sample: its value, its interval, the interval's exact coverage and whether that
    reaches the level asked for, in the samples' unit."""

    name: str
    q: float
    value: float
    low: float
    high: float
    coverage: float
    attained: bool
    n: int

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)


def quantile(samples: Sequence[float], q: float, name: str = "", level: float = 0.95) -> Quantile:
    xs = sorted(float(v) for v in samples)
    r = quantile_ranks(len(xs), q, level)
    return Quantile(name or f"p{q * 100:g}", q, xs[r.point - 1], xs[r.low - 1], xs[r.high - 1], r.coverage,
                    r.attained, len(xs))


def latency_summary(samples: Sequence[float], level: float = 0.95) -> dict:
    """p50, p90 and p99 with their intervals, and the maximum (no interval: an extreme has none), as stored
    in a latency cell's ``latency`` record (see ``docs/results.md``)."""
    xs = sorted(float(v) for v in samples)
    if not xs:
        raise ValueError("need at least one sample")
    return {"n": len(xs), "level": level, "max": xs[-1],
            "percentiles": [quantile(xs, q, name, level).to_dict() for name, q in LATENCY_PERCENTILES]}
