"""Rows of the per-workload results table, from a results document (pure; renderers format them).

One row per (runner, device): a runner's worker processes (``--repeats``) are combined
(:mod:`fwbench.report.combined`), so the terminal shows the same centre and CI as the report and ``export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fwbench import units
from fwbench.report.combined import Combined, combine_doc, spread, step_text
from fwbench.results import cells

COLUMNS = ("runner", "device", "step (95% CI)", "processes", "samples/s", "MFU", "first step", "peak mem", "loss",
           "parity", "status")
PARITY_MARKS = {"ok": "✓", "reference": "ref", "mismatch": "✗ MISMATCH", "n/a": "-"}


@dataclass(frozen=True)
class RunRow:
    """One runner of a workload's table, its processes combined: text per column, and a note (the reason the
    runner failed, or why its times are doubtful) printed under the table."""

    group: Combined
    text: dict[str, str]
    note: str = ""

    def __getitem__(self, column: str) -> str:
        return self.text[column]


def _note(g: Combined) -> str:
    """Why a row is not simply ok (printed after ``runner: status:``): failed processes, an unsynchronised
    timing self-check, a busy machine."""
    cell = g.first
    notes = [str(cell.get("reason"))] if not g.ok and cell.get("reason") else []
    if g.ok and g.failed:
        bad = g.failed[0]
        notes.append(f"{len(g.failed)} of {len(g.records)} processes {bad['status']}"
                     + (f": {bad.get('reason')}" if bad.get("reason") else ""))
    sync = cell.get("sync_check") or {}
    if sync.get("verdict") == "unsynchronised" and g.ok:
        notes.append(f"timing self-check: {sync.get('note') or 'timings look unsynchronised'}")
    busy = next((r["interference"] for r in g.records if r.ok and (r.get("interference") or {}).get("noisy")), None)
    if busy:  # other processes took CPU during the timed steps (fwbench.interference)
        notes.append(f"machine busy: other processes used {busy['other_share']:.2f} of the cores given "
                     f"(threshold {busy['threshold']:g}); times not trustworthy")
    return "; ".join(notes)


def _mfu(g: Combined) -> float | None:
    """Model-FLOPs utilisation of the combined step time against the median measured peak (fwbench.flops)."""
    flops, peak = g.first.get("flops_per_step"), g.typical("peak_flops")
    e = g.estimate
    return flops / e.centre_s / peak if flops and peak and e and e.centre_s > 0 else None


def run_rows(doc: dict[str, Any]) -> dict[str, list[RunRow]]:
    """Workload name -> one row per (runner, device), repeats combined with
    :func:`fwbench.estimate.cell_estimate` (the figures of the report and ``fwbench export``), in run order."""
    out: dict[str, list[RunRow]] = {}
    for g in combine_doc(doc):
        if g.first.get("scenario") == "cold-start":  # no timed steps: the cold-start table shows these
            continue
        e = g.estimate
        mfu = _mfu(g)
        status = g.status + (f" · noisy {spread(e)}" if e and e.wide else "")
        dev, rss = g.most("peak_device_bytes"), g.most("peak_rss_bytes")
        out.setdefault(g.workload, []).append(RunRow(g, {
            "runner": g.runner,
            "device": g.device,
            "step (95% CI)": step_text(e),
            "processes": str(e.processes) if e else "0",
            "samples/s": units.rate(g.samples_per_s),
            "MFU": units.percent(mfu) + ("?" if (mfu or 0) > 1 else ""),  # peak under-measured
            "first step": units.seconds(g.typical("first_step_s")),
            # device memory where the device reports it, else the worker's RSS high-water mark
            "peak mem": units.nbytes(dev) + " dev" if dev else units.nbytes(rss) if rss else "-",
            "loss": units.loss(g.first.get("final_loss")),
            "parity": PARITY_MARKS.get(g.parity, g.parity),
            "status": status,
        }, _note(g)))
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
