"""The timing self-check: does a runner's synchronisation really wait for the device? (framework-free)

Accelerators run asynchronously: a step *returns* as soon as its kernels are queued. Per-step timing
(:func:`fwbench.timing.measure`) times each step up to ``session.value(loss)``, which must wait for the
device. If a runner's ``value`` returned early, its step times would measure only the launch and look
impossibly fast. The check, on the same warm model and batches as the timing phase, measures three
per-step times:

- ``synced_s``: median step time with the runner's own sync after every step (how per-step timing times);
- ``launch_s``: median time to *issue* a step with no sync at all (what a naive timer would report);
- ``drained_s``: ``K`` steps issued back to back, then a device-wide barrier (``torch.cuda.synchronize``,
  ``tf.test.experimental.sync_devices``), divided by ``K``: the device's real throughput per step, i.e.
  what windowed timing (:func:`fwbench.timing.measure_windowed`) measures, with one window of ``K`` steps.

A properly synchronised step can never be much shorter than the drained throughput (pipelining only
makes the drained time *shorter*), so ``synced_s < UNSYNCED_RATIO * drained_s`` flags the runner as
``unsynchronised``. ``launch_s`` far below ``synced_s`` shows the device was indeed asynchronous, i.e.
that the synchronisation mattered. Without a device-wide barrier (JAX) the verdict is ``unchecked``.

``sync_cost_ratio = synced_s / drained_s`` is the **cost of per-step synchronisation** on this cell: how
many times longer a step takes when the host waits for the device after every step (per-step timing) than
when steps are queued back to back (a real training loop, windowed timing). About 1 means per-step
timing loses nothing: the device is always busy anyway (a large model), or there is no queue to drain (a
CPU, where the frameworks' ops have finished when they return). 2 means per-step timing halves the
measured throughput: launch overhead and the device idling between steps, typical of small models on a
fast GPU, and worst for the runners with the most host-side work per step (eager ones). Below 1 only by
noise; far below (``< UNSYNCED_RATIO``) is the ``unsynchronised`` verdict. ``None`` without a barrier.
It comes from ``steps`` steps of each kind (10 by default, one window of 10 for the drained time), so it
is a rough figure; a cell timed both ways gives the precise one (the ratio of its two medians).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

UNSYNCED_RATIO = 0.5
DEFAULT_STEPS = 10


@dataclass
class SyncCheck:
    """Per-step seconds of the three measurements, the verdict (``ok``, ``unsynchronised``, ``unchecked``),
    and ``sync_cost_ratio`` = ``synced_s / drained_s`` (per-step synchronised / windowed step time; see the
    module docstring; ``None`` without a device-wide barrier)."""

    synced_s: float
    launch_s: float
    drained_s: float | None
    steps: int
    verdict: str
    note: str = ""
    sync_cost_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_cost_ratio(synced_s: float, drained_s: float | None) -> float | None:
    """Per-step synchronised step time over the drained (windowed) step time; ``None`` when unmeasured (pure)."""
    if drained_s is None or drained_s <= 0:
        return None
    return synced_s / drained_s


def verdict(synced_s: float, launch_s: float, drained_s: float | None) -> tuple[str, str]:
    """``(verdict, note)`` from the three per-step times (pure; see the module docstring)."""
    if drained_s is None:
        return "unchecked", "no device-wide barrier for this framework"
    if drained_s > 0 and synced_s < UNSYNCED_RATIO * drained_s:
        return "unsynchronised", (f"a synchronised step took {synced_s * 1e3:.3g} ms but the device needs "
                                  f"{drained_s * 1e3:.3g} ms per step: the runner's sync returns before the device "
                                  "finishes, so its step times are too short")
    if synced_s > 0 and launch_s < UNSYNCED_RATIO * synced_s:
        return "ok", (f"asynchronous device: issuing a step takes {launch_s * 1e3:.3g} ms, finishing it "
                      f"{synced_s * 1e3:.3g} ms; the timings include the wait")
    return "ok", ""


def check(step: Callable[[int], Any], value: Callable[[Any], float], barrier: Callable[[], None] | None,
          steps: int = DEFAULT_STEPS, clock: Callable[[], float] = time.perf_counter) -> SyncCheck:
    """Run the three measurements with ``steps`` steps each; ``step(i)`` issues step ``i`` and returns its loss."""
    drain = barrier or (lambda: None)
    drain()
    synced = []
    for i in range(steps):
        t0 = clock()
        value(step(i))
        synced.append(clock() - t0)
    drain()
    launches, loss = [], None
    start = clock()
    for i in range(steps):
        t0 = clock()
        loss = step(steps + i)
        launches.append(clock() - t0)
    if barrier is not None:
        barrier()
    drained = (clock() - start) / steps if barrier is not None else None
    value(loss)  # leave nothing queued behind us
    s, l = statistics.median(synced), statistics.median(launches)
    v, note = verdict(s, l, drained)
    return SyncCheck(s, l, drained, steps, v, note, sync_cost_ratio(s, drained))
