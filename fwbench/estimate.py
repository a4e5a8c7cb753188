"""One number per (workload, runner, device): a cell's repeats combined, with the statistics of ``compare``.

Every place that shows a cell's step time (the terminal tables and summary, ``fwbench show``, the report in
every format, ``fwbench export``) takes it from :func:`cell_estimate`, so one cell has one CI everywhere:

* **>= 3 successful worker processes** (``--repeats 3``): the unit of replication is the process, as in
  ``compare``: the centre is the geometric mean of the per-process medians, its CI Student's t interval on
  their logarithms (:func:`fwbench.stats.geometric_mean_ci`). Method ``processes``.
* **1 or 2 processes**: the steps are pooled: the median of all steps with its bootstrap percentile CI
  (:func:`fwbench.stats.bootstrap_median_ci`, fixed seed, so the same file always gives the same interval).
  This sees only within-process noise. Method ``steps``.

A ratio of two cells (a speedup) is ``compare``'s ratio with its CI (:func:`ratio`), and is printed with as
many digits as its CI supports (:func:`round_to_ci`). A cell whose CI half-width exceeds :data:`WIDE_CI` of
its centre is *wide*: its figures are shown, marked noisy, and ratios against it are marked uncertain.

Pure: cells in, numbers out. NumPy and SciPy load when an estimate is computed, not on import.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from fwbench.cells import Cell

CONFIDENCE = 0.95
WIDE_CI = 0.10  # a CI half-width above 10% of the centre marks a cell noisy (docs/report.md)

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Estimate:
    """A cell's typical step time (s) with its CI, from ``processes`` successful worker processes."""

    centre_s: float
    low_s: float
    high_s: float
    processes: int
    steps: int
    method: str              # "processes" or "steps" (see the module docstring)
    busy: bool = False       # some process was timed on a busy machine (interference.noisy)
    confidence: float = CONFIDENCE

    @property
    def rel_half_width(self) -> float:
        """Half the CI's width relative to the centre (0.02 = ±2%)."""
        return (self.high_s - self.low_s) / 2.0 / self.centre_s if self.centre_s > 0 else math.inf

    @property
    def wide(self) -> bool:
        """The CI is wider than ±:data:`WIDE_CI` (or rests on a single step, which has no spread to measure):
        too noisy for its figure to be trusted to two digits."""
        return self.rel_half_width > WIDE_CI or self.steps < 2

    @property
    def noisy(self) -> bool:
        """Wide CI, or measured on a busy machine: shown, but flagged."""
        return self.wide or self.busy

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rel_half_width": self.rel_half_width, "wide": self.wide}


@dataclass(frozen=True)
class Ratio:
    """``value`` = other / base step time (> 1: ``other`` is slower) with its CI; ``uncertain`` when either
    cell is noisy (wide CI or busy machine)."""

    value: float
    low: float
    high: float
    method: str
    uncertain: bool

    @property
    def speedup(self) -> tuple[float, float, float]:
        """The same ratio read as how many times faster ``other`` is: ``(x, low, high)``."""
        return 1.0 / self.value, 1.0 / self.high, 1.0 / self.low

    @property
    def apart(self) -> bool:
        """The CI excludes 1: a real difference at this confidence, not noise."""
        return self.low > 1.0 or self.high < 1.0


def step_samples(cells: list[Cell]) -> list[Any]:
    """Positive step times of each successful process (a zero time has no logarithm and is left out)."""
    import numpy as np

    ok = [x[x > 0] for x in (np.asarray(c.step_s, dtype=float) for c in cells if c.ok)]
    return [x for x in ok if len(x)]


def cell_estimate(cells: list[Cell], confidence: float = CONFIDENCE) -> Estimate | None:
    """The combined estimate of one (workload, runner, device)'s processes; ``None`` with no successful samples."""
    import numpy as np

    from fwbench import stats

    procs = step_samples(cells)
    if not procs:
        return None
    busy = any(c.noisy for c in cells if c.ok)
    steps = sum(len(p) for p in procs)
    if len(procs) >= stats.MIN_PROCESSES:
        medians = np.array([np.median(p) for p in procs])
        c, lo, hi = (float(v) for v in stats.geometric_mean_ci(medians, confidence))
        return Estimate(c, lo, hi, len(procs), steps, "processes", busy, confidence)
    pooled = np.concatenate(procs)
    if len(pooled) == 1:
        v = float(pooled[0])
        return Estimate(v, v, v, len(procs), 1, "steps", busy, confidence)
    c, lo, hi = (float(v) for v in stats.bootstrap_median_ci(pooled, confidence))
    return Estimate(c, lo, hi, len(procs), steps, "steps", busy, confidence)


def ratio(base: list[Cell], other: list[Cell], confidence: float = CONFIDENCE) -> Ratio | None:
    """``other``'s step time over ``base``'s with ``compare``'s CI (t on process medians with >= 3 processes a
    side, else a bootstrap of the pooled medians); ``None`` when either has fewer than two step samples."""
    from fwbench import stats

    b, o = step_samples(base), step_samples(other)
    if sum(map(len, b)) < 2 or sum(map(len, o)) < 2:  # a single step has no spread: no interval to give
        return None
    test = stats.compare_processes(b, o, confidence=confidence)
    eb, eo = cell_estimate(base, confidence), cell_estimate(other, confidence)
    uncertain = bool((eb and eb.noisy) or (eo and eo.noisy))
    return Ratio(test.ratio, test.ci_low, test.ci_high, test.method, uncertain)


def group(cells: list[Cell]) -> dict[Key, list[Cell]]:
    """Cells by ``(workload, runner, device)`` in first-seen order, each group in ``repeat`` order."""
    out: dict[Key, list[Cell]] = {}
    for c in cells:
        out.setdefault((c.workload, c.runner, c.device), []).append(c)
    return {k: sorted(v, key=lambda c: c.repeat) for k, v in out.items()}


def decimals_for(low: float, high: float, significant: int = 3) -> int:
    """Decimal places a value with CI ``[low, high]`` deserves: down to the first significant digit of the
    CI's half-width, and never more than ``significant`` significant digits of ``high``."""
    half = abs(high - low) / 2.0
    top = max(abs(low), abs(high))
    cap = significant - 1 - math.floor(math.log10(top)) if top > 0 else 0
    if half <= 0 or not math.isfinite(half):
        return max(0, cap)
    return max(0, min(cap, -math.floor(math.log10(half))))


def round_to_ci(value: float, low: float, high: float) -> str:
    """``value`` printed to what its CI supports: ``17.05`` with CI 12–24 is ``17``; ``1.234`` with CI
    1.22–1.25 is ``1.23``; at most three significant digits."""
    return f"{value:.{decimals_for(low, high)}f}"
