"""Per (workload, runner, device) cell, one point per commit: the centre step time with its 95% CI.

All stored runs of one commit are pooled (a commit measured twice gets one point from both runs). The
worker processes of the commit's ``ok`` cells with samples are the replicates:

* >= 3 processes (``fwbench.stats.MIN_PROCESSES``): the geometric mean of the per-process medians with
  Student's t-interval on their logarithms (:func:`fwbench.stats.geometric_mean_ci`), ``method="processes"``;
* fewer: the median of the pooled steps with its distribution-free CI (:func:`fwbench.stats.summarize`),
  ``method="steps"``.

Points are ordered by the commit's date (its earliest stored run), ties by the order of the index. A point
whose centre is not > 0 (a timer too coarse for the step) is left out: a step is a ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fwbench.history.store import Entry

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Point:
    commit: str
    date: str
    centre: float  # seconds per step
    ci_low: float
    ci_high: float
    method: str  # "processes" or "steps"
    processes: int
    steps: int
    threads: tuple[int, ...] = ()  # the thread counts the cells ran with (a change explains a step)


@dataclass(frozen=True)
class Series:
    workload: str
    runner: str
    device: str
    points: tuple[Point, ...]

    @property
    def key(self) -> Key:
        return self.workload, self.runner, self.device

    @property
    def name(self) -> str:
        return "/".join(self.key)


@dataclass(frozen=True)
class Commit:
    commit: str
    date: str
    runs: int


def commits(runs: list[tuple[Entry, dict[str, Any]]]) -> list[Commit]:
    """The commits of the history in date order (a commit's date: its earliest run)."""
    first: dict[str, tuple[str, int]] = {}
    count: dict[str, int] = {}
    for i, (e, _) in enumerate(runs):
        first[e.commit] = min(first.get(e.commit, (e.date, i)), (e.date, i))
        count[e.commit] = count.get(e.commit, 0) + 1
    return [Commit(c, first[c][0], count[c]) for c in sorted(first, key=lambda c: first[c])]


def build(runs: list[tuple[Entry, dict[str, Any]]]) -> list[Series]:
    """One :class:`Series` per cell key found in any run, its points in commit order."""
    from fwbench.results import cells

    order = commits(runs)
    samples: dict[Key, dict[str, list[tuple[float, ...]]]] = {}
    threads: dict[tuple[Key, str], set[int]] = {}
    for entry, doc in runs:
        for c in cells(doc, entry.file):
            key = (c.workload, c.runner, c.device)
            per_commit = samples.setdefault(key, {})
            if c.ok and c.step_s and not c.noisy:  # measured on a busy machine: not evidence of a step
                per_commit.setdefault(entry.commit, []).append(c.step_s)
                if c.threads is not None:
                    threads.setdefault((key, entry.commit), set()).add(c.threads)
    out = []
    for key in sorted(samples):
        pts = (_point(k.commit, k.date, samples[key][k.commit], threads.get((key, k.commit), set()))
               for k in order if samples[key].get(k.commit))
        out.append(Series(*key, tuple(p for p in pts if p.centre > 0 and math.isfinite(p.centre))))
    return out


def _point(commit: str, date: str, processes: list[tuple[float, ...]], threads: set[int]) -> Point:
    import numpy as np

    from fwbench.stats import MIN_PROCESSES, geometric_mean_ci, summarize

    steps = sum(len(p) for p in processes)
    medians = np.array([np.median(p) for p in processes])
    if (medians > 0).sum() >= MIN_PROCESSES:  # a zero median (a timer too coarse) has no logarithm
        medians = medians[medians > 0]
        centre, lo, hi = geometric_mean_ci(medians)
        return Point(commit, date, float(centre), float(lo), float(hi), "processes", len(medians), steps,
                     tuple(sorted(threads)))
    s = summarize(np.concatenate([np.asarray(p, dtype=float) for p in processes]))
    return Point(commit, date, s.median, s.ci_low, s.ci_high, "steps", len(processes), steps, tuple(sorted(threads)))
