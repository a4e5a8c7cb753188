"""The whole run in a few readable functions: plan the cells, run each in a worker, save after each.

No printing here: the CLI passes an ``on_event`` callback for progress. Each finished cell is written
to the results file at once (atomically), so a killed run loses nothing it already measured. When the
file cannot be written (disk full, read-only), the run stops with a :class:`~fwbench.errors.ResultsError`
after flushing what it measured to a file in the temp folder (see :func:`fwbench.results.save_or_fallback`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fwbench import env as envmod
from fwbench import parity, results
from fwbench.distributed.launch import run_distributed_cell
from fwbench.job import Job
from fwbench.launch import run_cell
from fwbench.runners.registry import RUNNERS, RunnerInfo
from fwbench.workload import WorkloadSpec

Event = Callable[[str, int, int, Job, dict[str, Any] | None], None]


@dataclass
class RunOptions:
    """How to run: per-cell timeout (s), worker memory limit (bytes), thread count, runner options."""

    timeout: float = 600.0
    memory_limit: int | None = None
    threads: int = 0
    repeats: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    phases: tuple[str, ...] = ("timing", "parity")
    reference: str = "torch"


def plan(workloads: list[WorkloadSpec], runners: list[RunnerInfo], devices: list[str], opts: RunOptions) -> list[Job]:
    """Every (workload, runner, device, repeat) cell, workloads outermost."""
    threads = opts.threads or envmod.cpu_count()
    return [Job(workload=w.to_dict(), runner=r.name, device=d, repeat=k, threads=threads,
                options=dict(opts.options), phases=opts.phases)
            for w in workloads for d in devices for r in runners for k in range(opts.repeats)]


def precheck(job: Job, machine_devices: dict[str, bool]) -> str | None:
    """Why this cell cannot run here (it becomes a skipped cell without a worker), or ``None``."""
    info = RUNNERS[job.runner]
    missing = info.missing()
    if missing:
        extra = {"torch": "torch", "tensorflow": "tensorflow", "keras": "keras", "jax": "jax"}
        hint = " ".join(sorted({extra.get(m, m) for m in missing}))
        return f"{', '.join(missing)} not installed (pip install {hint})"
    if job.device not in info.devices:
        return f"runner {job.runner} does not support device {job.device} (supports {', '.join(info.devices)})"
    if not machine_devices.get(job.device, False):
        return f"no {job.device.upper()} device on this machine"
    return None


def base_cell(job: Job) -> dict[str, Any]:
    info = RUNNERS[job.runner]
    spec = job.workload
    return {"id": job.cell_id, "workload": spec["name"], "runner": job.runner, "family": info.family,
            "device": job.device, "repeat": job.repeat, "mode": spec["mode"], "batch_size": spec["batch_size"],
            "threads": job.threads, "options": job.options, "versions": info.versions(), "status": "skipped",
            "reason": ""}


def execute(doc: dict[str, Any], jobs: list[Job], out: Path, opts: RunOptions,
            on_event: Event | None = None, machine_devices: dict[str, bool] | None = None) -> dict[str, Any]:
    """Run ``jobs`` into ``doc``, saving ``out`` after every cell; returns ``doc`` with parity evaluated."""
    machine_devices = machine_devices if machine_devices is not None else envmod.devices()
    for job in jobs:
        doc["workloads"].setdefault(job.workload["name"], job.workload)
    results.save_or_fallback(out, doc)
    with tempfile.TemporaryDirectory(prefix="fwbench-") as tmp:
        for i, job in enumerate(jobs):
            if on_event:
                on_event("start", i, len(jobs), job, None)
            cell = base_cell(job)
            why_not = precheck(job, machine_devices)
            if why_not:
                cell["reason"] = why_not
            else:
                # a data-parallel cell runs its ranks through the framework's own launcher (torchrun / TF_CONFIG)
                run = run_distributed_cell if job.workload.get("distributed") else run_cell
                cell.update(run(job, Path(tmp), opts.timeout, opts.memory_limit))
            results.upsert_cell(doc, cell)
            doc["parity"] = parity.evaluate(doc["cells"], opts.reference, opts.options.get("precision", "fp32"))
            results.save_or_fallback(out, doc)
            if on_event:
                on_event("done", i, len(jobs), job, cell)
    return doc
