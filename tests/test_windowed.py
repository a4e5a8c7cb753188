"""Windowed timing (fwbench.timing.measure_windowed), driven by a fake clock and a fake asynchronous device.

The device keeps a queue: issuing a step costs ``launch`` seconds of host time and queues ``work(i)`` seconds
of device time; a barrier advances the host clock to the moment the queue is empty; a fetch of losses costs
``fetch_s`` of host time (and, as a real transfer does, waits for the device first). Every issue, barrier and
fetch is written to one event log, with the ``window`` start/stop, so the tests can read the exact order.
"""

from __future__ import annotations

import math

import pytest

from fwbench import synccheck
from fwbench.stats import summarize
from fwbench.timing import (MIN_WINDOWS, TimingResult, measure, measure_windowed, steady_step_s, timing_mode,
                            window_size)
from fwbench.workload_spec import Timing


class Lazy:
    """A loss still on the device: only the device's ``fetch`` can read it."""

    def __init__(self, i: int):
        self.i = i

    def __float__(self) -> float:
        raise AssertionError(f"step {self.i}'s loss was read on the host without a fetch")


class FakeDevice:
    def __init__(self, launch=0.0, work=lambda i: 0.001, loss=lambda i: 1000.0 + i, fetch_s=0.0, compile_s=0.0):
        self.now, self.free_at = 0.0, 0.0
        self.launch, self.work, self.loss, self.fetch_s, self.compile_s = launch, work, loss, fetch_s, compile_s
        self.log: list[tuple] = []

    # the three functions measure_windowed takes, and the clock
    def clock(self) -> float:
        return self.now

    def step(self, i: int) -> Lazy:
        self.log.append(("step", i))
        self.now += self.launch + (self.compile_s if i == 0 else 0.0)  # the first call traces and compiles on the host
        self.free_at = max(self.free_at, self.now) + self.work(i)
        return Lazy(i)

    def sync(self) -> None:
        self.log.append(("sync",))
        self.now = max(self.now, self.free_at)

    def fetch(self, lazies) -> list[float]:
        self.log.append(("fetch", [z.i for z in lazies]))
        self.now = max(self.now, self.free_at) + self.fetch_s  # a transfer waits for the values it copies
        return [self.loss(z.i) for z in lazies]

    # a runner's value(): barrier, then fetch; and per-step timing's step, which ends with it
    def value(self, lazy: Lazy) -> float:
        self.sync()
        return self.fetch([lazy])[0]

    def synced_step(self, i: int) -> float:
        return self.value(self.step(i))

    # what happened, as letters: s = a step issued, B = a barrier, F = a fetch, [ ] = window start / stop
    def pattern(self) -> str:
        return "".join({"step": "s", "sync": "B", "fetch": "F", "start": "[", "stop": "]"}[e[0]] for e in self.log)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.log if e[0] == kind)


class Recorder:
    """A timing ``window`` that writes its start and stop into the device's log."""

    def __init__(self, dev: FakeDevice):
        self.dev = dev

    def start(self) -> None:
        self.dev.log.append(("start",))

    def stop(self) -> None:
        self.dev.log.append(("stop",))


def policy(**kw) -> Timing:
    base = dict(warmup=3, min_steps=1, max_steps=100_000, min_seconds=0.0, max_seconds=1e9, target_ci=0.02)
    return Timing(**{**base, **kw})


def run(dev: FakeDevice, pol: Timing, **kw) -> TimingResult:
    return measure_windowed(dev.step, dev.fetch, dev.sync, pol, clock=dev.clock, window=Recorder(dev), **kw)


def jitter(i: int) -> float:
    """1 to 1.5 ms (median and long-run mean 1.25 ms), never periodic in whole steps: every window's mean differs."""
    return 0.001 * (1.25 + 0.25 * math.sin(1.7 * i))


# ------------------------------------------------------------------------------------------- window size
def test_window_size_reaches_the_target_duration():
    assert window_size(0.001, 0.05, 1000) == 50  # 1 ms steps, 50 ms windows (no float rounding up to 51)
    assert window_size(0.003, 0.05, 1000) == 17  # 17 x 3 ms = 51 ms >= 50 ms; 16 would be 48 ms
    assert window_size(0.0001, 0.05, 1000) == 500


def test_window_size_is_capped_and_at_least_one():
    assert window_size(0.00001, 0.05, 1000) == 1000  # 5000 steps would be needed: capped
    assert window_size(0.001, 0.05, 20) == 20
    assert window_size(0.2, 0.05, 1000) == 1  # a step longer than the target: one step per window
    assert window_size(0.05, 0.05, 1000) == 1
    assert window_size(0.0, 0.05, 64) == 64  # a step the clock could not see: as many as allowed
    assert window_size(float("nan"), 0.05, 64) == 64
    assert window_size(0.001, 0.05, 0) == 1


def test_steady_step_time_leaves_out_the_compiling_step():
    assert steady_step_s([5.0, 0.001, 0.002, 0.001]) == 0.001
    assert steady_step_s([5.0]) == 5.0
    assert math.isnan(steady_step_s([]))


def test_k_is_chosen_from_the_warmup_and_recorded():
    dev = FakeDevice(work=lambda i: 0.001, compile_s=2.0)  # the compile would make k = 1 if it were counted
    res = run(dev, policy(max_steps=1000))
    assert res.window_steps == 50 and res.target_window_s == 0.05
    assert res.record()["window_steps"] == 50 and res.record()["mode"] == "windowed"


def test_k_is_capped_so_that_enough_windows_fit_in_max_steps():
    dev = FakeDevice(work=lambda i: 0.001)
    res = run(dev, policy(max_steps=60, target_ci=0.0))  # 60 // MIN_WINDOWS = 10 < 50
    assert res.window_steps == 60 // MIN_WINDOWS == 10 and len(res.window_s) == 6

    dev = FakeDevice(work=lambda i: 0.00001)
    assert run(dev, policy(max_steps=100_000), max_window=300).window_steps == 300


def test_a_slow_step_gets_windows_of_one_step():
    dev = FakeDevice(work=lambda i: 0.2)
    res = run(dev, policy())
    assert res.window_steps == 1
    assert dev.pattern() == "sBF" * 3 + "[" + "sBF" * len(res.window_s) + "]"


def test_an_explicit_window_size_wins_and_must_be_positive():
    dev = FakeDevice(work=lambda i: 0.001)
    res = run(dev, policy(), steps_per_window=7)
    assert res.window_steps == 7 and res.target_window_s is None
    with pytest.raises(ValueError, match="at least 1"):
        run(FakeDevice(), policy(), steps_per_window=0)


# ------------------------------------------------------------------------------ no sync inside a window
def test_no_barrier_and_no_fetch_inside_a_window():
    dev = FakeDevice(launch=0.0002, work=jitter)
    res = run(dev, policy(warmup=3, max_steps=600, target_ci=0.0))
    k, n = res.window_steps, len(res.window_s)
    assert k > 1 and n >= MIN_WINDOWS
    # warm-up: each step alone, barrier, fetch; then [ k steps, one barrier, one fetch ] per window, nothing else
    assert dev.pattern() == "sBF" * 3 + "[" + ("s" * k + "BF") * n + "]"
    assert dev.count("sync") == 3 + n and dev.count("fetch") == 3 + n
    fetched = [e[1] for e in dev.log if e[0] == "fetch"]
    assert fetched[3:] == [list(range(3 + w * k, 3 + (w + 1) * k)) for w in range(n)]  # each window's own steps


def test_the_clock_stops_at_the_barrier_before_the_fetch():
    # 50 steps of 1 ms queued behind 0.2 ms launches: the device finishes at 0.2 ms + 50 ms; the fetch costs 2 ms
    dev = FakeDevice(launch=0.0002, work=lambda i: 0.001, fetch_s=0.002)
    res = run(dev, policy(warmup=2, max_steps=100_000, target_ci=0.5), steps_per_window=50)
    assert res.sync_point == "barrier"
    assert res.window_s[0] == pytest.approx((0.0002 + 50 * 0.001) / 50)  # the fetch is outside the clock
    assert res.warmup_s == pytest.approx([0.0012, 0.0012])  # warm-up: launch + work, fetch outside as well


def test_without_a_barrier_the_fetch_is_the_wait_and_is_timed():
    dev = FakeDevice(launch=0.0002, work=lambda i: 0.001, fetch_s=0.002)
    res = measure_windowed(dev.step, dev.fetch, None, policy(warmup=2, target_ci=0.5), clock=dev.clock,
                           steps_per_window=50)
    assert res.sync_point == "fetch" and dev.count("sync") == 0
    assert res.window_s[0] == pytest.approx((0.0002 + 50 * 0.001 + 0.002) / 50)
    assert dev.pattern() == "sF" * 2 + ("s" * 50 + "F") * len(res.window_s)


# ------------------------------------------------------------------------------------- loss bookkeeping
def test_every_loss_is_kept_in_global_step_order():
    dev = FakeDevice(work=jitter, loss=lambda i: 2.0 + i / 1000)
    res = run(dev, policy(warmup=4, max_steps=500, target_ci=0.0))
    assert res.timed_steps == len(res.window_s) * res.window_steps
    assert res.losses == [2.0 + i / 1000 for i in range(4 + res.timed_steps)]  # losses[i] is step i's
    assert [e[1] for e in dev.log if e[0] == "step"] == list(range(4 + res.timed_steps))


def test_a_fetch_that_loses_losses_is_an_error():
    dev = FakeDevice()
    with pytest.raises(ValueError, match="losses for 10 steps"):
        measure_windowed(dev.step, lambda lazies: dev.fetch(lazies)[:-1] if len(lazies) > 1 else dev.fetch(lazies),
                         dev.sync, policy(), clock=dev.clock, steps_per_window=10)


# ---------------------------------------------------------------------------------------------- stopping
def test_divergence_inside_a_window_names_the_first_bad_step():
    bad = {3 + 2 * 50 + 7, 3 + 2 * 50 + 9}  # in the third window, warm-up of 3
    dev = FakeDevice(work=lambda i: 0.001, loss=lambda i: float("nan") if i in bad else 1.0)
    res = run(dev, policy(warmup=3, max_steps=100_000, target_ci=0.0))
    assert res.window_steps == 50
    assert res.stop_reason == "diverged" and res.diverged_step == 3 + 2 * 50 + 7
    assert len(res.window_s) == 3  # the diverged window's time is kept, no window after it
    assert len(res.losses) == 3 + 3 * 50 and math.isnan(res.losses[res.diverged_step])  # its losses too
    assert dev.pattern().endswith("BF]")


def test_divergence_in_the_warmup_stops_before_any_window():
    dev = FakeDevice(loss=lambda i: float("inf") if i == 1 else 1.0)
    res = run(dev, policy(warmup=3))
    assert res.stop_reason == "diverged" and res.diverged_step == 1
    assert res.window_s == [] and res.window_steps is None and res.losses == [1.0, float("inf")]
    assert dev.pattern() == "sBF" * 2  # the timing window never started


def test_identical_windows_stop_on_the_ci_after_the_fewest_windows_that_give_one():
    dev = FakeDevice(work=lambda i: 0.001)
    res = run(dev, policy(min_steps=1))
    assert res.stop_reason == "ci_target" and len(res.window_s) == MIN_WINDOWS  # one window would have a CI of width 0


def test_min_steps_counts_steps_not_windows():
    dev = FakeDevice(work=lambda i: 0.001)
    res = run(dev, policy(min_steps=500))  # k = 50
    assert res.stop_reason == "ci_target" and len(res.window_s) == 10 and res.timed_steps == 500


def test_min_seconds():
    dev = FakeDevice(work=lambda i: 0.001)  # 50 ms windows: 0.99 s is reached by the 20th
    res = run(dev, policy(min_seconds=0.99))
    assert res.stop_reason == "ci_target" and len(res.window_s) == 20
    assert sum(res.window_s) * res.window_steps >= 0.99


def test_max_steps_no_window_runs_past_it():
    dev = FakeDevice(work=jitter)
    res = run(dev, policy(max_steps=1000, target_ci=1e-9))
    k = res.window_steps
    assert res.stop_reason == "max_steps" and 1 < k <= 1000 // MIN_WINDOWS
    assert res.timed_steps == (1000 // k) * k  # as many whole windows as fit

    dev = FakeDevice(work=jitter)
    res = run(dev, policy(max_steps=1000, target_ci=1e-9), steps_per_window=300)
    assert res.stop_reason == "max_steps" and res.timed_steps == 900  # a fourth window would reach 1200


def test_max_seconds():
    dev = FakeDevice(work=jitter)
    res = run(dev, policy(max_seconds=1.0, target_ci=1e-9))
    assert res.stop_reason == "max_seconds"
    spent, window = sum(res.window_s) * res.window_steps, max(res.window_s) * res.window_steps
    assert 1.0 - 1e-9 <= spent < 1.0 + window  # stopped at the first window past 1 s


# ----------------------------------------------------------------------------- warm-up and the window
def test_warmup_is_timed_step_by_step_and_kept_out_of_the_windows():
    dev = FakeDevice(work=lambda i: 0.001, compile_s=5.0)
    res = run(dev, policy(warmup=4))
    assert len(res.warmup_s) == 4 and res.warmup_s[0] == pytest.approx(5.001)
    assert res.warmup_s[1:] == pytest.approx([0.001] * 3)
    assert max(res.window_s) == pytest.approx(0.001)  # the compiling step is in no window
    assert [e[1] for e in dev.log if e[0] == "step"][4] == 4  # the first window starts after the warm-up
    assert dev.pattern().startswith("sBF" * 4 + "[s")


def test_the_window_is_started_and_stopped_once_around_the_timed_windows():
    dev = FakeDevice(work=jitter)
    res = run(dev, policy(warmup=2, max_steps=400, target_ci=0.0))
    p = dev.pattern()
    assert p.count("[") == 1 and p.count("]") == 1
    assert p.index("[") == len("sBF" * 2) and p.endswith("BF]")
    assert res.stop_reason == "max_steps"


def test_the_window_is_stopped_when_a_step_fails():
    dev = FakeDevice(work=lambda i: 0.001)

    def step(i):
        if i == 30:
            raise RuntimeError("device lost")
        return dev.step(i)

    with pytest.raises(RuntimeError, match="device lost"):
        measure_windowed(step, dev.fetch, dev.sync, policy(), clock=dev.clock, window=Recorder(dev))
    assert dev.pattern().endswith("]") and dev.pattern().count("[") == 1


# ------------------------------------------------------------------- per-step vs windowed, and sync cost
def test_windowed_times_the_pipelined_step_and_per_step_pays_the_sync():
    # a launch-heavy small model: 0.5 ms of host work to issue a step, 1 to 1.5 ms of device work
    dev = FakeDevice(launch=0.0005, work=jitter)
    per_step = measure(dev.synced_step, policy(max_steps=600, target_ci=0.0), clock=dev.clock)
    dev = FakeDevice(launch=0.0005, work=jitter)
    windowed = run(dev, policy(max_steps=600, target_ci=0.0))
    assert per_step.mode == "per-step" and per_step.samples is per_step.step_s and per_step.timed_steps == 600
    assert windowed.samples is windowed.window_s and windowed.step_s == []
    p, w = summarize(per_step.samples), summarize(windowed.samples)
    assert p.median == pytest.approx(0.0005 + 0.00125, rel=0.05)  # launch + work, one after the other
    assert w.median == pytest.approx(0.00125, rel=0.04)  # the launches hidden behind the device's work
    assert p.median / w.median > 1.3  # the cost of per-step synchronisation
    assert w.rel_half_width < p.rel_half_width  # windows average the per-step jitter out


def test_sync_check_reports_the_sync_cost_ratio():
    dev = FakeDevice(launch=0.0005, work=lambda i: 0.001)
    res = synccheck.check(dev.step, dev.value, dev.sync, steps=10, clock=dev.clock)
    assert res.synced_s == pytest.approx(0.0015)
    assert res.drained_s == pytest.approx((0.0005 + 10 * 0.001) / 10)  # one window of 10 steps
    assert res.sync_cost_ratio == pytest.approx(0.0015 / 0.00105)
    assert res.to_dict()["sync_cost_ratio"] == res.sync_cost_ratio and res.verdict == "ok"
    assert synccheck.sync_cost_ratio(0.002, 0.001) == 2.0
    assert synccheck.sync_cost_ratio(0.002, None) is None and synccheck.sync_cost_ratio(0.002, 0.0) is None

    dev = FakeDevice(launch=0.0005, work=lambda i: 0.001)
    unchecked = synccheck.check(dev.step, dev.value, None, steps=10, clock=dev.clock)
    assert unchecked.verdict == "unchecked" and unchecked.sync_cost_ratio is None


def test_the_record_says_how_the_cell_was_timed():
    dev = FakeDevice(work=lambda i: 0.001)
    res = run(dev, policy(max_steps=1000))
    assert res.record() == {"mode": "windowed", "window_steps": 50, "target_window_s": 0.05, "windows": 6,
                            "timed_steps": 300, "sync_point": "barrier"}
    assert TimingResult(step_s=[1.0, 2.0]).record() == {"mode": "per-step", "window_steps": None,
                                                        "target_window_s": None, "windows": None,
                                                        "timed_steps": 2, "sync_point": "value"}


def test_the_default_mode_is_per_step_on_the_cpu_and_windowed_on_accelerators():
    assert timing_mode(None, "cpu") == "per-step"
    assert timing_mode(None, "cuda") == timing_mode(None, "tpu") == "windowed"
    assert timing_mode("per-step", "cuda") == "per-step" and timing_mode("windowed", "cpu") == "windowed"
    with pytest.raises(ValueError, match="per-step, windowed"):
        timing_mode("batched", "cpu")
