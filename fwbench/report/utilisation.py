"""The report's utilisation table: FLOPs per step, achieved FLOP/s and MFU against the measured peak (pure).

One row per successful cell that recorded ``flops_per_step`` (see :mod:`fwbench.flops`); the peak is the
matrix-multiply calibration of the same worker (:mod:`fwbench.calibrate`), the published peak is shown
beside it where :mod:`fwbench.peaks` knows the chip. Reports of runs without these fields have no table.
"""

from __future__ import annotations

from typing import Any

from fwbench import units
from fwbench.report.combined import combine
from fwbench.report.corpus import Corpus

UTIL_HEADERS = {
    "en": ("workload", "device", "runner", "precision", "FLOPs/step", "achieved", "measured peak", "MFU",
           "published peak", "timing check", "source"),
    "zh": ("工作负载", "设备", "运行器", "精度", "每步 FLOPs", "实际算力", "实测峰值", "MFU", "公布峰值", "计时自检", "来源"),
}
UTIL_TITLE = {"en": "Model FLOPs utilisation", "zh": "模型算力利用率 (MFU)"}
UTIL_NOTE = {
    "en": ("FLOPs/step counts the multiply-adds of the conv, dense, attention and recurrent layers (2 FLOPs each), forward plus weight "
           "and input gradients (`flops_per_step`); one row per runner, repeats combined: achieved = FLOPs/step ÷ the "
           "performance table's step time (from `step_s`); MFU = achieved ÷ the matmul peak measured in the "
           "runner's workers (`peak_flops`, median over processes; `calibration`). Peaks of one results file and "
           "device more than 1.25× apart (largest ÷ smallest) are noted below the table: MFUs against such "
           "different peaks are not comparable."),
    "zh": ("每步 FLOPs 计卷积、全连接、注意力和循环层的乘加(每次 2 FLOPs),含前向及权重、输入梯度(`flops_per_step`);"
           "每个运行器一行,重复已合并:实际算力 = 每步 FLOPs ÷ 性能表中的步长(来自 `step_s`);MFU = 实际算力 ÷ "
           "该运行器各 worker 实测的矩阵乘峰值(`peak_flops`,各进程的中位数;`calibration`)。同一结果文件、同一设备的"
           "实测峰值相差超过 1.25 倍(最大 ÷ 最小)时,表下注明:相对差别如此大的峰值算出的 MFU 不可比较。"),
}


def flops_text(x: float | None) -> str:
    """``1.2e12`` -> ``1.2 TFLOP/s``-style magnitude (without the unit's ``/s``)."""
    if x is None:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def _apart(x: float) -> str:
    """``1.33``; with a third decimal where two would print the threshold itself (``1.252``, not ``1.25``)."""
    return f"{x:.2f}" if round(x, 2) > PEAK_SPREAD else f"{x:.3f}"


PEAK_SPREAD = 1.25  # measured peaks of one file and device further apart than this (max / min) get a note
PEAK_NOTE = {
    "en": ("Measured peaks disagree in {file} on {device}: {low}–{high} ({x}× apart, above {limit:g}×) "
           "across {n} cells; MFU across those cells is not comparable (each is against its own worker's peak)."),
    "zh": ("{file} 在 {device} 上实测峰值不一致:{low}–{high}(相差 {x}×,超过 {limit:g}×),共 {n} 个单元;"
           "这些单元之间的 MFU 不可比较(各自相对其 worker 实测的峰值)。"),
}


def utilisation_rows(corpus: Corpus) -> list[list[str]]:
    """Rows (already text) of the utilisation table, one per runner with its repeats combined; empty when no
    cell recorded FLOPs. achieved = FLOPs/step ÷ the combined step time (:mod:`fwbench.report.combined`), the
    peak the median of the processes' measured peaks."""
    rows = []
    for g in combine(corpus.cells):
        rec = g.first
        if not g.ok or rec.get("flops_per_step") is None:
            continue
        settings: dict[str, Any] = rec.get("settings") or {}
        sync = rec.get("sync_check") or {}
        achieved = rec["flops_per_step"] / g.estimate.centre_s if g.estimate and g.estimate.centre_s > 0 else None
        peak = g.typical("peak_flops")
        published = rec.get("peak_flops_published")
        rows.append([
            g.workload, g.device, g.name,
            str(settings.get("precision") or (rec.get("options") or {}).get("precision") or "fp32"),
            flops_text(rec["flops_per_step"]),
            flops_text(achieved) + ("FLOP/s" if achieved else ""),
            flops_text(peak) + ("FLOP/s" if peak else ""),
            units.percent(achieved / peak if achieved and peak else None),
            flops_text(published) + ("FLOP/s" if published else ""),
            sync.get("verdict", "-") + _sync_cost(sync, rec.get("timing")),
            g.source + ": flops_per_step, step_s, peak_flops",
        ])
    return rows


def _sync_cost(sync: dict[str, Any], timing: Any) -> str:
    """The self-check's sync cost (per-step synced step time / drained step time) and the cell's timing mode,
    where recorded: on a GPU, how much per-step synchronisation would understate throughput (docs/timing.md)."""
    parts = []
    ratio = sync.get("sync_cost_ratio")
    if isinstance(ratio, (int, float)) and ratio > 0:
        parts.append(f"sync cost ×{ratio:.2f}")
    if isinstance(timing, dict) and timing.get("mode") == "windowed":
        parts.append(f"windowed k={timing.get('window_steps')}")
    return f" ({', '.join(parts)})" if parts else ""


def calibration_notes(corpus: Corpus, lang: str) -> list[str]:
    """A note per (results file, device) whose cells' measured peaks (``peak_flops``) differ by more than
    :data:`PEAK_SPREAD` (largest / smallest): their MFUs are against different peaks."""
    peaks: dict[tuple[str, str], list[float]] = {}
    for rec in corpus.cells:
        p = rec.get("peak_flops") if rec.ok else None
        if p:
            peaks.setdefault((rec.file, rec["device"]), []).append(float(p))
    out = []
    for (file, device), xs in peaks.items():
        low, high = min(xs), max(xs)
        if low > 0 and high / low > PEAK_SPREAD:
            out.append(PEAK_NOTE[lang].format(file=file, device=device, low=flops_text(low) + "FLOP/s",
                                              high=flops_text(high) + "FLOP/s", x=_apart(high / low), limit=PEAK_SPREAD,
                                              n=len(xs)))
    return out
