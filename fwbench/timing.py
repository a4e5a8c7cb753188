"""Warm-up and adaptive timing loop, framework-free.

The runner supplies ``step(i) -> float``: run training (or inference) step ``i`` *and* synchronise the
device, returning the loss as a Python float. Fetching the loss forces all pending work to finish, so
the clock is read only after the step really completed. Each step is timed on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from fwbench.stats import summarize
from fwbench.workload_spec import Timing

StepFn = Callable[[int], float]


class Window(Protocol):
    """Told when the timed steps begin and end (e.g. :class:`fwbench.interference.Watch`)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Both:
    """Several windows as one: started in order, stopped in reverse (the innermost measures the least)."""

    def __init__(self, *windows: Window):
        self.windows = windows

    def start(self) -> None:
        for w in self.windows:
            w.start()

    def stop(self) -> None:
        for w in reversed(self.windows):
            w.stop()


def both(*windows: Window) -> Window:
    """One :class:`Window` that starts and stops every one of ``windows``."""
    return _Both(*windows)


@dataclass
class TimingResult:
    """Raw times in seconds. ``warmup_s[0]`` is the first step (trace/compile cost included)."""

    warmup_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    diverged_step: int | None = None
    stop_reason: str = ""


def measure(step: StepFn, policy: Timing, clock: Callable[[], float] = time.perf_counter,
            check_every: int = 5, window: Window | None = None) -> TimingResult:
    """Run ``policy.warmup`` timed warm-up steps, then timed steps until the median is precise enough.

    Stops after at least ``min_steps`` steps and ``min_seconds`` once the 95% CI half-width of the median
    is within ``target_ci`` of it; or at ``max_steps`` / ``max_seconds`` (whichever comes first); or at
    the first non-finite loss (``diverged_step`` records the global step index). ``window`` is started
    just before the first timed step and stopped just after the last (warm-up excluded).
    """
    res = TimingResult()
    i = 0
    for _ in range(policy.warmup):
        t0 = clock()
        loss = step(i)
        res.warmup_s.append(clock() - t0)
        res.losses.append(loss)
        if not math.isfinite(loss):
            res.diverged_step, res.stop_reason = i, "diverged"
            return res
        i += 1
    if window is not None:
        window.start()
    try:
        _timed(step, policy, clock, check_every, res, i)
    finally:
        if window is not None:
            window.stop()
    return res


def _timed(step: StepFn, policy: Timing, clock: Callable[[], float], check_every: int, res: TimingResult,
           i: int) -> None:
    """The timed steps of :func:`measure`, from step index ``i``, into ``res``."""
    start = clock()
    while True:
        t0 = clock()
        loss = step(i)
        t1 = clock()
        res.step_s.append(t1 - t0)
        res.losses.append(loss)
        if not math.isfinite(loss):
            res.diverged_step, res.stop_reason = i, "diverged"
            return
        i += 1
        n, elapsed = len(res.step_s), t1 - start
        if n >= policy.max_steps:
            res.stop_reason = "max_steps"
            return
        if elapsed >= policy.max_seconds and n >= 3:
            res.stop_reason = "max_seconds"
            return
        if n >= policy.min_steps and elapsed >= policy.min_seconds and n % check_every == 0:
            if summarize(res.step_s).rel_half_width <= policy.target_ci:
                res.stop_reason = "ci_target"
                return
