"""Published peak FLOP/s of common accelerators, for reference next to the measured peak (pure data).

Figures are the vendors' datasheet numbers per chip (one GPU; one TPU chip), *dense* (without the
2:4 structured-sparsity doubling NVIDIA also quotes), in TFLOP/s. ``fp32`` is plain FP32 (CUDA cores);
``tf32``, ``bf16`` and ``fp16`` are tensor-core (or TPU MXU) rates; ``None`` where the chip lacks the
format. fwbench's MFU uses the *measured* matmul peak (:mod:`fwbench.calibrate`); these numbers only show
how far the measured peak is from the brochure. Boost clocks and power limits differ between boards, so
a measured peak 10-30% below these is normal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    """One chip's published dense peaks in TFLOP/s, and the names a framework reports for it."""

    chip: str
    aliases: tuple[str, ...]
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float | None
    source: str


# More specific names first: lookup takes the first alias found in the reported device name.
PEAKS: tuple[Peak, ...] = (
    Peak("NVIDIA H200 SXM", ("h200",), 67.0, 494.7, 989.4, 989.4, "NVIDIA H200 datasheet"),
    Peak("NVIDIA H100 PCIe", ("h100 pcie",), 51.2, 378.0, 756.0, 756.0, "NVIDIA H100 datasheet"),
    Peak("NVIDIA H100 SXM", ("h100",), 67.0, 494.7, 989.4, 989.4, "NVIDIA H100 datasheet"),
    Peak("NVIDIA A100", ("a100",), 19.5, 156.0, 312.0, 312.0, "NVIDIA A100 datasheet"),
    Peak("NVIDIA L40S", ("l40s",), 91.6, 183.0, 362.1, 362.1, "NVIDIA L40S datasheet"),
    Peak("NVIDIA L4", ("l4",), 30.3, 60.0, 121.0, 121.0, "NVIDIA L4 datasheet"),
    Peak("NVIDIA A10", ("a10",), 31.2, 62.5, 125.0, 125.0, "NVIDIA A10 datasheet"),
    Peak("NVIDIA V100 SXM2", ("v100-sxm2", "v100 sxm2"), 15.7, None, None, 125.0, "NVIDIA V100 datasheet"),
    Peak("NVIDIA V100 PCIe", ("v100",), 14.0, None, None, 112.0, "NVIDIA V100 datasheet"),
    Peak("NVIDIA T4", ("t4",), 8.1, None, None, 65.0, "NVIDIA T4 datasheet"),
    # Google Cloud TPU, per chip; the MXUs multiply in bf16 (fp32 matmuls default to bf16 passes).
    Peak("TPU v6e (Trillium)", ("tpu v6", "v6e"), 918.0, None, 918.0, None, "Google Cloud TPU v6e docs"),
    Peak("TPU v5e", ("tpu v5 lite", "tpu v5e", "v5e", "v5litepod"), 197.0, None, 197.0, None, "Google Cloud TPU v5e docs"),
    Peak("TPU v5p", ("tpu v5p", "v5p", "tpu v5"), 459.0, None, 459.0, None, "Google Cloud TPU v5p docs"),
    Peak("TPU v4", ("tpu v4",), 275.0, None, 275.0, None, "Google Cloud TPU v4 docs"),
    Peak("TPU v3", ("tpu v3",), 123.0, None, 123.0, None, "Google Cloud TPU v3 docs"),
    Peak("TPU v2", ("tpu v2",), 45.0, None, 45.0, None, "Google Cloud TPU v2 docs"),
)


def lookup(device_name: str) -> Peak | None:
    """The first row one of whose aliases occurs in ``device_name`` as whole words (case-insensitive), or ``None``.

    ``"NVIDIA A100-SXM4-80GB"`` is an A100; ``"NVIDIA A10"`` is not; ``"TPU v5 lite"`` is a v5e.
    """
    words = _words(device_name)
    for peak in PEAKS:
        for alias in peak.aliases:
            a = _words(alias)
            if any(words[i:i + len(a)] == a for i in range(len(words) - len(a) + 1)):
                return peak
    return None


def _words(text: str) -> list[str]:
    return re.split(r"[\s\-_/]+", text.lower().strip())


def published_flops(device_name: str, precision: str = "fp32", tf32: bool = False) -> float | None:
    """Published dense peak in FLOP/s for the cell's precision (fp32 with TF32 on uses the TF32 rate)."""
    peak = lookup(device_name)
    if peak is None:
        return None
    key = "tf32" if precision == "fp32" and tf32 and peak.tf32 else precision
    value = getattr(peak, key, None)
    return value * 1e12 if value else None
