"""The whole run in a few readable functions: plan the jobs, run each in a worker, save after each.

One loop (:func:`run_jobs`) serves cells and capability probes alike; a :class:`JobKind` says what
differs (the worker module, the record's identity, where the record goes in the document). No printing
here: the CLI passes an ``on_event`` callback for progress. Each finished record is written to the results
file at once (atomically), so a killed run loses nothing it already measured. When the file cannot be
written (disk full, read-only), the run stops with a :class:`~fwbench.errors.ResultsError` after flushing
what it measured to a file in the temp folder (see :func:`fwbench.results.save_or_fallback`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fwbench import env as envmod
from fwbench import parity, results
from fwbench.config import RunConfig, tpu_precision_problem
from fwbench.distributed.launch import run_distributed_cell
from fwbench.job import Job
from fwbench.launch import run_cell
from fwbench.runners.registry import RUNNERS, RunnerInfo
from fwbench.workload_spec import WorkloadSpec

Event = Callable[[str, int, int, Job, dict[str, Any]], None]
REFERENCE_RUNNER = "torch"
INSTALL_HINTS = {"torch": "torch", "tensorflow": "tensorflow", "keras": "keras", "jax": "jax"}


def plan(workloads: list[WorkloadSpec], runners: list[RunnerInfo], devices: list[str], config: RunConfig) -> list[Job]:
    """Every (workload, runner, device, repeat) cell, workloads outermost."""
    return [Job(workload=w.to_dict(), runner=r.name, device=d, repeat=k, options=config.options,
                phases=config.phases)
            for w in workloads for d in devices for r in runners for k in range(config.repeats)]


def precheck(job: Job, machine_devices: dict[str, bool]) -> str | None:
    """Why this job cannot run here (it is recorded as skipped without starting a worker), or ``None``."""
    info = RUNNERS[job.runner]
    missing = info.missing()
    if missing:
        hint = " ".join(sorted({INSTALL_HINTS.get(m, m) for m in missing}))
        return f"{', '.join(missing)} not installed (pip install {hint})"
    return device_problem(job, machine_devices)


def device_problem(job: Job, machine_devices: dict[str, bool]) -> str | None:
    """Why ``job``'s runner cannot run on its device here (runner support, the machine, TPU precision), or ``None``."""
    info = RUNNERS[job.runner]
    if job.device not in info.devices:
        return f"runner {job.runner} does not support device {job.device} (supports {', '.join(info.devices)})"
    if not machine_devices.get(job.device, False):
        return f"no {job.device.upper()} device on this machine"
    return tpu_precision_problem(job.device, job.options.precision)


@dataclass(frozen=True)
class JobKind:
    """What differs between kinds of job: the record before it runs, extra reasons not to run it, how it
    runs (a worker module, or the data-parallel launcher), and where its record goes in the document."""

    base: Callable[[Job], dict[str, Any]]
    run: Callable[[Job, Path, float, int | None], dict[str, Any]]
    store: Callable[[dict[str, Any], dict[str, Any]], None]
    why_not: Callable[[Job], str | None] = lambda job: None
    tmp_prefix: str = "fwbench-"


def run_jobs(doc: dict[str, Any], jobs: list[Job], out: Path, kind: JobKind, timeout: float,
             memory_limit: int | None = None, on_event: Event | None = None,
             machine_devices: dict[str, bool] | None = None) -> dict[str, Any]:
    """Run ``jobs`` one after another into ``doc``, saving ``out`` after each; returns ``doc``."""
    machine_devices = machine_devices if machine_devices is not None else envmod.devices()
    for job in jobs:
        doc.setdefault("workloads", {}).setdefault(job.workload["name"], job.workload)
    results.save_or_fallback(out, doc)
    with tempfile.TemporaryDirectory(prefix=kind.tmp_prefix) as tmp:
        for i, job in enumerate(jobs):
            record = kind.base(job)
            if on_event:
                on_event("start", i, len(jobs), job, record)
            why_not = precheck(job, machine_devices) or kind.why_not(job)
            if why_not:
                record["reason"] = why_not
            else:
                workdir = Path(tmp) / f"{i:05d}"  # one folder per job: its job, result and log files
                workdir.mkdir()
                record.update(kind.run(job, workdir, timeout, memory_limit))
            kind.store(doc, record)
            results.save_or_fallback(out, doc)
            if on_event:
                on_event("done", i, len(jobs), job, record)
    return doc


def base_cell(job: Job) -> dict[str, Any]:
    info = RUNNERS[job.runner]
    spec = job.workload
    return {"id": job.cell_id, "workload": spec["name"], "runner": job.runner, "family": info.family,
            "device": job.device, "repeat": job.repeat, "mode": spec["mode"], "batch_size": spec["batch_size"],
            "threads": job.options.threads, "options": job.options.to_dict(), "versions": info.versions(),
            "status": "skipped", "reason": ""}


def _run_cell(job: Job, workdir: Path, timeout: float, memory_limit: int | None) -> dict[str, Any]:
    # a data-parallel cell runs its ranks through the framework's own launcher (torchrun / TF_CONFIG)
    run = run_distributed_cell if job.workload.get("distributed") else run_cell
    return run(job, workdir, timeout, memory_limit)


def cell_kind(precision: str) -> JobKind:
    def store(doc: dict[str, Any], cell: dict[str, Any]) -> None:
        results.upsert_cell(doc, cell)
        doc["parity"] = parity.evaluate(doc["cells"], REFERENCE_RUNNER, precision)

    return JobKind(base=base_cell, run=_run_cell, store=store)


def execute(doc: dict[str, Any], jobs: list[Job], out: Path, config: RunConfig,
            on_event: Event | None = None, machine_devices: dict[str, bool] | None = None) -> dict[str, Any]:
    """Run the cells ``jobs`` into ``doc``, saving ``out`` after every cell; returns ``doc`` with parity evaluated."""
    return run_jobs(doc, jobs, out, cell_kind(config.options.precision), config.timeout,
                    config.memory_limit_bytes, on_event, machine_devices)
