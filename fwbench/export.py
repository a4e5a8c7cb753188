"""Export a results document for other tools (pure: document in, text out).

* ``github-action-benchmark``: the ``customSmallerIsBetter`` input of benchmark-action/github-action-benchmark,
  a JSON list of ``{"name", "unit", "value", "range", "extra"}``, one entry per (workload, runner, device)
  cell: the median step time in milliseconds, ``range`` the half-width of its 95% CI.
* ``csv``: one row per (workload, runner, device) cell with the same figures and more columns.

Repeats of a cell (``--repeats R``) are one entry: the value and CI are :func:`fwbench.estimate.cell_estimate`
of its processes (with 3 or more, the geometric mean of the process medians and its t interval; with 1 or 2,
the median of all steps and its bootstrap interval), the same figures as the report and the terminal tables
(``median_ms`` names the centre); failed cells are left out of the JSON and kept in the CSV
with their status, so a chart never plots a failure as a time.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from fwbench.compare import group_cells, samples
from fwbench.estimate import cell_estimate
from fwbench.jsonio import encode_finite
from fwbench.textsafe import csv_row

FORMATS = ("github-action-benchmark", "csv")
CSV_COLUMNS = ("workload", "runner", "device", "status", "processes", "steps", "median_ms", "ci_low_ms",
               "ci_high_ms", "samples_per_s", "reason", "method", "noisy")


@dataclass(frozen=True)
class Row:
    """One (workload, runner, device) cell, summarised across its processes. Times in seconds."""

    workload: str
    runner: str
    device: str
    status: str
    processes: int = 0
    steps: int = 0
    median_s: float | None = None
    ci_low_s: float | None = None
    ci_high_s: float | None = None
    samples_per_s: float | None = None
    reason: str = ""
    method: str = ""      # "processes" or "steps" (fwbench.estimate)
    noisy: bool = False   # CI wider than fwbench.estimate.WIDE_CI, or a busy machine


def rows(doc: dict[str, Any]) -> list[Row]:
    """One :class:`Row` per cell group, in the document's order: :func:`fwbench.estimate.cell_estimate` of its
    processes, the centre and CI every other view of the cell shows."""
    out = []
    for (w, r, d), cells in group_cells(doc).items():
        e = cell_estimate(cells)
        if e is None:
            out.append(Row(w, r, d, cells[0].status, reason=samples(cells)[1]))
            continue
        batch = next((c.batch_size for c in cells if c.ok), None)
        out.append(Row(w, r, d, "ok", e.processes, e.steps, e.centre_s, e.low_s, e.high_s,
                       batch / e.centre_s if batch and e.centre_s > 0 else None, method=e.method, noisy=e.noisy))
    return out


def github_action_benchmark(doc: dict[str, Any]) -> str:
    """``customSmallerIsBetter`` JSON (a list of entries), step time in ms."""
    env = doc.get("environment", {})
    entries = []
    for row in rows(doc):
        if row.median_s is None:
            continue
        known = row.ci_low_s is not None and row.ci_high_s is not None
        half = (row.ci_high_s - row.ci_low_s) / 2.0 * 1e3 if known else 0.0  # type: ignore[operator]
        extra = (f"{row.processes} process(es), {row.steps} steps; cpu: {env.get('cpu', '?')}; "
                 f"run {doc.get('run_id', '?')}" + ("; noisy" if row.noisy else ""))
        entries.append({"name": f"{row.workload}/{row.runner}/{row.device} step time", "unit": "ms",
                        "value": _sig(row.median_s * 1e3), "range": f"± {_sig(half, 3)}", "extra": extra})
    return json.dumps(encode_finite(entries), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def to_csv(doc: dict[str, Any]) -> str:
    """CSV with a header row (:data:`CSV_COLUMNS`); empty fields where a cell has no samples; text that a
    spreadsheet would read as a formula gets a leading ``'`` (:func:`fwbench.textsafe.csv_cell`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows(doc):
        ms = lambda s: "" if s is None else _sig(s * 1e3)  # noqa: E731
        # text fields that a spreadsheet would run as a formula are neutralised; numbers stay numbers
        writer.writerow(csv_row([row.workload, row.runner, row.device, row.status, row.processes, row.steps,
                                 ms(row.median_s), ms(row.ci_low_s), ms(row.ci_high_s),
                                 "" if row.samples_per_s is None else _sig(row.samples_per_s), row.reason,
                                 row.method, "yes" if row.noisy else "" if row.median_s is None else "no"]))
    return buf.getvalue()


def render(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "csv":
        return to_csv(doc)
    if fmt == "github-action-benchmark":
        return github_action_benchmark(doc)
    raise ValueError(f"unknown export format {fmt!r}; choose from: {', '.join(FORMATS)}")


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")
