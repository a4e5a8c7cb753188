"""Pure statistics over raw per-step samples. No I/O, no framework; SciPy is imported lazily."""

from __future__ import annotations

import functools
import math
import statistics
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


@functools.lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based order-statistic ranks ``(lo, hi)`` bounding the median with at least ``confidence``.

    Uses the binomial(n, 1/2) distribution of the number of samples below the median, so the interval
    holds for any continuous distribution (no normality assumption about step times). Exact up to
    n = 10000; beyond, the normal approximation with continuity correction (off by at most one rank). Pure Python on purpose: importing SciPy costs every worker seconds before its first step.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    half_alpha = (1.0 - confidence) / 2
    # largest j with P(B <= j) <= alpha/2; the CI is [x_(j), x_(n-1-j)] (0-based order statistics)
    if n <= 10_000:
        log_term, cdf, j = -n * math.log(2.0), 0.0, -1
        for i in range(n):
            cdf += math.exp(log_term)
            if cdf > half_alpha:
                break
            j = i
            log_term += math.log(n - i) - math.log(i + 1)
    else:
        z = statistics.NormalDist().inv_cdf(half_alpha)
        j = math.floor(n / 2 - 0.5 + z * math.sqrt(n) / 2)
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


# --------------------------------------------------------------------------------------------------
# Comparing two sets of measurements (used by fwbench.compare). Every function here is vectorised
# over leading axes, so that the seeded gate simulations run thousands of comparisons in one call.
# --------------------------------------------------------------------------------------------------

DEFAULT_BOOT = 4000  # bootstrap resamples: the percentile CI's Monte-Carlo error is then well under 0.5%
DEFAULT_SEED = 20240501  # fixed, so the same two files always give the same CI (a gate must be reproducible)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(DEFAULT_SEED if seed is None else seed)


def bootstrap_medians(x: np.ndarray, n_boot: int = DEFAULT_BOOT,
                      seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Medians of ``n_boot`` bootstrap resamples of ``x`` (over its last axis): shape ``x.shape[:-1] + (n_boot,)``.

    Exact and O(n_boot) rather than O(n_boot * n): the m-th smallest of n resampled values is
    ``sorted(x)[floor(n * U)]`` where ``U`` is the m-th order statistic of n uniforms, ``U ~ Beta(m, n-m+1)``
    (``floor(n*u)`` is monotone in ``u``). For even n the next order statistic is drawn from its
    conditional law ``U' = U + (1-U) * Beta(1, n-m)``, and the median is the mean of the two.
    """
    rng = _rng(seed)
    xs = np.sort(np.asarray(x, dtype=float), axis=-1)
    n = xs.shape[-1]
    if n == 0:
        raise ValueError("need at least one sample")
    shape = xs.shape[:-1] + (n_boot,)
    m = (n + 1) // 2
    u = rng.beta(m, n - m + 1, size=shape)
    lo = np.take_along_axis(xs, np.minimum((n * u).astype(np.intp), n - 1), axis=-1)
    if n % 2:
        return lo
    u2 = u + (1.0 - u) * rng.beta(1, n - m, size=shape)
    hi = np.take_along_axis(xs, np.minimum((n * u2).astype(np.intp), n - 1), axis=-1)
    return (lo + hi) / 2.0


def bootstrap_median_ci(x: np.ndarray, confidence: float = 0.95, n_boot: int = DEFAULT_BOOT,
                        seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(median, low, high)`` over the last axis: the median with its bootstrap percentile CI."""
    x = np.asarray(x, dtype=float)
    boot = bootstrap_medians(x, n_boot, seed)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail], axis=-1)
    return np.median(x, axis=-1), lo, hi


def ratio_of_medians_ci(base: np.ndarray, current: np.ndarray, confidence: float = 0.95,
                        n_boot: int = DEFAULT_BOOT, seed: int | np.random.Generator | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``median(current) / median(base)`` with a bootstrap percentile CI, and the bootstrap standard error
    of its logarithm: ``(ratio, low, high, se_log)``. The two sets are resampled independently."""
    rng = _rng(seed)
    base, current = np.asarray(base, dtype=float), np.asarray(current, dtype=float)
    log_ratio = np.log(bootstrap_medians(current, n_boot, rng)) - np.log(bootstrap_medians(base, n_boot, rng))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(log_ratio, [tail, 1.0 - tail], axis=-1)
    ratio = np.median(current, axis=-1) / np.median(base, axis=-1)
    return ratio, np.exp(lo), np.exp(hi), log_ratio.std(axis=-1, ddof=1)


def mann_whitney_p(base: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Two-sided Mann–Whitney U p-value (SciPy) that the two sets come from the same distribution.

    Distribution-free, so the heavy right tail of step times (a preempted step) cannot fake a difference
    the way it moves a mean. Exact for small samples without ties, normal approximation otherwise.
    """
    from scipy.stats import mannwhitneyu

    return np.asarray(mannwhitneyu(current, base, alternative="two-sided", axis=-1).pvalue, dtype=float)


def t_log_ratio(base: np.ndarray, current: np.ndarray, confidence: float = 0.95
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Student's two-sample t-test on the logarithms of per-process medians (one value per worker process).

    Returns ``(ratio, low, high, p, se_log, df)``: ratio = geometric mean of current / geometric mean of
    base, its t-based CI, the two-sided p-value, the standard error of the log ratio and the degrees of
    freedom (``n_base + n_current - 2``). Used when both sides ran in >= 3 processes: process medians are
    close to log-normal, and with 3-5 values per side a rank test cannot reach small p-values (3 vs 3:
    p >= 0.1) while a bootstrap has too few distinct resamples. The variance is pooled (not Welch) because
    both sides are the same cell on the same kind of machine, and Welch's degrees of freedom estimated
    from 3 + 3 values are themselves noisy (they fall towards 2, where the 99% t quantile is 9.9): in the
    seeded simulations Welch caught a 10% slowdown in 94% of 3-process comparisons, the pooled test in 99.9%.
    """
    from scipy.stats import t as student_t

    lb, lc = np.log(np.asarray(base, dtype=float)), np.log(np.asarray(current, dtype=float))
    nb, nc = lb.shape[-1], lc.shape[-1]
    df = nb + nc - 2
    pooled = ((nb - 1) * lb.var(axis=-1, ddof=1) + (nc - 1) * lc.var(axis=-1, ddof=1)) / df
    se = np.sqrt(pooled * (1.0 / nb + 1.0 / nc))
    diff = lc.mean(axis=-1) - lb.mean(axis=-1)
    half = student_t.ppf(0.5 + confidence / 2.0, df) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * student_t.sf(np.abs(diff) / se, df)  # Student's two-sided p, as scipy.stats.ttest_ind
    p = np.where(se > 0, p, np.where(diff == 0, 1.0, 0.0))  # zero spread: exact equality or certain difference
    return np.exp(diff), np.exp(diff - half), np.exp(diff + half), p, se, np.full(np.shape(diff), float(df))


def geometric_mean_ci(x: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(geometric mean, low, high)`` over the last axis: Student's t interval on the logarithms
    (for a handful of per-process medians)."""
    from scipy.stats import t as student_t

    lx = np.log(np.asarray(x, dtype=float))
    n = lx.shape[-1]
    if n < 2:
        raise ValueError("need at least two values")
    centre = lx.mean(axis=-1)
    half = student_t.ppf(0.5 + confidence / 2.0, n - 1) * lx.std(axis=-1, ddof=1) / np.sqrt(n)
    return np.exp(centre), np.exp(centre - half), np.exp(centre + half)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN entries (cells without a test) stay NaN
    and do not count towards the number of tests. Vectorised over leading axes (one family per row)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=float)
    if p.ndim == 1:
        q = np.full_like(p, np.nan)
        ok = ~np.isnan(p)
        if ok.any():
            q[ok] = false_discovery_control(p[ok], method="bh")
        return q
    if np.isnan(p).any():
        return np.stack([benjamini_hochberg(row) for row in p.reshape(-1, p.shape[-1])]).reshape(p.shape)
    return false_discovery_control(p, axis=-1, method="bh")


def min_detectable_change(se_log: np.ndarray, alpha: float, power: float = 0.8,
                          df: np.ndarray | float = math.inf) -> np.ndarray:
    """Smallest relative slowdown (0.05 = 5%) that a two-sided test at ``alpha`` detects with ``power``,
    given the standard error of the log ratio; Student's t with ``df`` degrees of freedom (normal when
    infinite), so that a t-test on 3 processes per side is not credited with a normal test's power."""
    from scipy.stats import t as student_t

    crit = student_t.ppf(1.0 - alpha / 2.0, df) + student_t.ppf(power, df)
    return np.expm1(crit * np.asarray(se_log, dtype=float))


@dataclass(frozen=True)
class RatioTest:
    """Current vs baseline for one cell. ``ratio`` > 1 means slower. ``method``: ``steps`` (pooled steps,
    Mann–Whitney + bootstrap) or ``processes`` (per-process medians, Student's t on logs); ``df``: the
    t-test's degrees of freedom (infinite for ``steps``)."""

    ratio: float
    ci_low: float
    ci_high: float
    p: float
    se_log: float
    method: str
    n_base: int
    n_current: int
    df: float = math.inf


MIN_PROCESSES = 3  # from this many worker processes per side, compare between-process variation

# What one worker process's step times are summarised by before processes are compared. Chen & Revels
# (2016) argue that interference on a shared machine only ever *adds* time, so a low quantile or the
# minimum moves less under load than the median does. ``p10`` is the order statistic ceil(0.1 n) (the
# inverted-CDF definition), so that its bootstrap below is exact.
ESTIMATORS = ("median", "p10", "min")


def process_estimate(x: np.ndarray, estimator: str = "median") -> np.ndarray:
    """One process's typical step time under ``estimator`` (over the last axis)."""
    x = np.asarray(x, dtype=float)
    if estimator == "median":
        return np.median(x, axis=-1)
    if estimator == "min":
        return np.min(x, axis=-1)
    if estimator == "p10":
        return np.quantile(x, 0.1, axis=-1, method="inverted_cdf")
    raise ValueError(f"unknown estimator {estimator!r}; choose from: {', '.join(ESTIMATORS)}")


def bootstrap_order_stat(x: np.ndarray, k: int, n_boot: int = DEFAULT_BOOT,
                         seed: int | np.random.Generator | None = None) -> np.ndarray:
    """The ``k``-th smallest (1-based) value of ``n_boot`` bootstrap resamples of ``x`` (last axis), exactly:
    the k-th of n resampled values is ``sorted(x)[floor(n U)]`` with ``U ~ Beta(k, n-k+1)`` (see
    :func:`bootstrap_medians`)."""
    rng = _rng(seed)
    xs = np.sort(np.asarray(x, dtype=float), axis=-1)
    n = xs.shape[-1]
    if not 1 <= k <= n:
        raise ValueError("order statistic out of range")
    u = rng.beta(k, n - k + 1, size=xs.shape[:-1] + (n_boot,))
    return np.take_along_axis(xs, np.minimum((n * u).astype(np.intp), n - 1), axis=-1)


def bootstrap_estimates(x: np.ndarray, estimator: str, n_boot: int = DEFAULT_BOOT,
                        seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Bootstrap replicates of :func:`process_estimate`. The minimum has none that mean anything (the
    bootstrap minimum equals the sample minimum with probability about 1 - 1/e): :class:`ValueError`."""
    if estimator == "median":
        return bootstrap_medians(x, n_boot, seed)
    if estimator == "p10":
        n = np.shape(x)[-1]
        return bootstrap_order_stat(x, max(1, math.ceil(0.1 * n)), n_boot, seed)
    if estimator == "min":
        raise ValueError("the bootstrap of a minimum is not a sound basis for a CI: compare the minimum "
                         f"between >= {MIN_PROCESSES} processes per side")
    raise ValueError(f"unknown estimator {estimator!r}; choose from: {', '.join(ESTIMATORS)}")


def paired_log_ratio(base: np.ndarray, current: np.ndarray, confidence: float = 0.95
                     ) -> tuple[float, float, float, float, float, float]:
    """Paired t-test on the logarithms of matched pairs (one pair per A/B round, see :mod:`fwbench.ab`).

    ``base[i]`` and ``current[i]`` were measured back to back in round ``i``, so whatever the machine did
    during that round (frequency, neighbours, thermal state) is common to both and cancels in
    ``d_i = log current_i - log base_i``. Returns ``(ratio, low, high, p, se_log, df)``: ratio = exp(mean d),
    its t-interval, the two-sided p-value, the standard error of mean d and ``df = n - 1``.
    """
    from scipy.stats import t as student_t

    d = np.log(np.asarray(current, dtype=float)) - np.log(np.asarray(base, dtype=float))
    n = d.shape[-1]
    if n < 2:
        raise ValueError("need at least two pairs")
    df = n - 1
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = float(student_t.ppf(0.5 + confidence / 2.0, df)) * se
    if se > 0:
        p = float(2.0 * student_t.sf(abs(mean) / se, df))
    else:
        p = 1.0 if mean == 0 else 0.0
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), p, se, float(df)


@dataclass(frozen=True)
class VarianceParts:
    """Where the noise of one A/B cell comes from, as relative standard deviations (0.02 = 2%) on the log
    scale, estimated by the method of moments from R rounds of one process per side (see
    :func:`variance_parts`). ``None`` where it cannot be estimated."""

    step: float | None  # step-to-step jitter inside a process (robust: 1.4826 MAD of log step times)
    within: float | None  # what that jitter leaves in one process's estimate (bootstrap standard error)
    between_processes: float | None  # process-to-process beyond ``within``, in the same round
    between_rounds: float | None  # round-to-round drift common to both sides (cancelled by pairing)
    rounds: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def variance_parts(a_steps: list[np.ndarray], b_steps: list[np.ndarray], estimator: str = "median",
                   n_boot: int = 500) -> VarianceParts:
    """Decompose the noise of paired per-round processes (``a_steps[i]``, ``b_steps[i]``: round i's steps).

    With ``e`` the log of a process's estimate and ``d_i = e_Bi - e_Ai``, ``m_i = (e_Ai + e_Bi) / 2``:
    ``Var(d) = 2 (s_proc^2 + s_within^2)`` and ``Var(m) = s_round^2 + (s_proc^2 + s_within^2) / 2``, so
    ``s_proc^2 = Var(d)/2 - s_within^2`` and ``s_round^2 = Var(m) - Var(d)/4`` (negative estimates, which
    sampling noise produces when a component is small, are reported as 0). A real A/B difference shifts
    every ``d_i`` alike and leaves these variances unchanged.
    """
    a = [np.asarray(x, dtype=float) for x in a_steps]
    b = [np.asarray(x, dtype=float) for x in b_steps]
    if len(a) != len(b):
        raise ValueError("need the same number of rounds on both sides")
    r = len(a)
    logs = [np.log(x) for x in a + b if len(x)]
    step = float(np.median([1.4826 * np.median(np.abs(lx - np.median(lx))) for lx in logs])) if logs else None
    within = None
    if estimator != "min" and all(len(x) >= 2 for x in a + b) and r:
        ses = [float(np.std(np.log(bootstrap_estimates(x, estimator, n_boot, seed=i)), ddof=1))
               for i, x in enumerate(a + b)]
        within = float(np.sqrt(np.mean(np.square(ses))))
    if r < 2:
        return VarianceParts(step, within, None, None, r)
    ea = np.log([float(process_estimate(x, estimator)) for x in a])
    eb = np.log([float(process_estimate(x, estimator)) for x in b])
    var_d, var_m = float(np.var(eb - ea, ddof=1)), float(np.var((ea + eb) / 2.0, ddof=1))
    proc = max(0.0, var_d / 2.0 - (within or 0.0) ** 2)
    rounds = max(0.0, var_m - var_d / 4.0)
    return VarianceParts(step, within, math.sqrt(proc), math.sqrt(rounds), r)


def compare_processes(base: list[np.ndarray], current: list[np.ndarray], confidence: float = 0.95,
                      n_boot: int = DEFAULT_BOOT, seed: int | np.random.Generator | None = None,
                      estimator: str = "median") -> RatioTest:
    """Compare two cells given each one's step samples per worker process.

    With >= :data:`MIN_PROCESSES` processes on both sides the unit of replication is the process: each
    process's median step time is one observation, so a process that was slow throughout (CPU frequency,
    memory placement, a noisy neighbour) counts once instead of as hundreds of agreeing steps. With fewer
    processes the steps are pooled: Mann–Whitney on the steps, bootstrap CI of the ratio of medians; this
    cannot see between-process variation, which is why the CI gate recommends ``--repeats 3`` or more.

    ``estimator`` (:data:`ESTIMATORS`) summarises each process (or the pooled steps). Pooled steps with
    ``p10``: bootstrap CI of the ratio and a bootstrap p-value (twice the smaller tail of the log ratio's
    replicates around 0); with ``min``: :class:`ValueError` (no sound CI for a pooled minimum).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from: {', '.join(ESTIMATORS)}")
    base = [np.asarray(b, dtype=float) for b in base if len(b)]
    current = [np.asarray(c, dtype=float) for c in current if len(c)]
    if not base or not current:
        raise ValueError("need samples on both sides")
    if len(base) >= MIN_PROCESSES and len(current) >= MIN_PROCESSES:
        mb = np.array([process_estimate(b, estimator) for b in base])
        mc = np.array([process_estimate(c, estimator) for c in current])
        r, lo, hi, p, se, df = t_log_ratio(mb, mc, confidence)
        return RatioTest(float(r), float(lo), float(hi), float(p), float(se), "processes", len(mb), len(mc), float(df))
    xb, xc = np.concatenate(base), np.concatenate(current)
    if estimator != "median":
        rng = _rng(seed)
        log_ratio = (np.log(bootstrap_estimates(xc, estimator, n_boot, rng))
                     - np.log(bootstrap_estimates(xb, estimator, n_boot, rng)))
        tail = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(log_ratio, [tail, 1.0 - tail])
        p = min(1.0, 2.0 * min(float(np.mean(log_ratio <= 0)), float(np.mean(log_ratio >= 0))))
        r = float(process_estimate(xc, estimator) / process_estimate(xb, estimator))
        return RatioTest(r, float(np.exp(lo)), float(np.exp(hi)), max(p, 1.0 / n_boot), float(log_ratio.std(ddof=1)),
                         "steps", len(xb), len(xc))
    r, lo, hi, se = ratio_of_medians_ci(xb, xc, confidence, n_boot, seed)
    p = mann_whitney_p(xb, xc)
    return RatioTest(float(r), float(lo), float(hi), float(p), float(se), "steps", len(xb), len(xc))
