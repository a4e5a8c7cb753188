"""Performance tables: one per (workload, device), one row per cell, from the cells' own fields (pure)."""

from __future__ import annotations

from typing import Any

from fwbench import units
from fwbench.report.corpus import Corpus, Record, source
from fwbench.report.labels import phrase
from fwbench.report.model import PerfRow, PerfTable

PERF_COLUMNS = ("runner", "step", "rate", "speedup", "first", "mem", "parity", "status", "source")
PERF_HEADERS = {"runner": "col_runner", "step": "col_step", "rate": "col_rate", "speedup": "col_speedup",
                "first": "col_first", "mem": "col_mem", "parity": "col_parity", "status": "col_status",
                "source": "col_source"}
BUSY_MARK = "⚠"
PARITY_MARKS = {"ok": "✓", "reference": "ref", "mismatch": "✗ MISMATCH", "n/a": "-"}


def median(rec: Record | None) -> float | None:
    """The cell's median step time (s), or ``None`` when it has no summary or did not succeed."""
    if rec is None or not rec.ok or not rec.get("summary"):
        return None
    return rec["summary"]["median"]


def ratio(x: float) -> str:
    return f"{x:.2f}×"


def reason(rec: Record, limit: int = 160) -> str:
    """The cell's status and a one-line reason, short enough for a table."""
    text = " ".join(str(rec.get("reason") or "").split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return rec["status"] + (f": {text}" if text else "")


def noisy(rec: Record) -> bool:
    """The cell was measured on a busy machine (``interference.noisy``; see :mod:`fwbench.interference`)."""
    return bool((rec.get("interference") or {}).get("noisy"))


def noisy_note(corpus: Corpus, lang: str) -> str | None:
    """The note under the title when some cell was measured on a busy machine, naming those cells."""
    busy = [r for r in corpus.cells if noisy(r)]
    if not busy:
        return None
    cells = ", ".join(f"{source(r)} ({r['interference']['other_share']:.2f} > {r['interference']['threshold']:g})"
                      for r in busy)
    return phrase(lang, "busy_note", mark=BUSY_MARK, n=len(busy), cells=cells)


def perf_tables(corpus: Corpus, reference: str, lang: str,
                machine_of: dict[str, str] | None = None) -> list[PerfTable]:
    """One table per (workload, device) in the order they ran; speedups against ``reference``'s median.

    ``machine_of`` (file label -> machine), given when the files come from several machines: one table per
    (workload, device, machine), and a speedup only against the reference measured on the same machine."""
    out = []
    machine_names = list(dict.fromkeys(machine_of.values())) if machine_of else [None]
    for workload, device in corpus.groups():
        for where in machine_names:
            members = [r for r in corpus.cells if (r["workload"], r["device"]) == (workload, device)
                       and (where is None or machine_of[r.file] == where)]  # type: ignore[index]
            if not members:
                continue
            refs = [r for r in members if r["runner"] == reference]
            ref = next((r for r in refs if r.ok), refs[0] if refs else None)
            ref_median = median(ref)
            spec = next((doc.get("workloads", {}).get(workload) for _, doc in corpus.docs
                         if workload in doc.get("workloads", {})), None) or {}
            title = f"{workload} — {device}, {spec.get('mode', 'train')}, batch {spec.get('batch_size', '?')}"
            title += f", on {where}" if where else ""
            out.append(PerfTable(workload, device, title, reference,
                                 [_row(r, ref_median, lang) for r in members]))
    return out


def _row(rec: Record, ref_median: float | None, lang: str) -> PerfRow:
    s = rec.get("summary") if rec.ok else None
    m = median(rec)
    speedup = ref_median / m if (m and ref_median) else None
    peak_dev, peak_rss = rec.get("peak_device_bytes"), rec.get("peak_rss_bytes")
    mem = (units.nbytes(peak_dev) + " dev" if peak_dev else units.nbytes(peak_rss) + " RSS" if peak_rss else "-")
    parity = (rec.get("parity") or {}).get("status", "n/a")
    runner = rec["runner"] + (f" #{rec['repeat']}" if rec.get("repeat") else "")
    text = {
        "runner": runner,
        "step": units.ci(s["median"], s["ci_low"], s["ci_high"]) if s else "-",
        "rate": units.rate(rec.get("samples_per_s")) if rec.ok else "-",
        "speedup": ratio(speedup) if speedup else "-",
        "first": units.seconds(rec.get("first_step_s")) if rec.ok else "-",
        "mem": mem,
        "parity": PARITY_MARKS.get(parity, parity),
        "status": reason(rec) + (f" {BUSY_MARK} {phrase(lang, 'busy')}" if noisy(rec) else ""),
        "source": source(rec),
    }
    values: dict[str, Any] = {
        "workload": rec["workload"], "runner": rec["runner"], "device": rec["device"], "repeat": rec.get("repeat", 0),
        "status": rec["status"], "median_s": m, "ci_low_s": s["ci_low"] if s else None,
        "ci_high_s": s["ci_high"] if s else None, "samples_per_s": rec.get("samples_per_s") if rec.ok else None,
        "speedup": speedup, "first_step_s": rec.get("first_step_s") if rec.ok else None,
        "peak_device_bytes": peak_dev, "peak_rss_bytes": peak_rss, "parity": parity,
    }
    return PerfRow(text, values, text["source"])


def headers(lang: str, reference: str) -> list[str]:
    return [phrase(lang, PERF_HEADERS[c]) + (f" (vs {reference})" if c == "speedup" else "") for c in PERF_COLUMNS]
