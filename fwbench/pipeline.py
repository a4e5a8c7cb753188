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
from fwbench.scenarios import points
from fwbench.workload_spec import WorkloadSpec

Event = Callable[[str, int, int, Job, dict[str, Any]], None]
REFERENCE_RUNNER = "torch"
ARTIFACTS_ENV = "FWBENCH_ARTIFACTS"  # read by fwbench.runners.artifacts
INSTALL_HINTS = {"torch": "torch", "tensorflow": "tensorflow", "keras": "keras", "jax": "jax",
                 "onnxruntime": "onnxruntime", "onnx": "onnx", "openvino": "openvino"}


def install_hint(missing: list[str]) -> str:
    """The pip packages that provide the missing modules."""
    return " ".join(sorted({INSTALL_HINTS.get(m, m) for m in missing}))


def plan(workloads: list[WorkloadSpec], runners: list[RunnerInfo], devices: list[str], config: RunConfig) -> list[Job]:
    """Every (workload point, runner, device, repeat) cell: workloads outermost, then devices and runners, then
    the points of a batch sweep in ascending batch (so that one running out of memory can end the larger
    ones, :func:`cell_kind`), then repeats. A point is a scenario variant of its workload (:mod:`fwbench.scenarios`)."""
    jobs = []
    for w in workloads:
        variants = points(w, config.scenario, config.batch_sizes)
        for d in devices:
            for r in runners:
                for v in variants:
                    base = None if v.name == w.name else w.name
                    jobs += [Job(workload=v.to_dict(), runner=r.name, device=d, repeat=k,
                                 options=config.options.for_device(d),  # the timing mode resolved per device
                                 phases=config.phases(v.scenario), base=base) for k in range(config.repeats)]
    return jobs


def precheck(job: Job, machine_devices: dict[str, bool]) -> str | None:
    """Why this job cannot run here (it is recorded as skipped without starting a worker), or ``None``."""
    info = RUNNERS[job.runner]
    problem = info.scenario_problem(job.scenario)
    if problem:
        return problem
    missing = info.missing()
    if missing:
        return f"{', '.join(missing)} not installed (pip install {install_hint(missing)})"
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
    cell = {"id": job.cell_id, "workload": spec["name"], "runner": job.runner, "family": info.family,
            "device": job.device, "repeat": job.repeat, "mode": spec["mode"], "batch_size": spec["batch_size"],
            "threads": job.options.threads, "options": job.options.to_dict(), "versions": info.versions(),
            "status": "skipped", "reason": ""}
    if job.scenario != "train" or job.base is not None:
        cell.update(scenario=job.scenario, base_workload=job.base_workload)
    return cell


def _run_cell(job: Job, workdir: Path, timeout: float, memory_limit: int | None) -> dict[str, Any]:
    # a data-parallel cell runs its ranks through the framework's own launcher (torchrun / TF_CONFIG)
    if job.workload.get("distributed"):
        return run_distributed_cell(job, workdir, timeout, memory_limit)
    if job.scenario == "cold-start" and job.repeat == 0:
        return _primed_cold_start(job, workdir, timeout, memory_limit)
    return run_cell(job, workdir, timeout, memory_limit, artifacts_env(workdir))


def artifacts_env(workdir: Path) -> dict[str, str]:
    """Where a deployed runtime's worker finds (or exports once) its artifacts: one folder per run, beside
    the jobs' folders, so that every cell of a runner at one batch loads the same exported model."""
    return {ARTIFACTS_ENV: str(workdir.parent / "artifacts")}


def _primed_cold_start(job: Job, workdir: Path, timeout: float, memory_limit: int | None) -> dict[str, Any]:
    """A cold start's first process is preceded by one that is not recorded: it exports a deployed runtime's
    artifact (a deployment ships it ready) and brings the runner's libraries into the OS file cache, so every
    recorded process of every runner starts from the same state: a fresh process, files cached."""
    prime_dir = workdir / "prime"
    prime_dir.mkdir()
    prime = run_cell(job, prime_dir, timeout, memory_limit, artifacts_env(workdir))
    if prime.get("status") != "ok":
        return {**prime, "reason": f"the untimed first process failed, so no cold start was measured: "
                                   f"{prime.get('reason') or prime.get('status')}"}
    cell = run_cell(job, workdir, timeout, memory_limit, artifacts_env(workdir))
    cell["duration_s"] = cell.get("duration_s", 0.0) + prime.get("duration_s", 0.0)
    return cell


def sweep_key(job: Job) -> tuple[str, str, str, str]:
    """The sweep a job's point belongs to: one (workload, runner, device, scenario), all repeats."""
    return job.base_workload, job.runner, job.device, job.scenario


def cell_kind(precision: str) -> JobKind:
    out_of_memory: dict[tuple[str, str, str, str], int] = {}  # sweep -> the smallest batch that ran out

    def store(doc: dict[str, Any], cell: dict[str, Any]) -> None:
        results.upsert_cell(doc, cell)
        doc["parity"] = parity.evaluate(doc["cells"], REFERENCE_RUNNER, precision)

    def why_not(job: Job) -> str | None:
        smaller = out_of_memory.get(sweep_key(job))
        if smaller is not None and job.workload["batch_size"] > smaller:
            return (f"not run: batch {smaller} of this sweep already ran out of memory, and batch "
                    f"{job.workload['batch_size']} needs more")
        return None

    def run(job: Job, workdir: Path, timeout: float, memory_limit: int | None) -> dict[str, Any]:
        cell = _run_cell(job, workdir, timeout, memory_limit)
        if cell.get("status") == "oom":
            key = sweep_key(job)
            out_of_memory[key] = min(out_of_memory.get(key, job.workload["batch_size"]), job.workload["batch_size"])
        return cell

    return JobKind(base=base_cell, run=run, store=store, why_not=why_not)


def execute(doc: dict[str, Any], jobs: list[Job], out: Path, config: RunConfig,
            on_event: Event | None = None, machine_devices: dict[str, bool] | None = None) -> dict[str, Any]:
    """Run the cells ``jobs`` into ``doc``, saving ``out`` after every cell; returns ``doc`` with parity evaluated."""
    return run_jobs(doc, jobs, out, cell_kind(config.options.precision), config.timeout,
                    config.memory_limit_bytes, on_event, machine_devices)
