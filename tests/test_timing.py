"""The adaptive timing loop, driven by a fake clock (no sleeping, no real time asserted)."""

from __future__ import annotations

import math

from fwbench.timing import measure
from fwbench.workload_spec import Timing


class FakeClock:
    """A clock that advances only when a step runs, by the duration the test chooses."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stepper(clock, durations, losses=None):
    calls = []

    def step(i):
        calls.append(i)
        clock.now += durations(i)
        return losses(i) if losses else 1.0

    return step, calls


def test_warmup_is_timed_separately_and_first_step_is_compile():
    clock = FakeClock()
    step, calls = stepper(clock, lambda i: 5.0 if i == 0 else 0.01)
    res = measure(step, Timing(warmup=3, min_steps=5, max_steps=50, min_seconds=0, max_seconds=100), clock)
    assert [round(s, 9) for s in res.warmup_s] == [5.0, 0.01, 0.01]
    assert all(math.isclose(s, 0.01) for s in res.step_s)
    assert calls == list(range(len(calls)))  # global step indices, warm-up first
    assert res.stop_reason == "ci_target" and len(res.step_s) == 5  # constant steps: CI width 0 at first check


def test_noisy_steps_run_until_max_steps():
    clock = FakeClock()
    step, _ = stepper(clock, lambda i: 0.01 * (1 + (i % 7)))  # wide spread: the CI never gets within 0.1%
    res = measure(step, Timing(warmup=1, min_steps=5, max_steps=40, min_seconds=0, max_seconds=1e9,
                               target_ci=0.001), clock)
    assert res.stop_reason == "max_steps" and len(res.step_s) == 40


def test_time_cap_and_minimum_seconds():
    clock = FakeClock()
    step, _ = stepper(clock, lambda i: 1.0 + 0.5 * (i % 2))
    res = measure(step, Timing(warmup=1, min_steps=3, max_steps=10_000, min_seconds=0, max_seconds=10,
                               target_ci=1e-6), clock)
    assert res.stop_reason == "max_seconds" and 6 <= len(res.step_s) <= 8

    clock = FakeClock()
    step, _ = stepper(clock, lambda i: 0.01)
    res = measure(step, Timing(warmup=1, min_steps=3, max_steps=10_000, min_seconds=1.0, max_seconds=100), clock)
    assert res.stop_reason == "ci_target" and sum(res.step_s) >= 1.0  # kept going until min_seconds


def test_non_finite_loss_stops_as_diverged_with_the_step():
    clock = FakeClock()
    step, _ = stepper(clock, lambda i: 0.01, losses=lambda i: float("nan") if i == 6 else 1.0)
    res = measure(step, Timing(warmup=2, min_steps=50, max_steps=100, min_seconds=0, max_seconds=100), clock)
    assert res.diverged_step == 6 and res.stop_reason == "diverged" and len(res.step_s) == 5

    clock = FakeClock()
    step, _ = stepper(clock, lambda i: 0.01, losses=lambda i: float("inf"))
    res = measure(step, Timing(warmup=2, min_steps=5), clock)
    assert res.diverged_step == 0 and res.step_s == []
