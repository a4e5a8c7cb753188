"""Steps in a series of positive numbers (one centre step time per commit), found with PELT. Pure.

Method (``docs/history.md`` gives the measured detection and false-alarm rates):

1. Work on ``y = log(x)``: a step is a ratio, and noise on step times is multiplicative.
2. Noise: ``sigma`` from the first differences of ``y`` (differences remove the level, so steps do not
   inflate it), the largest 10% of them (at least one) left out, since a step spoils one difference: the
   root mean square of the rest, corrected for the truncation of a normal distribution, over sqrt(2).
   (The MAD of the differences, tried first, is too noisy with 30 points: 5-10% of flat series had an
   alarm.) ``SIGMA_FLOOR`` keeps a near-deterministic series (the ``fake`` runner) from calling a 1%
   wobble a step.
3. PELT (``ruptures.Pelt``, ``model="l2"``, ``min_size=1``, ``jump=1``) on ``y / sigma`` with the
   penalty ``PENALTY_FACTOR * ln(n)`` per change point: a BIC-style penalty (a change point adds two
   parameters, a position and a level, each costing ``ln(n)`` in units of the noise variance, i.e. 2 ln(n)),
   raised to 4 ln(n) because ``sigma`` is itself estimated from few points: with 3 ln(n), 3-5% of flat
   30-commit series had a change point, with 4 ln(n) 1-3% (benchmarks/history_detection.py).
   Segments may be one run long, so that the newest commit can start a step as soon as it is measured:
   it does when ``(y_n - m)^2 * k / (k + 1)`` exceeds the penalty (``m`` the mean of the ``k`` runs of the
   last segment), i.e. a single run more than about ``sqrt(4 ln n)`` sigma off the level (3.7 sigma at
   n = 30). A one-run spike in the middle costs two change points (about 5.2 sigma at n = 30); both are
   reported, marked ``provisional`` (the segment is one run).

A step's size is the ratio of the medians (in the original scale) of the segments after and before it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

MIN_POINTS = 4  # fewer points: no judgement (the noise cannot be estimated)
MIN_SIZE = 1  # PELT's shortest segment: one run, so that the newest commit can start a step
PENALTY_FACTOR = 4.0
SIGMA_FLOOR = 0.005  # 0.5% (in log units)
TRIM = 0.1  # share of the largest first differences left out of the noise estimate


@dataclass(frozen=True)
class Step:
    """A change point: the segment starting at ``index`` differs from the one before it by ``ratio``."""

    index: int
    ratio: float  # median(after) / median(before); > 1 is slower when the values are times
    before: float
    after: float
    provisional: bool = False  # the new segment is one run (the newest, or a spike)


@dataclass(frozen=True)
class Detection:
    n: int
    steps: tuple[Step, ...]
    sigma: float  # the noise estimate, in log units (0.02 = about 2%)
    penalty: float  # per change point, in units of sigma^2
    judged: bool  # False when the series is too short (see ``reason``)
    reason: str = ""

    def step_at(self, index: int) -> Step | None:
        return next((s for s in self.steps if s.index == index), None)


def noise(logs: Sequence[float]) -> float:
    """sigma of the log values from their first differences, the largest ``TRIM`` of them (at least one) left
    out: a step spoils one difference. The root mean square of the rest is corrected for the truncation of a
    normal distribution and divided by sqrt(2) (a difference of two values has twice their variance)."""
    diffs = sorted(abs(b - a) for a, b in zip(logs, logs[1:]))
    if len(diffs) < 2:
        return SIGMA_FLOOR
    keep = len(diffs) - max(1, round(TRIM * len(diffs)))
    share = keep / len(diffs)
    q = statistics.NormalDist().inv_cdf((1.0 + share) / 2.0)
    kept_var = 1.0 - 2.0 * q * math.exp(-q * q / 2.0) / math.sqrt(2.0 * math.pi) / share  # E[Z^2 | |Z| < q]
    rms = math.sqrt(sum(d * d for d in diffs[:keep]) / keep)
    return max(rms / math.sqrt(2.0 * kept_var), SIGMA_FLOOR)


def penalty(n: int) -> float:
    return PENALTY_FACTOR * math.log(n)


def detect(values: Sequence[float]) -> Detection:
    """The steps of ``values`` (all > 0), in order of position."""
    n = len(values)
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError("values must be finite and > 0")
    if n < MIN_POINTS:
        return Detection(n, (), SIGMA_FLOOR, 0.0, False, f"{n} point(s); at least {MIN_POINTS} are needed")
    logs = [math.log(v) for v in values]
    sigma, pen = noise(logs), penalty(n)
    y = [v / sigma for v in logs]
    starts = _pelt(y, pen)
    bounds = [0, *starts, n]
    segments = [sorted(values[a:b]) for a, b in zip(bounds, bounds[1:])]
    steps = tuple(Step(i, float(statistics.median(after) / statistics.median(before)),
                       float(statistics.median(before)), float(statistics.median(after)), provisional=len(after) == 1)
                  for i, before, after in zip(starts, segments, segments[1:]))
    return Detection(n, steps, sigma, pen, True)


def _pelt(y: Sequence[float], pen: float) -> list[int]:
    """Start indices of the segments after the first (ruptures returns segment ends, the last being n)."""
    import numpy as np
    import ruptures

    ends = ruptures.Pelt(model="l2", min_size=MIN_SIZE, jump=1).fit(np.asarray(y, dtype=float)).predict(pen=pen)
    return [int(e) for e in ends[:-1]]
