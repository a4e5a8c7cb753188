"""Performance tables: one per (workload, device[, machine]), one row per runner with its repeats combined (pure).

A row's step time is :func:`fwbench.estimate.cell_estimate` of the runner's worker processes (one centre,
one CI, the figures of ``fwbench export``); its speedup is :func:`fwbench.estimate.ratio` against the
reference runner's processes, printed to the digits its CI supports. A row whose CI is wider than
:data:`fwbench.estimate.WIDE_CI` is marked noisy, and speedups that involve it carry ``~``.
"""

from __future__ import annotations

from typing import Any

from fwbench import units
from fwbench.estimate import WIDE_CI, ratio
from fwbench.report.combined import Combined, combine, speedup_text, spread, step_text
from fwbench.report.corpus import Corpus, Record, source
from fwbench.report.labels import phrase
from fwbench.report.model import PerfRow, PerfTable
from fwbench.report.scenarios import scenario

PERF_COLUMNS = ("runner", "step", "processes", "rate", "speedup", "first", "mem", "parity", "status", "source")
PERF_HEADERS = {"runner": "col_runner", "rate": "col_rate", "speedup": "col_speedup", "first": "col_first",
                "mem": "col_mem", "parity": "col_parity", "status": "col_status", "source": "col_source"}
OWN_HEADERS = {"en": {"step": "step (95% CI)", "processes": "processes"},
               "zh": {"step": "每步(95% CI)", "processes": "进程数"}}
BUSY_MARK = "⚠"
PARITY_MARKS = {"ok": "✓", "reference": "ref", "mismatch": "✗ MISMATCH", "n/a": "-"}
NOISY = {"en": "noisy: {spread}", "zh": "噪声大:{spread}"}
PERF_NOTE = {
    "en": ("One row per runner: its worker processes (`--repeats`) combined. step = the typical step time with its "
           "95% CI (with 3 or more processes the geometric mean of the processes' `summary.median`, Student's t "
           "interval between processes; with 1 or 2 the median of all `step_s` with a bootstrap interval); "
           "processes = successful worker processes; samples/s = batch size / step; speedup = reference step / "
           "step with its 95% CI (`fwbench compare`'s ratio), printed to the digits the CI supports; first step "
           "= median `first_step_s`; peak mem = largest `peak_device_bytes` (dev) or `peak_rss_bytes` (RSS); "
           "parity = `parity.status`."),
    "zh": ("每个运行器一行:其各 worker 进程(`--repeats`)合并。每步 = 典型步长及其 95% 置信区间(3 个及以上进程时取各进程 "
           "`summary.median` 的几何平均,进程间 Student t 区间;1 或 2 个进程时取全部 `step_s` 的中位数及自助法区间);"
           "进程数 = 成功的 worker 进程数;样本/秒 = 批大小 / 步长;加速比 = 参照步长 / 步长及其 95% 置信区间"
           "(与 `fwbench compare` 相同的比值),位数与置信区间相符;首步 = `first_step_s` 的中位数;峰值内存 = "
           "最大的 `peak_device_bytes`(dev)或 `peak_rss_bytes`(RSS);一致性 = `parity.status`。"),
}
NOISY_LEGEND = {
    "en": ("noisy: the 95% CI's half-width is above ±{wide:.0%} of the step time, or the machine was busy; "
           "~: a speedup that involves a noisy row is uncertain (read its CI, not its figure)."),
    "zh": ("噪声大:95% 置信区间半宽超过步长的 ±{wide:.0%},或机器繁忙;~:涉及噪声大的行的加速比不确定"
           "(请看其置信区间,而非数值)。"),
}


def median(rec: Record | None) -> float | None:
    """One process's median step time (s), or ``None`` when it has no summary or did not succeed (the seed
    tables' per-cell figures; the performance tables use the combined estimate)."""
    if rec is None or not rec.ok or not rec.get("summary"):
        return None
    return rec["summary"]["median"]


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
    """One table per (workload, device[, machine]) in the order they ran; speedups against ``reference``.

    ``machine_of`` (file label -> machine), given when the files come from several machines: one table per
    (workload, device, machine), and a speedup only against the reference measured on the same machine."""
    # cold-start cells time one first result per fresh process, no steps: their own table shows them
    groups = combine([r for r in corpus.cells if scenario(r) != "cold-start"], machine_of)
    out = []
    for workload, device in corpus.groups():
        for where in dict.fromkeys(g.machine for g in groups):
            members = [g for g in groups if (g.workload, g.device, g.machine) == (workload, device, where)]
            if not members:
                continue
            refs = [g for g in members if g.runner == reference]
            ref = next((g for g in refs if g.ok), refs[0] if refs else None)
            spec = next((doc.get("workloads", {}).get(workload) for _, doc in corpus.docs
                         if workload in doc.get("workloads", {})), None) or {}
            title = f"{workload} — {device}, {spec.get('mode', 'train')}, batch {spec.get('batch_size', '?')}"
            title += f", on {where}" if where else ""
            rows = [_row(g, ref, lang) for g in members]
            legend = [NOISY_LEGEND[lang].format(wide=WIDE_CI)] if any(r.values["noisy"] for r in rows) else []
            out.append(PerfTable(workload, device, title, reference, rows, legend))
    return out


def _row(g: Combined, ref: Combined | None, lang: str) -> PerfRow:
    e = g.estimate
    r = ratio(ref.cells, g.cells) if (ref and ref.ok and e and g is not ref) else None
    peak_dev, peak_rss = g.most("peak_device_bytes"), g.most("peak_rss_bytes")
    mem = (units.nbytes(peak_dev) + " dev" if peak_dev else units.nbytes(peak_rss) + " RSS" if peak_rss else "-")
    status = "ok" if g.ok else reason(g.first)
    if g.ok and g.failed:
        status += f" ({len(g.failed)} of {len(g.records)} processes: {reason(g.failed[0], 100)})"
    if e and e.wide:
        status += " · " + NOISY[lang].format(spread=spread(e))
    if g.busy:
        status += f" {BUSY_MARK} {phrase(lang, 'busy')}"
    text = {
        "runner": g.name, "step": step_text(e), "processes": str(e.processes) if e else "0",
        "rate": units.rate(g.samples_per_s), "speedup": "ref" if g is ref and e else speedup_text(r, lang),
        "first": units.seconds(g.typical("first_step_s")), "mem": mem,
        "parity": PARITY_MARKS.get(g.parity, g.parity), "status": status, "source": g.source,
    }
    values: dict[str, Any] = {
        "workload": g.workload, "runner": g.runner, "device": g.device, "processes": e.processes if e else 0,
        "status": g.status, "method": e.method if e else None, "median_s": e.centre_s if e else None,
        "ci_low_s": e.low_s if e else None, "ci_high_s": e.high_s if e else None,
        "noisy": bool(e and e.noisy), "samples_per_s": g.samples_per_s,
        "speedup": r.speedup[0] if r else 1.0 if g is ref and e else None,
        "speedup_ci_low": r.speedup[1] if r else None,
        "speedup_ci_high": r.speedup[2] if r else None, "first_step_s": g.typical("first_step_s"),
        "peak_device_bytes": peak_dev, "peak_rss_bytes": peak_rss, "parity": g.parity,
    }
    return PerfRow(text, values, g.source)


def headers(lang: str, reference: str) -> list[str]:
    own = OWN_HEADERS[lang]
    return [own[c] if c in own else phrase(lang, PERF_HEADERS[c]) + (f" (vs {reference})" if c == "speedup" else "")
            for c in PERF_COLUMNS]
