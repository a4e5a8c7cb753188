"""Human-readable numbers for tables and reports (pure): durations, rates, bytes, losses."""

from __future__ import annotations

import math


def seconds(s: float | None) -> str:
    """``0.0123`` -> ``12.3 ms``; three significant digits, unit chosen to fit."""
    if s is None or not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def rate(x: float | None) -> str:
    """Samples per second with thousands separators: ``3884.1`` -> ``3,884``."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def nbytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def ci(median: float, low: float, high: float) -> str:
    """``12.3 ms ±2.1%``: the median and its 95% CI half-width relative to it."""
    if not median:
        return seconds(median)
    return f"{seconds(median)} ±{(high - low) / 2 / median * 100:.1f}%"


def span(low: float, high: float) -> str:
    """A CI as its bounds in one unit where they share it: ``48.5–69.5 ms``; else ``940 ms–1.85 s``."""
    a, b = seconds(low), seconds(high)
    ua, ub = a.rpartition(" ")[2], b.rpartition(" ")[2]
    return f"{a.rpartition(' ')[0]}–{b}" if ua == ub and " " in a else f"{a}–{b}"


def percent(x: float | None) -> str:
    """A fraction as a percentage with two significant digits: ``0.0123`` -> ``1.2%``."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 100:.2g}%" if x < 0.1 else f"{x * 100:.0f}%"


def loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
