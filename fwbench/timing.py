"""Warm-up and adaptive timing loops, framework-free.

Two ways to time the same steps (``docs/timing.md``):

- :func:`measure`, **per-step**: the runner supplies ``step(i) -> float``, which runs training (or
  inference) step ``i`` *and* synchronises the device, returning the loss as a Python float. Fetching the
  loss forces all pending work to finish, so the clock is read only after the step really completed. Each
  step is timed on its own; on an accelerator this drains the device's queue after every step.
- :func:`measure_windowed`, **windowed**: the runner supplies ``step(i)``, which only *issues* step ``i``
  and returns its loss still on the device (no host synchronisation), a device-wide ``sync()`` and
  ``fetch(lazy_losses) -> list[float]``. Steps run in windows of ``k`` with nothing synchronised inside a
  window, as a real training loop runs them; each window is one sample of the mean step time.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from fwbench.stats import summarize
from fwbench.workload_spec import Timing

StepFn = Callable[[int], float]
LazyStepFn = Callable[[int], Any]
FetchFn = Callable[[Sequence[Any]], Sequence[float]]
SyncFn = Callable[[], None]

MODES = ("per-step", "windowed")
TARGET_WINDOW_S = 0.05  # a window lasts at least this long (issue 19: >= 50 ms), so the barrier's cost is amortised
MAX_WINDOW = 1000  # the most steps in one window, whatever the step time
MIN_WINDOWS = 6  # the fewest samples whose distribution-free 95% CI of the median is narrower than their range


def timing_mode(requested: str | None, device: str) -> str:
    """The mode a cell is timed in: ``requested`` (``--timing``) if given, else ``per-step`` on the CPU (nothing
    queues there, so both modes time the same work) and ``windowed`` on ``cuda``/``tpu`` (as real training
    loops run; the default pending GPU measurements, see ``docs/timing.md``)."""
    if requested is not None:
        if requested not in MODES:
            raise ValueError(f"timing mode must be one of {', '.join(MODES)}, got {requested!r}")
        return requested
    return "per-step" if device == "cpu" else "windowed"


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
    """Raw times in seconds. ``warmup_s[0]`` is the first step (trace/compile cost included).

    ``mode`` is ``"per-step"`` (:func:`measure`) or ``"windowed"`` (:func:`measure_windowed`).

    - ``step_s``: each timed step's own time; per-step mode only (empty in windowed mode, where single
      steps are never timed).
    - ``window_s``: windowed mode only: each window's *mean step time* (window duration / ``window_steps``).
    - ``window_steps``: ``k``, the steps in every window (``None`` in per-step mode).
    - ``target_window_s``: the window duration ``k`` was chosen for (``None`` in per-step mode, or when the
      caller fixed ``k``).
    - ``losses``: every step's loss in global step order, warm-up first (``losses[i]`` is step ``i``'s). In
      windowed mode a diverged window's losses are all kept, so there may be losses after ``diverged_step``.
    - ``sync_point``: where each timed interval ends: ``"value"`` (per-step: the runner's synchronising
      fetch), ``"barrier"`` (windowed: the device-wide barrier, before the losses are fetched) or
      ``"fetch"`` (windowed without a barrier: fetching the window's losses is what waits, inside the clock).

    :attr:`samples` is what the statistics (summary, CI, stopping rule, comparisons) use in either mode, and
    :attr:`timed_steps` the number of steps those samples cover.
    """

    warmup_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    diverged_step: int | None = None
    stop_reason: str = ""
    mode: str = "per-step"
    window_steps: int | None = None
    window_s: list[float] = field(default_factory=list)
    sync_point: str = "value"
    target_window_s: float | None = None

    @property
    def samples(self) -> list[float]:
        """The timing samples: one per step (per-step mode) or one mean step time per window (windowed)."""
        return self.window_s if self.mode == "windowed" else self.step_s

    @property
    def timed_steps(self) -> int:
        """How many steps the timed samples cover (warm-up excluded)."""
        if self.mode == "windowed":
            return len(self.window_s) * (self.window_steps or 0)
        return len(self.step_s)

    def record(self) -> dict[str, Any]:
        """How the cell was timed, for its results (``timing`` field): mode, window size and sync point."""
        windowed = self.mode == "windowed"
        return {"mode": self.mode, "window_steps": self.window_steps, "target_window_s": self.target_window_s,
                "windows": len(self.window_s) if windowed else None, "timed_steps": self.timed_steps,
                "sync_point": self.sync_point}


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


# --------------------------------------------------------------------------------------------------
# Windowed timing: k steps issued back to back, one barrier, one fetch of the k losses.
# --------------------------------------------------------------------------------------------------

def window_size(step_s_estimate: float, target_window_s: float = TARGET_WINDOW_S,
                max_window: int = MAX_WINDOW) -> int:
    """Steps per window: the fewest whose estimated duration reaches ``target_window_s``, in ``[1, max_window]``.

    ``ceil(target / step)``, so 1 ms steps and a 50 ms target give 50; a step as long as the target or
    longer gives 1 (every window is then one step, synchronised: per-step timing); an estimate that is zero
    or not finite (a clock too coarse to see the step) gives ``max_window``.
    """
    cap = max(1, int(max_window))
    if not math.isfinite(step_s_estimate) or step_s_estimate <= 0:
        return cap
    if target_window_s <= 0:
        return 1
    # the small tolerance keeps float noise (0.05 / 0.001 is not exactly 50) from adding a step
    return max(1, min(cap, math.ceil(target_window_s / step_s_estimate * (1 - 1e-9))))


def steady_step_s(warmup_s: Sequence[float]) -> float:
    """The warm-up's steady step time: the median of the warm-up steps after the first (which compiles);
    the first step alone when it is the only one (an over-estimate: windows come out shorter, never longer)."""
    if not warmup_s:
        return float("nan")
    return statistics.median(warmup_s[1:] if len(warmup_s) > 1 else warmup_s)


def measure_windowed(step: LazyStepFn, fetch: FetchFn, sync: SyncFn | None, policy: Timing,
                     clock: Callable[[], float] = time.perf_counter, window: Window | None = None,
                     target_window_s: float = TARGET_WINDOW_S, max_window: int = MAX_WINDOW,
                     steps_per_window: int | None = None) -> TimingResult:
    """Warm-up steps one by one, then windows of ``k`` steps with no synchronisation inside a window.

    ``step(i)`` issues step ``i`` and returns its loss *unfetched*; ``sync()`` waits for all queued device
    work; ``fetch(lazy_losses)`` returns their values as floats (one host transfer, after the barrier).

    - Warm-up: each of ``policy.warmup`` steps is timed alone (a window of one: ``t0, step, sync, t1``, fetch),
      so a diverged warm-up is caught at once; the first step includes tracing and compiling.
    - ``k`` = ``steps_per_window`` if given, else :func:`window_size` of the warm-up's steady step time
      (:func:`steady_step_s`) for ``target_window_s``, capped by ``max_window`` and by
      ``policy.max_steps // MIN_WINDOWS`` (so that at least ``MIN_WINDOWS`` windows fit in ``max_steps``).
    - Each window: ``t0``, ``k`` x ``step``, ``sync()``, ``t1``, then ``fetch`` of its ``k`` losses, outside
      the clock (``k`` scalars after a barrier: a small host transfer, no device work left to wait for). One
      sample: ``(t1 - t0) / k``. Without a barrier (``sync=None``: JAX) the fetch is the wait, and ``t1`` is
      read after it.
    - Stopping, checked after every window, on window means and *steps*: ``max_steps`` (no window runs past it),
      ``max_seconds`` (after at least 3 windows), or ``ci_target`` once there are ``min_steps`` steps,
      ``min_seconds`` and at least ``MIN_WINDOWS`` windows and the 95% CI of the median window mean is within
      ``target_ci``; or ``diverged`` at a window holding a non-finite loss (``diverged_step`` is the global
      index of its first bad step; the window's time and all its losses are kept).

    ``window`` is started just before the first timed window and stopped just after the last.
    """
    res = TimingResult(mode="windowed", sync_point="barrier" if sync is not None else "fetch")
    i = 0
    for _ in range(policy.warmup):
        seconds, losses = _window(step, fetch, sync, clock, i, 1)
        res.warmup_s.append(seconds)
        res.losses.extend(losses)
        if not math.isfinite(losses[0]):
            res.diverged_step, res.stop_reason = i, "diverged"
            return res
        i += 1
    if steps_per_window is None:
        cap = min(max_window, max(1, policy.max_steps // MIN_WINDOWS))
        k = window_size(steady_step_s(res.warmup_s), target_window_s, cap)
        res.target_window_s = target_window_s
    elif steps_per_window < 1:
        raise ValueError(f"steps_per_window must be at least 1, got {steps_per_window}")
    else:
        k = steps_per_window
    res.window_steps = k
    if window is not None:
        window.start()
    try:
        _windows(step, fetch, sync, policy, clock, res, i, k)
    finally:
        if window is not None:
            window.stop()
    return res


def _window(step: LazyStepFn, fetch: FetchFn, sync: SyncFn | None, clock: Callable[[], float], first: int,
            k: int) -> tuple[float, list[float]]:
    """Issue steps ``first .. first + k - 1`` back to back, wait for the device, fetch their losses:
    ``(seconds from the first issue until the wait ended, the k losses as floats)``."""
    t0 = clock()
    lazy = [step(j) for j in range(first, first + k)]
    if sync is not None:
        sync()
        t1 = clock()
        values = fetch(lazy)
    else:  # no barrier: fetching the losses is the wait
        values = fetch(lazy)
        t1 = clock()
    losses = [float(v) for v in values]
    if len(losses) != k:
        raise ValueError(f"fetch returned {len(losses)} losses for {k} steps")
    return t1 - t0, losses


def _windows(step: LazyStepFn, fetch: FetchFn, sync: SyncFn | None, policy: Timing, clock: Callable[[], float],
             res: TimingResult, i: int, k: int) -> None:
    """The timed windows of :func:`measure_windowed`, from step index ``i``, into ``res``."""
    start = clock()
    while True:
        seconds, losses = _window(step, fetch, sync, clock, i, k)
        elapsed = clock() - start  # includes the fetch: the budget counts wall time, the sample does not
        res.window_s.append(seconds / k)
        res.losses.extend(losses)
        bad = next((j for j, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is not None:
            res.diverged_step, res.stop_reason = i + bad, "diverged"
            return
        i += k
        n, steps = len(res.window_s), len(res.window_s) * k
        if steps + k > policy.max_steps:
            res.stop_reason = "max_steps"
            return
        if elapsed >= policy.max_seconds and n >= 3:
            res.stop_reason = "max_seconds"
            return
        if steps >= policy.min_steps and elapsed >= policy.min_seconds and n >= MIN_WINDOWS:
            if summarize(res.window_s).rel_half_width <= policy.target_ci:
                res.stop_reason = "ci_target"
                return
