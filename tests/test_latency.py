"""The latency scenario's request loop, driven by a fake clock (no sleeping, no real time asserted)."""

from __future__ import annotations

import math

import pytest

from fwbench.latency import (DEFAULT_LATENCY, QUICK_LATENCY, LatencyPolicy, RequestTimes, measure_requests,
                             stop_reason)
from fwbench.quantiles import quantile_ranks


class FakeClock:
    """A clock that advances only when a request runs, by the duration the test chooses."""

    def __init__(self):
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class Recorder:
    """A Window that notes when it was started and stopped, relative to the requests served."""

    def __init__(self, calls):
        self.calls, self.events = calls, []

    def start(self):
        self.events.append(("start", len(self.calls)))

    def stop(self):
        self.events.append(("stop", len(self.calls)))


def requester(clock, duration, check=lambda i: 1.0):
    calls = []

    def request(i):
        calls.append(i)
        clock.now += duration(i)
        return check(i)

    return request, calls


def policy(**kw) -> LatencyPolicy:
    base = dict(warmup=2, min_requests=10, max_requests=100, min_seconds=0.0, max_seconds=1e9)
    return LatencyPolicy(**(base | kw))


def test_defaults_and_quick_policy():
    assert DEFAULT_LATENCY == LatencyPolicy(warmup=20, min_requests=1000, max_requests=100_000, min_seconds=2.0,
                                           max_seconds=60.0)
    assert QUICK_LATENCY == LatencyPolicy(warmup=3, min_requests=50, max_requests=2000, min_seconds=0.0,
                                          max_seconds=2.0)
    r = quantile_ranks(DEFAULT_LATENCY.min_requests, 0.99)  # the figures the module docstring quotes
    assert r.attained and (r.low, r.high) == (983, 997)
    with pytest.raises(Exception):
        DEFAULT_LATENCY.warmup = 1  # frozen


@pytest.mark.parametrize("field,value", [
    ("warmup", -1), ("warmup", 1.5), ("min_requests", 0), ("max_requests", 5), ("min_seconds", -0.1),
    ("max_seconds", 0.0), ("max_seconds", math.inf), ("min_seconds", math.nan), ("min_requests", True),
])
def test_policy_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        policy(**{field: value})


def test_min_requests_and_time_warmup_excluded():
    clock = FakeClock()
    request, calls = requester(clock, lambda i: 5.0 if i == 0 else 0.01, check=lambda i: float(i))
    res = measure_requests(request, policy(warmup=3), clock)
    assert isinstance(res, RequestTimes)
    assert res.stop_reason == "min_requests_and_time"
    assert [round(s, 9) for s in res.warmup_s] == [5.0, 0.01, 0.01]  # the slow first request is warm-up only
    assert len(res.latency_s) == 10 and all(math.isclose(s, 0.01) for s in res.latency_s)
    assert calls == list(range(13))  # global request indices, warm-up first
    assert res.checks == [float(i) for i in range(13)]


def test_min_seconds_keeps_going_past_min_requests():
    clock = FakeClock()
    request, _ = requester(clock, lambda i: 0.01)
    res = measure_requests(request, policy(min_requests=10, min_seconds=1.0), clock)
    assert res.stop_reason == "min_requests_and_time"
    assert len(res.latency_s) > 10 and sum(res.latency_s) >= 1.0 - 1e-9
    assert sum(res.latency_s[:-1]) < 1.0  # stopped at the first request past the minimum duration


def test_max_requests_caps_a_run_that_never_reaches_min_seconds():
    clock = FakeClock()
    request, _ = requester(clock, lambda i: 0.001)
    res = measure_requests(request, policy(min_requests=10, max_requests=40, min_seconds=100.0), clock)
    assert res.stop_reason == "max_requests" and len(res.latency_s) == 40


def test_max_seconds_stops_short_of_min_requests():
    clock = FakeClock()
    request, _ = requester(clock, lambda i: 1.0)
    res = measure_requests(request, policy(min_requests=1000, max_requests=5000, max_seconds=10.0), clock)
    assert res.stop_reason == "max_seconds" and len(res.latency_s) == 10


def test_max_seconds_never_stops_before_three_requests():
    clock = FakeClock()
    request, _ = requester(clock, lambda i: 100.0)  # each request alone is past the cap
    res = measure_requests(request, policy(min_requests=1000, max_requests=5000, max_seconds=1.0), clock)
    assert res.stop_reason == "max_seconds" and len(res.latency_s) == 3


def test_stop_reason_precedence():
    p = policy(min_requests=10, max_requests=20, min_seconds=1.0, max_seconds=5.0)
    assert stop_reason(9, 0.5, p) == ""
    assert stop_reason(10, 0.5, p) == ""  # enough requests, not enough time
    assert stop_reason(9, 1.0, p) == ""  # enough time, not enough requests
    assert stop_reason(10, 1.0, p) == "min_requests_and_time"
    assert stop_reason(20, 9.0, p) == "min_requests_and_time"  # a run that met the rule says so
    assert stop_reason(20, 0.5, p) == "max_requests"
    assert stop_reason(9, 5.0, p) == "max_seconds"
    assert stop_reason(2, 5.0, p) == ""


def test_window_wraps_exactly_the_timed_requests():
    clock = FakeClock()
    request, calls = requester(clock, lambda i: 0.01)
    window = Recorder(calls)
    res = measure_requests(request, policy(warmup=4, min_requests=7), clock, window=window)
    assert window.events == [("start", 4), ("stop", 11)]
    assert len(res.latency_s) == 7


def test_window_is_stopped_when_a_request_raises():
    clock = FakeClock()

    def request(i):
        if i == 5:
            raise RuntimeError("device lost")
        calls.append(i)
        return 1.0

    calls: list[int] = []
    window = Recorder(calls)
    with pytest.raises(RuntimeError):
        measure_requests(request, policy(warmup=2), clock, window=window)
    assert window.events == [("start", 2), ("stop", 5)]


def test_non_finite_output_stops_timed_loop():
    clock = FakeClock()
    request, calls = requester(clock, lambda i: 0.01, check=lambda i: math.nan if i == 6 else 1.0)
    window = Recorder(calls)
    res = measure_requests(request, policy(warmup=2), clock, window=window)
    assert res.stop_reason == "non-finite output"
    assert len(res.latency_s) == 5 and len(calls) == 7 and math.isnan(res.checks[-1])
    assert window.events == [("start", 2), ("stop", 7)]


def test_non_finite_output_in_warmup_never_opens_the_window():
    clock = FakeClock()
    request, calls = requester(clock, lambda i: 0.01, check=lambda i: math.inf if i == 1 else 1.0)
    window = Recorder(calls)
    res = measure_requests(request, policy(warmup=5), clock, window=window)
    assert res.stop_reason == "non-finite output"
    assert res.latency_s == [] and len(res.warmup_s) == 2 and calls == [0, 1]
    assert window.events == []


def test_zero_warmup_and_quick_policy_on_fast_requests():
    clock = FakeClock()
    request, calls = requester(clock, lambda i: 1e-4)
    res = measure_requests(request, QUICK_LATENCY, clock)
    assert res.stop_reason == "min_requests_and_time" and len(res.latency_s) == 50 and len(res.warmup_s) == 3

    clock = FakeClock()
    request, calls = requester(clock, lambda i: 1e-3)
    res = measure_requests(request, policy(warmup=0, min_requests=3), clock)
    assert res.warmup_s == [] and calls == [0, 1, 2]
