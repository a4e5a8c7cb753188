"""Pure statistics over raw per-step samples. No I/O, no framework; SciPy is imported lazily."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Summary of one sample set (seconds). ``ci_low``/``ci_high``: distribution-free 95% CI of the median."""

    n: int
    median: float
    ci_low: float
    ci_high: float
    mean: float
    stdev: float
    min: float
    max: float

    @property
    def rel_half_width(self) -> float:
        """Half the CI width relative to the median (0.02 = ±2%)."""
        return (self.ci_high - self.ci_low) / 2.0 / self.median if self.median > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based order-statistic ranks ``(lo, hi)`` bounding the median with at least ``confidence``.

    Uses the binomial(n, 1/2) distribution of the number of samples below the median, so the interval
    holds for any continuous distribution (no normality assumption about step times).
    """
    from scipy.stats import binom

    if n < 1:
        raise ValueError("need at least one sample")
    alpha = 1.0 - confidence
    # largest j with P(B <= j) <= alpha/2; the CI is [x_(j), x_(n-1-j)] (0-based order statistics)
    j = int(binom.ppf(alpha / 2, n, 0.5))
    if binom.cdf(j, n, 0.5) > alpha / 2:
        j -= 1
    if j < 0:  # too few samples for the requested confidence: the widest interval available
        return 0, n - 1
    return j, n - 1 - j


def summarize(samples: list[float] | np.ndarray, confidence: float = 0.95) -> Summary:
    """Median with its CI, mean, standard deviation, min and max of ``samples``."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("need at least one sample")
    lo, hi = median_ci_ranks(n, confidence)
    return Summary(n=n, median=float(np.median(x)), ci_low=float(x[lo]), ci_high=float(x[hi]),
                   mean=float(x.mean()), stdev=float(x.std(ddof=1)) if n > 1 else 0.0,
                   min=float(x[0]), max=float(x[-1]))
