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
SCENARIO_FIELDS = ("scenario", "workload", "device", "runner", "batch_size", "stat", "value", "low", "high",
                   "coverage", "attained", "n", "processes", "unit", "status", "source")


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


def scenarios_csv(report: Report) -> str:
    """One line per figure of the inference scenarios' tables (long format): latency p50/p90/p99 (with
    interval, coverage, request count) and max, energy per request; samples/s and peak bytes per sweep point;
    cold-start median total (with interval and coverage) and phase medians. Seconds, samples/s, bytes, joules."""
    rows: list[dict[str, Any]] = []
    for t in report.scenarios:
        base = {"workload": t.workload, "device": t.device}
        for v in t.values:
            one = {**base, "scenario": t.kind, "runner": v["runner"], "processes": v.get("processes"),
                   "source": v.get("source")}
            if t.kind == "latency":
                s = v.get("latency") or {}
                one["batch_size"] = v.get("batch_size")
                for q in s.get("percentiles", []):
                    rows.append({**one, "stat": q["name"], "value": q["value"], "low": q["low"], "high": q["high"],
                                 "coverage": q["coverage"], "attained": q["attained"], "n": q["n"], "unit": "s"})
                if s:
                    rows.append({**one, "stat": "max", "value": s["max"], "n": s["n"], "unit": "s"})
                if v.get("energy_j_per_request") is not None:
                    rows.append({**one, "stat": "energy_per_request", "value": v["energy_j_per_request"], "unit": "J"})
            elif t.kind == "throughput":
                for p in v["points"]:
                    point = {**one, "scenario": "throughput", "batch_size": p["batch_size"], "status": p["status"],
                             "source": p["source"], "processes": None}
                    rows.append({**point, "stat": "samples_per_s", "value": p["samples_per_s"], "low": p["ci_low"],
                                 "high": p["ci_high"], "unit": "samples/s"})
                    rows.append({**point, "stat": f"peak_{p['peak_kind']}_bytes", "value": p["peak_bytes"], "unit": "B"})
            elif t.kind == "cold-start":
                q = v.get("total") or {}
                if q:
                    rows.append({**one, "stat": "total_s", "value": q["value"], "low": q["low"], "high": q["high"],
                                 "coverage": q["coverage"], "attained": q["attained"], "n": q["n"], "unit": "s"})
                rows += [{**one, "stat": k[len("median_"):], "value": x, "unit": "s"} for k, x in v.items()
                         if k.startswith("median_")]
    return _csv(SCENARIO_FIELDS, rows)


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
