"""Rows of the per-workload results table, from a results document (pure; renderers format them)."""

from __future__ import annotations

from typing import Any

from fwbench import units
from fwbench.results import cells

COLUMNS = ("runner", "device", "median step ±95% CI", "samples/s", "MFU", "first step", "peak mem", "loss",
           "parity", "status")
PARITY_MARKS = {"ok": "✓", "reference": "ref", "mismatch": "✗ MISMATCH", "n/a": "-"}


def run_rows(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Workload name -> one row (column -> text) per cell, in the order the cells ran."""
    out: dict[str, list[dict[str, str]]] = {}
    for cell in cells(doc):
        s = cell.summary
        parity = cell.parity.status if cell.parity else "n/a"
        status = cell.status + (f": {cell.reason}" if cell.reason else "")
        sync = cell.get("sync_check") or {}
        if sync.get("verdict") == "unsynchronised" and not cell.reason:
            status += f": timing self-check: {sync.get('note') or 'timings look unsynchronised'}"
        if cell.noisy and not cell.reason:  # other processes took CPU during the timed steps (fwbench.interference)
            busy = cell["interference"]
            status += (f": machine busy: other processes used {busy['other_share']:.2f} of the cores given "
                       f"(threshold {busy['threshold']:g}); times not trustworthy")
        runner = cell.runner + (f" #{cell.repeat}" if cell.repeat else "")
        out.setdefault(cell.workload, []).append({
            "runner": runner,
            "device": cell.device,
            "median step ±95% CI": units.ci(s.median, s.ci_low, s.ci_high) if s else "-",
            "samples/s": units.rate(cell.samples_per_s),
            # model-FLOPs utilisation against the matmul peak measured in the same worker (fwbench.flops)
            "MFU": units.percent(cell.mfu) + ("?" if (cell.mfu or 0) > 1 else ""),  # peak under-measured
            "first step": units.seconds(cell.first_step_s),
            # device memory where the device reports it, else the worker's RSS high-water mark
            "peak mem": (units.nbytes(cell.peak_device_bytes) + " dev" if cell.peak_device_bytes
                         else units.nbytes(cell.peak_rss_bytes) if cell.peak_rss_bytes else "-"),
            "loss": units.loss(cell.final_loss),
            "parity": PARITY_MARKS.get(parity, parity),
            "status": status,
        })
    return out


TTA_COLUMNS = ("runner", "device", "target", "reached", "steps", "train time", "final")


def _goal(t: dict[str, Any]) -> str:
    if t.get("target_loss") is not None:
        return f"loss <= {t['target_loss']:.4f} (optimum {t['optimum_loss']:.4f} + {t['excess_loss']:g})"
    return f"accuracy >= {t['target_accuracy']:.3f}" if t.get("target_accuracy") is not None else "?"


def _final(t: dict[str, Any]) -> str:
    if t.get("target_loss") is not None:
        loss = "n/a" if t.get("final_loss") is None else f"{t['final_loss']:.4f}"
        return f"loss {loss}, accuracy {t['final_accuracy']:.4f}"
    return f"accuracy {t['final_accuracy']:.4f}"


def tta_rows(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Workload -> time-to-accuracy rows, for cells that trained to a target (``--target``)."""
    out: dict[str, list[dict[str, str]]] = {}
    for cell in cells(doc):
        t = cell.get("time_to_accuracy")
        if not t:
            continue
        out.setdefault(cell.workload, []).append({
            "runner": cell.runner, "device": cell.device, "target": _goal(t),
            "reached": "yes" if t["reached"] else "NO",
            "steps": str(t["steps_to_target"]) if t["reached"] else f"> {t['curve'][-1][0] if t['curve'] else 0}",
            "train time": units.seconds(t["time_to_target_s"] if t["reached"] else t["train_s"]),
            "final": _final(t),
        })
    return out
