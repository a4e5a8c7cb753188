"""One (workload, runner, device[, machine]) with its repeats combined, and how its figures are printed (pure).

Every table that shows a step time or a speedup (the report's performance and utilisation tables, its
summary, the terminal tables at the end of ``fwbench run`` and ``fwbench show``) builds its rows from
:func:`combine`, so a cell measured by three worker processes (``--repeats 3``) is one row with one
centre and one CI: those of :func:`fwbench.estimate.cell_estimate`, the figures ``fwbench export`` writes.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from fwbench import units
from fwbench.cells import Cell
from fwbench.estimate import Estimate, Ratio, cell_estimate, decimals_for
from fwbench.report.corpus import Record

UNCERTAIN = "~"  # prefix of a ratio that involves a noisy cell (wide CI or busy machine)


@dataclass(frozen=True)
class Combined:
    """The worker processes of one (workload, runner, device[, machine]), in ``repeat`` order."""

    workload: str
    runner: str
    device: str
    machine: str | None
    records: tuple[Record, ...]
    estimate: Estimate | None
    file: str | None = None  # the results file, when this cell is in several files (never combined across files)

    @property
    def name(self) -> str:
        """The runner, and its results file when the same cell is in several files shown together: ``torch [b.json]``."""
        return self.runner + (f" [{self.file}]" if self.file is not None else "")

    @property
    def cells(self) -> list[Cell]:
        return [r.data for r in self.records]  # type: ignore[misc]

    @property
    def ok(self) -> bool:
        """At least one process succeeded with step samples."""
        return self.estimate is not None

    @property
    def first(self) -> Record:
        """The first successful process, else the first one: where per-cell fields are read."""
        return next((r for r in self.records if r.ok), self.records[0])

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if not r.ok]

    @property
    def status(self) -> str:
        return "ok" if self.ok else self.first["status"]

    @property
    def parity(self) -> str:
        """``mismatch`` when any process mismatched, else the first successful process's status."""
        found = [(r.get("parity") or {}).get("status", "n/a") for r in self.records]
        return "mismatch" if "mismatch" in found else (self.first.get("parity") or {}).get("status", "n/a")

    @property
    def busy(self) -> bool:
        return any(bool((r.get("interference") or {}).get("noisy")) for r in self.records if r.ok)

    def typical(self, key: str) -> float | None:
        """The median over successful processes of a per-process number (``first_step_s``, ``peak_flops``)."""
        xs = [r.get(key) for r in self.records if r.ok and r.get(key) is not None]
        return float(statistics.median(xs)) if xs else None

    def most(self, key: str) -> float | None:
        """The largest value over the processes (memory high-water marks)."""
        xs = [r.get(key) for r in self.records if r.get(key) is not None]
        return max(xs) if xs else None

    @property
    def samples_per_s(self) -> float | None:
        batch = self.first.get("batch_size")
        return batch / self.estimate.centre_s if batch and self.estimate and self.estimate.centre_s > 0 else None

    @property
    def source(self) -> str:
        """``run.json#w/r/cpu/0`` for one process, ``run.json#w/r/cpu/{0,1,2}`` for repeats (one file each)."""
        return sources(self.records)


def combine(records: list[Record], machine_of: dict[str, str] | None = None) -> list[Combined]:
    """The records grouped by (workload, runner, device[, machine]) in first-seen order, each estimated.

    Processes are combined within one results file only (repeats are a run's; two files, such as the two
    sides of an ``fwbench ab`` file, are two measurements): a (workload, runner, device) found in several
    files is one :class:`Combined` per file, named with its file; one found in a single file keeps its
    plain runner name."""
    files: dict[tuple[str, str, str], set[str]] = {}  # the files each (workload, runner, device) is in
    for r in records:
        files.setdefault((r["workload"], r["runner"], r["device"]), set()).add(r.file)
    groups: dict[tuple[str, str, str, str | None, str | None], list[Record]] = {}
    for r in records:
        several = len(files[(r["workload"], r["runner"], r["device"])]) > 1
        key = (r["workload"], r["runner"], r["device"], machine_of.get(r.file) if machine_of else None,
               r.file if several else None)
        groups.setdefault(key, []).append(r)
    out = []
    for (w, run, d, m, f), recs in groups.items():
        recs = sorted(recs, key=lambda r: r.get("repeat") or 0)
        out.append(Combined(w, run, d, m, tuple(recs), cell_estimate([r.data for r in recs]), f))  # type: ignore[misc]
    return out


def combine_doc(doc: dict[str, Any], label: str = "run.json") -> list[Combined]:
    """:func:`combine` of one results document's cells."""
    from fwbench.results import cells

    return combine([Record(label, c) for c in cells(doc, label)])


# ---- text -----------------------------------------------------------------------------------------------
def step_text(e: Estimate | None) -> str:
    """``58.1 ms (48.5–69.5 ms)``: the centre and its 95% CI's bounds, as export gives them (the interval of a
    geometric mean is not symmetric, so a ``±`` would misstate one side); ``-`` without an estimate."""
    return f"{units.seconds(e.centre_s)} ({units.span(e.low_s, e.high_s)})" if e else "-"


def spread(e: Estimate) -> str:
    """``±35%``: the CI's half-width relative to the centre (two significant digits below 10%)."""
    pct = e.rel_half_width * 100
    return f"±{pct:.2g}%" if pct < 10 else f"±{pct:.0f}%"


def _num(x: float, d: int, way: str = "nearest") -> str:
    """``x`` with ``d`` decimals, or one significant digit where those decimals would print it as 0.

    ``way``: ``down`` / ``up`` round a CI's lower / upper bound outward, so the printed interval still holds
    the computed one (a bound of 0.98 prints 0.9, not 1.0, beside "within noise")."""
    if way != "nearest":
        step = 10.0 ** -d
        outward = (math.floor if way == "down" else math.ceil)(round(x / step, 6)) * step
        x = outward if outward else x  # a positive bound is never printed as 0
    out = f"{x:.{d}f}"
    return f"{x:.1g}" if x and float(out) == 0 else out


@dataclass(frozen=True)
class RatioText:
    """A ratio read in the direction that makes it >= 1: ``slower`` (``x`` times the time) or faster."""

    slower: bool
    x: str
    low: str
    high: str
    uncertain: bool
    apart: bool


def ratio_words(r: Ratio) -> RatioText:
    """``r`` (other / base step time) as ``x`` times slower or faster, CI bounds in the same direction, all
    rounded to the digits the CI supports (:func:`fwbench.estimate.decimals_for`), the bounds outward; a real
    difference's bounds get the digit that keeps the lower one above 1 (``1.1× (1.02–1.30)``, not ``(1.0–1.3)``)."""
    slower = r.value >= 1.0
    x, low, high = (r.value, r.low, r.high) if slower else r.speedup
    d = b = decimals_for(low, high)
    # a real difference (CI above 1) must not print a bound of 1.0: the bounds get one more digit until it
    # shows; the figure itself keeps the digits its CI supports
    while r.apart and b < 4 and float(_num(low, b, "down")) <= 1.0:
        b += 1
    return RatioText(slower, _num(x, d), _num(low, b, "down"), _num(high, b, "up"), r.uncertain, r.apart)


WITHIN = {"en": ", within noise", "zh": ",在噪声范围内"}  # the CI holds 1: not a difference this run can show
SPEED = {"en": ("{x}× faster ({low}–{high})", "{x}× slower ({low}–{high})"),
         "zh": ("快 {x}×({low}–{high})", "慢 {x}×({low}–{high})")}


def speedup_text(r: Ratio | None, lang: str = "en") -> str:
    """A row against the reference: ``36× faster (28–37)`` or ``25× slower (9–40)``; ``~`` first when either
    cell is noisy (the figure is uncertain); ", within noise" when the CI holds 1."""
    if r is None:
        return "-"
    t = ratio_words(r)
    return ((UNCERTAIN if t.uncertain else "") + SPEED[lang][t.slower].format(x=t.x, low=t.low, high=t.high)
            + ("" if t.apart else WITHIN[lang]))


def sources(records: Any) -> str:
    """The cell ids of ``records`` per results file: ``run.json#w/r/cpu/0``, or ``run.json#w/r/cpu/{0,1,2}``
    for the repeats of one cell."""
    out = []
    for f in dict.fromkeys(r.file for r in records):
        ids = [r.id for r in records if r.file == f]
        stem = ids[0].rpartition("/")[0]
        if len(ids) > 1 and all(i.rpartition("/")[0] == stem for i in ids):
            out.append(f"{f}#{stem}/{{{','.join(i.rpartition('/')[2] for i in ids)}}}")
        else:
            out += [f"{f}#{i}" for i in ids]
    return ", ".join(out)
