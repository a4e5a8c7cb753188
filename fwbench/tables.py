"""Rows of the per-workload results table, from a results document (pure; renderers format them)."""

from __future__ import annotations

from typing import Any

from fwbench import units

COLUMNS = ("runner", "device", "step (median ±95% CI)", "samples/s", "first step", "peak mem", "final loss",
           "parity", "status")
PARITY_MARKS = {"ok": "✓", "reference": "ref", "mismatch": "✗ MISMATCH", "n/a": "-"}


def run_rows(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Workload name -> one row (column -> text) per cell, in the order the cells ran."""
    out: dict[str, list[dict[str, str]]] = {}
    for cell in doc["cells"]:
        s = cell.get("summary")
        parity = (cell.get("parity") or {}).get("status", "n/a")
        status = cell["status"] + (f": {cell['reason']}" if cell.get("reason") else "")
        runner = cell["runner"] + (f" #{cell['repeat']}" if cell.get("repeat") else "")
        out.setdefault(cell["workload"], []).append({
            "runner": runner,
            "device": cell["device"],
            "step (median ±95% CI)": units.ci(s["median"], s["ci_low"], s["ci_high"]) if s else "-",
            "samples/s": units.rate(cell.get("samples_per_s")),
            "first step": units.seconds(cell.get("first_step_s")),
            # device memory where the device reports it, else the worker's RSS high-water mark
            "peak mem": (units.nbytes(cell["peak_device_bytes"]) + " dev" if cell.get("peak_device_bytes")
                         else units.nbytes(cell.get("peak_rss_bytes")) + " RSS" if cell.get("peak_rss_bytes") else "-"),
            "final loss": units.loss(cell.get("final_loss")),
            "parity": PARITY_MARKS.get(parity, parity),
            "status": status,
        })
    return out
