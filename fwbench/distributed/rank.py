"""One rank of a data-parallel run: ``python -m fwbench.distributed.rank JOB.json OUT_DIR``.

Started by :mod:`fwbench.distributed.launch` (through ``torchrun``, or with ``TF_CONFIG``). The flow is the
same on every engine, so that their numbers mean the same thing:

1. **timing**: warm-up steps (timed; the first pays any trace or compilation), then a step count every
   rank agrees on (the maximum of each rank's estimate, so that collectives never wait for a rank that
   stopped), a barrier so that all ranks start together, and the timed steps. Each step is timed on its
   own, after the loss is fetched (the sync point).
2. **loss following** (parity): from the shared initial weights, K optimizer steps on a *global* batch of
   ``parity_shards x batch_size`` examples, this rank training on its equal shard; the loss recorded per
   step is the mean over ranks, i.e. the loss of the whole global batch. A 1-worker run takes the whole
   global batch itself, so with gradient averaging both runs must follow the same curve.
3. **gather**: every rank's times travel to every rank through the engine's own collective, and each rank
   writes ``OUT_DIR/rank{R}.json``. Any failure is written there too, and the process exits non-zero so that
   the launcher (or torchrun) stops the other ranks instead of leaving them blocked in a collective.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import json
import math
import os
import signal
import sys
import time
import traceback
from abc import abstractmethod
from pathlib import Path
from typing import Any

_PARENT = os.getppid()  # the launcher, read before the slow imports below (see _die_with_parent)

import numpy as np  # noqa: E402

from fwbench.data import DataSource
from fwbench.distributed.rows import RankRow
from fwbench.errors import CellSkipped, brief
from fwbench.job import Job
from fwbench.jsonio import write_json_atomic
from fwbench.runners.base import BATCH_POOL, StepSession
from fwbench.weights import Params, init_params
from fwbench.workload_spec import WorkloadSpec


class RankEngine(StepSession):
    """A framework's data-parallel engine: the step protocol of every session, on one rank.

    ``setup`` also joins the group (process group / strategy); ``build`` wraps the model for data-parallel
    training, whose ``train_step`` averages the gradients over ranks and returns this rank's loss. Only the
    collectives and the rank's place in the group are its own.
    """

    rank: int
    world_size: int
    local_rank: int
    node_rank: int

    def __init__(self, job: Job, run: dict[str, Any]):
        super().__init__(job)
        self.run = run

    @abstractmethod
    def setup(self) -> None:
        """Threads, device, and joining the group; may raise :class:`~fwbench.errors.CellSkipped`."""

    @abstractmethod
    def all_reduce(self, values: list[float], op: str) -> list[float]:
        """``op`` (``sum`` or ``max``) of ``values`` over ranks, through the engine's collective (float64)."""

    @abstractmethod
    def gather(self, row: list[float]) -> list[list[float]]:
        """Every rank's ``row`` (equal lengths), ordered by rank, through the engine's collective."""

    def barrier(self) -> None:
        """All ranks reach this point before any leaves it (a collective every rank must join)."""
        self.all_reduce([0.0], "sum")

    def info(self) -> dict[str, Any]:
        """Backend, engine and settings, recorded in the cell."""
        return {}

    def close(self) -> None:
        """Leave the group cleanly."""


def parity_losses(engine: RankEngine, spec: WorkloadSpec, params: Params, shards: int) -> list[float]:
    """Global-batch losses of K steps (dropout removed), this rank training on its shard of each batch."""
    global_spec = dataclasses.replace(spec, batch_size=spec.batch_size * shards)
    data = DataSource(global_spec)
    per = global_spec.batch_size // engine.world_size
    lo, hi = engine.rank * per, (engine.rank + 1) * per
    engine.build(spec.for_parity(), params)
    losses = []
    for i in range(spec.parity_steps):
        x, y = data.batch(i)
        local = engine.value(engine.train_step(engine.put((x[lo:hi], y[lo:hi]))))
        # equal shards: the global batch's mean loss is the mean of the ranks' means
        losses.append(engine.all_reduce([local], "sum")[0] / engine.world_size)
    return losses


def agreed_steps(warmup_s: list[float], timing: Any) -> int:
    """Timed steps this rank would run: enough for ``min_seconds``, within the step and second bounds."""
    steady = warmup_s[1:] or warmup_s
    est = max(float(np.median(steady)), 1e-6)
    n = max(timing.min_steps, math.ceil(timing.min_seconds / est))
    n = min(n, timing.max_steps, max(3, math.floor(timing.max_seconds / est)))
    return max(1, n)


def timing_row(engine: RankEngine, spec: WorkloadSpec, params: Params) -> list[float]:
    """Warm-up, an agreed step count, a barrier, then the timed steps; returns this rank's gathered row."""
    engine.build(spec, params)
    data = DataSource(spec)
    pool = [engine.put(b) for b in data.batches(BATCH_POOL, start=engine.rank * BATCH_POOL)]
    warm, losses = [], []
    for i in range(spec.timing.warmup):
        t0 = time.perf_counter()
        losses.append(engine.value(engine.train_step(pool[i % len(pool)])))
        warm.append(time.perf_counter() - t0)
    n = int(engine.all_reduce([float(agreed_steps(warm, spec.timing))], "max")[0])
    engine.barrier()
    steps = []
    start = time.perf_counter()
    for i in range(spec.timing.warmup, spec.timing.warmup + n):
        t0 = time.perf_counter()
        losses.append(engine.value(engine.train_step(pool[i % len(pool)])))
        steps.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    # every step runs even after a non-finite loss: a rank that stopped would leave the others blocked
    return RankRow(engine.rank, engine.node_rank, elapsed, losses[-1], warm, steps).pack()


def run_rank(engine: RankEngine, job: Job) -> dict[str, Any]:
    spec = WorkloadSpec.from_dict(job.workload)
    params = init_params(spec)
    engine.setup()
    out: dict[str, Any] = {"status": "ok", "rank": engine.rank, "world_size": engine.world_size,
                           "local_rank": engine.local_rank, "node_rank": engine.node_rank}
    row = timing_row(engine, spec, params)  # first, as in fwbench.worker: the first step pays any compilation
    if "parity" in job.phases:
        out["parity_losses"] = parity_losses(engine, spec, params, engine.run["parity_shards"])
    out["table"] = engine.gather(row)
    out["warmup"] = spec.timing.warmup
    out.update(engine.info())
    engine.close()
    return out



def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this rank when its parent (torchrun or the launcher) dies, so that no rank outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != _PARENT:  # the parent died before prctl took effect (re-parented: to init or a subreaper)
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    job_path, out_dir = (argv if argv is not None else sys.argv[1:])[:2]
    _die_with_parent()
    with open(job_path, encoding="utf-8") as f:
        payload = json.load(f)
    job, run = Job.from_dict(payload["job"]), payload["run"]
    module, _, cls = run["impl"].partition(":")
    rank = int(os.environ.get("RANK", os.environ.get("FWBENCH_RANK", "0")))
    # the launcher ends ranks by these pids if their own launcher (torchrun) cannot
    Path(out_dir, f"rank{rank}.pid").write_text(str(os.getpid()))
    t0 = time.perf_counter()
    code = 0
    try:
        engine = getattr(importlib.import_module(module), cls)(job, run)
        result = run_rank(engine, job)
    except CellSkipped as exc:
        result = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # recorded, then a non-zero exit so that the other ranks are stopped
        traceback.print_exc()
        result, code = {"status": "failed", "reason": brief(exc)}, 1
    result.setdefault("rank", rank)
    result["worker_s"] = time.perf_counter() - t0
    import resource

    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_json_atomic(Path(out_dir, f"rank{rank}.json"), result)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
