"""The report's utilisation table: FLOPs per step, achieved FLOP/s and MFU against the measured peak (pure).

One row per successful cell that recorded ``flops_per_step`` (see :mod:`fwbench.flops`); the peak is the
matrix-multiply calibration of the same worker (:mod:`fwbench.calibrate`), the published peak is shown
beside it where :mod:`fwbench.peaks` knows the chip. Reports of runs without these fields have no table.
"""

from __future__ import annotations

from typing import Any

from fwbench import units
from fwbench.report.corpus import Corpus, source

UTIL_HEADERS = {
    "en": ("workload", "device", "runner", "precision", "FLOPs/step", "achieved", "measured peak", "MFU",
           "published peak", "timing check", "source"),
    "zh": ("工作负载", "设备", "运行器", "精度", "每步 FLOPs", "实际算力", "实测峰值", "MFU", "公布峰值", "计时自检", "来源"),
}
UTIL_TITLE = {"en": "Model FLOPs utilisation", "zh": "模型算力利用率 (MFU)"}
UTIL_NOTE = {
    "en": ("FLOPs/step counts the multiply-adds of conv2d and dense layers (2 FLOPs each), forward plus weight "
           "and input gradients (`flops_per_step`); achieved = FLOPs/step ÷ median step time (`achieved_flops`); "
           "MFU = achieved ÷ the matmul peak measured in the same worker (`peak_flops`, `calibration`)."),
    "zh": ("每步 FLOPs 只计卷积层和全连接层的乘加(每次 2 FLOPs),含前向及权重、输入梯度(`flops_per_step`);"
           "实际算力 = 每步 FLOPs ÷ 中位步长(`achieved_flops`);MFU = 实际算力 ÷ 同一 worker 中实测的矩阵乘峰值"
           "(`peak_flops`、`calibration`)。"),
}


def flops_text(x: float | None) -> str:
    """``1.2e12`` -> ``1.2 TFLOP/s``-style magnitude (without the unit's ``/s``)."""
    if x is None:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def utilisation_rows(corpus: Corpus) -> list[list[str]]:
    """Rows (already text) of the utilisation table; empty when no cell recorded FLOPs."""
    rows = []
    for rec in corpus.cells:
        if not rec.ok or rec.get("flops_per_step") is None:
            continue
        settings: dict[str, Any] = rec.get("settings") or {}
        sync = rec.get("sync_check") or {}
        rows.append([
            rec["workload"], rec["device"], rec["runner"],
            str(settings.get("precision") or (rec.get("options") or {}).get("precision") or "fp32"),
            flops_text(rec["flops_per_step"]),
            flops_text(rec.get("achieved_flops")) + ("FLOP/s" if rec.get("achieved_flops") else ""),
            flops_text(rec.get("peak_flops")) + ("FLOP/s" if rec.get("peak_flops") else ""),
            units.percent(rec.get("mfu")),
            flops_text(rec.get("peak_flops_published")) + ("FLOP/s" if rec.get("peak_flops_published") else ""),
            sync.get("verdict", "-"),
            source(rec, 'flops_per_step', 'achieved_flops', 'peak_flops', 'mfu'),
        ])
    return rows
