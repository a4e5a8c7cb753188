"""Figures derived from two timing cells (pure): speed ratio and graph mode's break-even point."""

from __future__ import annotations

import math


def speedup(slow_s: float, fast_s: float) -> float:
    """How many times faster ``fast_s`` is than ``slow_s`` per step (> 1: faster)."""
    return slow_s / fast_s


def break_even_steps(eager_first: float, eager_step: float, graph_first: float, graph_step: float) -> int | None:
    """Smallest n such that n steps in graph mode take no longer than n eager steps; ``None`` if never.

    After n steps eager mode has spent ``eager_first + (n-1) * eager_step`` and graph mode
    ``graph_first + (n-1) * graph_step``: the first step carries tracing / compilation.
    """
    extra = graph_first - eager_first
    if extra <= 0 and graph_step <= eager_step:
        return 1
    if graph_step >= eager_step:
        return None
    return 1 + max(0, math.ceil(extra / (eager_step - graph_step)))
