"""Measured peak FLOP/s: a large square matrix multiply, timed inside the worker (runs in about 1 s).

MFU needs a denominator. Published peaks (:mod:`fwbench.peaks`) describe the chip, not what this
machine, driver, thread count and library actually reach, so every cell measures its own: the best
rate of an ``n x n`` matmul, ``2 n^3`` FLOPs, with ``n`` grown until one multiply is long enough to time.

Which library multiplies (:func:`calibrate`):
- ``cpu``: NumPy (float32, its BLAS, the worker's thread count via ``OPENBLAS_NUM_THREADS`` /
  ``OMP_NUM_THREADS``) for *every* runner, so that all runners on a CPU share one denominator.
  Reduced precision on the CPU is still measured against this float32 peak.
- ``cuda`` / ``tpu``: the framework the cell's runner uses (torch, TensorFlow or JAX; importing a second
  framework would start a second device context), in the cell's compute dtype (fp32/bf16/fp16) and under
  the cell's TF32 setting, which the session has already applied. So an fp32 cell with TF32 off is
  compared with the fp32 (non-tensor-core) peak, a bf16 cell with the bf16 tensor-core peak.
- ``torch`` on a TPU (torch_xla): not calibrated (``peak_flops`` is ``None``, with a note).

Each matmul is followed by the framework's synchronisation (``torch.cuda.synchronize``, fetching a
result element), so the clock never reads enqueued-but-unfinished work.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

# One timed sample should last at least this long, so that the sync and clock overheads vanish.
TARGET_SAMPLE_S = 0.02
DEFAULT_BUDGET_S = 1.0
CPU_SIZES = (256, 512, 1024, 2048, 3072)
DEVICE_SIZES = (1024, 2048, 4096, 8192)
MIN_SAMPLES = 3

# run(k): do k matmuls of the prepared n x n operands and wait for them to finish.
Runner = Callable[[int], None]


@dataclass
class Calibration:
    """The result: ``peak_flops`` (best FLOP/s seen), and how it was measured."""

    peak_flops: float | None
    method: str
    dtype: str
    n: int = 0
    samples: int = 0
    per_sample: int = 0
    best_s: float = 0.0
    seconds: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_peak(make: Callable[[int], Runner], sizes: tuple[int, ...], budget_s: float = DEFAULT_BUDGET_S,
                 clock: Callable[[], float] = time.perf_counter) -> tuple[float, int, int, int, float]:
    """Best matmul FLOP/s over ``sizes`` (grown while one multiply is shorter than :data:`TARGET_SAMPLE_S`).

    ``make(n)`` prepares operands and returns ``run(k)``. Returns ``(peak, n, samples, per_sample, best_s)``
    where ``best_s`` is the fastest time of one multiply. Stops within about ``budget_s`` once it has
    :data:`MIN_SAMPLES` samples at the chosen size (always at least one).
    """
    start = clock()
    chosen: tuple[float, int, Runner, float] | None = None  # (rate, n, run, one multiply's time)
    for n in sizes:
        run = make(n)
        run(1)  # warm-up: allocation, kernel selection, thread-pool start
        t0 = clock()
        run(1)
        one = max(clock() - t0, 1e-9)
        rate = 2.0 * n ** 3 / one
        improved = chosen is None or rate > 1.1 * chosen[0]
        if improved:
            chosen = (rate, n, run, one)
        # Larger operands usually run closer to the peak; stop growing once they stop helping (and the
        # multiply is long enough to time), or when the next size (8x the work) would overrun the budget.
        if (not improved and one >= TARGET_SAMPLE_S) or clock() - start + 8 * one * 3 > budget_s:
            break
    assert chosen is not None
    _, n, run, one = chosen
    per_sample = max(1, math.ceil(TARGET_SAMPLE_S / one))
    best, samples = one, 1
    while samples < MIN_SAMPLES or clock() - start < budget_s / 2:
        t0 = clock()
        run(per_sample)
        best = min(best, (clock() - t0) / per_sample)
        samples += 1
        if clock() - start > budget_s:
            break
    return 2.0 * n ** 3 / best, n, samples, per_sample, best


# --------------------------------------------------------------------------- per-framework operands
def _numpy(dtype: str) -> Callable[[int], Runner]:
    import numpy as np

    def make(n: int) -> Runner:
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        c = np.empty((n, n), np.float32)

        def run(k: int) -> None:
            for _ in range(k):
                np.matmul(a, b, out=c)
        return run
    return make


def _torch(device: str, dtype: str) -> Callable[[int], Runner]:
    import torch

    tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def make(n: int) -> Runner:
        # drawn on the device: generating 8192 x 8192 on the host and copying would cost more than the timing
        a, b = (torch.randn(n, n, device=dev, dtype=tdtype) for _ in range(2))
        c = torch.empty(n, n, device=dev, dtype=tdtype)

        def run(k: int) -> None:
            for _ in range(k):
                torch.mm(a, b, out=c)
            sync()
        return run
    return make


def _tensorflow(device: str, dtype: str) -> Callable[[int], Runner]:
    import tensorflow as tf

    tdtype = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}[dtype]
    where = {"cuda": "/GPU:0", "tpu": "/TPU:0"}.get(device, "/CPU:0")

    def make(n: int) -> Runner:
        with tf.device(where):
            g = tf.random.Generator.from_seed(0)
            a, b = (tf.cast(g.normal((n, n)), tdtype) for _ in range(2))

        def run(k: int) -> None:
            with tf.device(where):
                for _ in range(k):
                    c = tf.linalg.matmul(a, b)
                c[0, 0].numpy()  # one element: waits for the stream without copying the matrix
        return run
    return make


def _jax(device: str, dtype: str) -> Callable[[int], Runner]:
    import jax
    import jax.numpy as jnp

    jdtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}[dtype]
    platform = {"cuda": "gpu", "tpu": "tpu"}.get(device, "cpu")
    dev = jax.devices(platform)[0]
    mm = jax.jit(jnp.matmul)

    def make(n: int) -> Runner:
        k1, k2 = jax.random.split(jax.random.PRNGKey(0))
        a = jax.device_put(jax.random.normal(k1, (n, n), jnp.float32).astype(jdtype), dev)
        b = jax.device_put(jax.random.normal(k2, (n, n), jnp.float32).astype(jdtype), dev)

        def run(k: int) -> None:
            c = None
            for _ in range(k):
                c = mm(a, b)
            c.block_until_ready()  # one device queue: the last result is ready after the earlier ones
        return run
    return make


def calibrate(device: str, framework: str, precision: str = "fp32", budget_s: float = DEFAULT_BUDGET_S) -> Calibration:
    """Measure the matmul peak for a cell on ``device`` whose runner uses ``framework`` (see module docstring).

    Never raises for a framework error: the failure becomes ``peak_flops=None`` with a ``note``.
    """
    if device == "cpu":
        lib, dtype, make, sizes = "numpy", "fp32", _numpy("fp32"), CPU_SIZES
        note = "" if precision == "fp32" else f"CPU peak measured in fp32; the cell ran {precision}"
    else:
        dtype, sizes, note = precision, DEVICE_SIZES, ""
        lib = framework
        if framework == "torch" and device == "tpu":
            return Calibration(None, "torch_xla", dtype, note="not calibrated on torch_xla; see published peaks")
        factories = {"torch": _torch, "tensorflow": _tensorflow, "jax": _jax}
        if framework not in factories:
            return Calibration(None, framework, dtype, note=f"no matmul calibration for {framework}")
        try:
            make = factories[framework](device, dtype)
        except Exception as exc:  # a missing dtype or device is data, not a crash
            return Calibration(None, framework, dtype, note=f"calibration unavailable: {type(exc).__name__}: {exc}"[:300])
    t0 = time.perf_counter()
    try:
        peak, n, samples, per_sample, best = measure_peak(make, sizes, budget_s)
    except Exception as exc:
        return Calibration(None, lib, dtype, seconds=time.perf_counter() - t0,
                           note=f"calibration failed: {type(exc).__name__}: {exc}"[:300])
    return Calibration(peak, f"{lib} {dtype} matmul", dtype, n, samples, per_sample, best,
                       time.perf_counter() - t0, note)
