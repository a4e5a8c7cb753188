"""The request loop of the ``latency`` scenario, framework-free: one request at a time, each timed on its own.

The runner supplies ``request(i) -> float``: serve request ``i`` to completion *with its result fetched to
the host* and return a finite checksum of the output (e.g. the logits' sum). Fetching the result forces the
device to finish, so the clock is read only after the request really completed. A non-finite checksum ends
the loop (stop reason ``"non-finite output"``): a broken model's latency means nothing.

Stopping rule, in the style of MLPerf Inference's SingleStream scenario (a minimum query count *and* a
minimum duration, both required), with caps so that a slow cell cannot run for ever:

1. ``min_requests_and_time``: at least ``min_requests`` timed requests *and* ``min_seconds`` of them;
2. ``max_requests``: the count cap;
3. ``max_seconds``: the time cap, even short of ``min_requests`` (but never with fewer than 3 requests).

Why 1000 requests by default: the tail percentiles' confidence intervals come from order statistics
(:mod:`fwbench.quantiles`). The upper bound of p99's two-sided 95% interval exists only from n = 368
(``0.99**n <= 0.025``); with fewer requests the reported p99 interval ends at the maximum and says so
(``attained`` false). At n = 1000 p99 is the 990th request time and its interval spans ranks 983..997, so
both bounds are real order statistics with a dozen samples to spare on each side. The minimum duration
(2 s) keeps a fast model from being summarised by a few milliseconds of the machine's life. A cell that hits
``max_seconds`` short of the count still reports its percentiles, with the coverage they actually have.

Warm-up requests (``warmup``) are timed separately and excluded from the percentiles. ``window`` (e.g. the
busy-machine watch or the energy meter) is started just before the first timed request and stopped just
after the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # fwbench.timing imports NumPy (through fwbench.stats); this loop needs neither
    from fwbench.timing import Window

RequestFn = Callable[[int], float]


@dataclass(frozen=True)
class LatencyPolicy:
    """How many requests a latency cell times (see the module docstring for the rule and its reasons)."""

    warmup: int = 20
    min_requests: int = 1000
    max_requests: int = 100_000
    min_seconds: float = 2.0
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("warmup", "min_requests", "max_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in ("min_seconds", "max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, got {self.min_requests}")
        if self.max_requests < self.min_requests:
            raise ValueError(f"max_requests ({self.max_requests}) must be >= min_requests ({self.min_requests})")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds}")
        if self.max_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) must be > 0 and >= min_seconds ({self.min_seconds})")


DEFAULT_LATENCY = LatencyPolicy()
QUICK_LATENCY = LatencyPolicy(warmup=3, min_requests=50, max_requests=2000, min_seconds=0.0, max_seconds=2.0)


@dataclass
class RequestTimes:
    """Raw times in seconds. ``warmup_s[0]`` is the first request (lazy initialisation included);
    ``latency_s`` holds one entry per timed request. ``checks`` holds every request's checksum in order,
    warm-up first (so a non-finite one is the last entry)."""

    warmup_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    stop_reason: str = ""
    checks: list[float] = field(default_factory=list)


NON_FINITE = "non-finite output"


def measure_requests(request: RequestFn, policy: LatencyPolicy = DEFAULT_LATENCY,
                     clock: Callable[[], float] = time.perf_counter, window: Window | None = None) -> RequestTimes:
    """Run ``policy.warmup`` warm-up requests, then timed requests until the stopping rule holds."""
    res = RequestTimes()
    i = 0
    for _ in range(policy.warmup):
        t0 = clock()
        check = request(i)
        res.warmup_s.append(clock() - t0)
        res.checks.append(check)
        if not math.isfinite(check):
            res.stop_reason = NON_FINITE
            return res
        i += 1
    if window is not None:
        window.start()
    try:
        _timed(request, policy, clock, res, i)
    finally:
        if window is not None:
            window.stop()
    return res


def stop_reason(n: int, elapsed: float, policy: LatencyPolicy) -> str:
    """Why the loop stops after ``n`` timed requests taking ``elapsed`` seconds, or ``""`` to go on."""
    if n >= policy.min_requests and elapsed >= policy.min_seconds:
        return "min_requests_and_time"
    if n >= policy.max_requests:
        return "max_requests"
    if elapsed >= policy.max_seconds and n >= 3:
        return "max_seconds"
    return ""


def _timed(request: RequestFn, policy: LatencyPolicy, clock: Callable[[], float], res: RequestTimes,
           i: int) -> None:
    """The timed requests of :func:`measure_requests`, from request index ``i``, into ``res``."""
    start = clock()
    while True:
        t0 = clock()
        check = request(i)
        t1 = clock()
        res.latency_s.append(t1 - t0)
        res.checks.append(check)
        if not math.isfinite(check):
            res.stop_reason = NON_FINITE
            return
        i += 1
        reason = stop_reason(len(res.latency_s), t1 - start, policy)
        if reason:
            res.stop_reason = reason
            return
