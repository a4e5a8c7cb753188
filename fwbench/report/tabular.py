"""CSV and JSON forms of a report (pure: return text; :mod:`fwbench.report.write` saves them)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from fwbench.report.model import Report
from fwbench.textsafe import csv_cell

PERF_FIELDS = ("workload", "device", "runner", "processes", "status", "method", "median_s", "ci_low_s", "ci_high_s",
               "noisy", "samples_per_s", "speedup", "speedup_ci_low", "speedup_ci_high", "reference", "first_step_s",
               "peak_device_bytes", "peak_rss_bytes", "parity", "source")
SEED_FIELDS = ("table", "row", "row_label", "column", "column_label", "status", "verdict", "why", "evidence", "hints",
               "claim", "sources")
PROBE_FIELDS = ("probe", "runner", "status", "result", "source")


def _csv(fields: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """CSV text; text fields that a spreadsheet would run as a formula are neutralised (numbers are not)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else csv_cell(r[k]) for k in fields})
    return buf.getvalue()


def performance_csv(report: Report) -> str:
    """One line per runner of each performance table (repeats combined): the raw numbers (seconds, bytes)
    behind it; ``median_s`` is the combined centre of :func:`fwbench.estimate.cell_estimate`."""
    rows = [{**r.values, "reference": t.reference, "source": r.source} for t in report.performance for r in t.rows]
    return _csv(PERF_FIELDS, rows)


def seed_csv(report: Report) -> str:
    """One line per (table, row, column): the document's claim next to the measured evidence."""
    rows = []
    for t in report.seed_tables:
        for r in t.rows:
            for key, label in t.columns:
                ev = r.evidence[key]
                rows.append({"table": t.key, "row": r.key, "row_label": r.label, "column": key, "column_label": label,
                             "status": ev.status, "verdict": ev.verdict, "why": ev.why,
                             "evidence": "; ".join(ev.parts), "hints": "; ".join(ev.hints),
                             "claim": r.claims[key], "sources": "; ".join(ev.sources)})
    return _csv(SEED_FIELDS, rows)


def probes_csv(report: Report) -> str:
    return _csv(PROBE_FIELDS, [{"probe": p.probe, "runner": p.runner, "status": p.status, "result": p.text,
                                "source": p.source} for p in report.probes])


def to_json(report: Report) -> str:
    """The whole report as JSON (non-finite numbers become ``null``, so any JSON reader accepts it)."""
    return json.dumps(_finite(report.to_dict()), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
