"""Running probes from the parent: plan (probe, runner) jobs and run them through the pipeline's one loop.

A probe record is stored in the results document's ``probes`` list, like a cell: identity
(``id`` = ``workload/probe/runner/device``, ``probe``, ``kind``, ``runner``, ``family``, ``workload``,
``device``), ``status`` and ``reason`` (a failed probe is data, not an exception), ``findings`` (what the
probe measured, see each probe's docstring), ``versions``, ``duration_s``. The document is saved after
every probe. No framework is imported here.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from fwbench.config import RunnerOptions
from fwbench.job import Job
from fwbench.launch import run_cell
from fwbench.pipeline import Event, JobKind, run_jobs
from fwbench.probes.catalog import PROBES, ProbeInfo
from fwbench.runners.registry import RUNNERS

WORKER = "fwbench.probes.worker"


def plan_probes(pairs: list[tuple[ProbeInfo, str]], workloads: list[dict[str, Any]], devices: list[str],
                options: RunnerOptions) -> list[Job]:
    """One job per (workload, device, probe, runner) where the probe applies to the workload (``seq-length``
    needs token ids); ``workloads`` are validated WorkloadSpec dicts."""
    return [Job(workload=w, runner=runner, device=d, options=options, phases=("probe",), probe=info.name)
            for w in workloads for d in devices for info, runner in pairs if info.applies_to(w)]


def base_record(job: Job) -> dict[str, Any]:
    assert job.probe is not None
    info = PROBES[job.probe]
    versions = RUNNERS[job.runner].versions()
    for module in info.modules:
        try:
            versions[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"id": job.cell_id, "probe": info.name, "kind": info.kind, "description": info.description,
            "runner": job.runner, "family": RUNNERS[job.runner].family, "workload": job.workload["name"],
            "device": job.device, "status": "skipped", "reason": "", "findings": {}, "versions": versions}


def upsert_probe(doc: dict[str, Any], record: dict[str, Any]) -> None:
    doc["probes"] = [p for p in doc.get("probes", []) if p.get("id") != record["id"]] + [record]


def _missing_modules(job: Job) -> str | None:
    missing = PROBES[job.probe or ""].missing()
    return f"{', '.join(missing)} not installed (pip install {' '.join(missing)})" if missing else None


def _run_probe(job: Job, workdir: Path, timeout: float, memory_limit: int | None) -> dict[str, Any]:
    return run_cell(job, workdir, timeout, memory_limit, module=WORKER)


PROBE_KIND = JobKind(base=base_record, run=_run_probe, store=upsert_probe, why_not=_missing_modules,
                     tmp_prefix="fwbench-probes-")


def run_probes(doc: dict[str, Any], jobs: list[Job], out: Path, timeout: float = 300.0,
               memory_limit: int | None = None, machine_devices: dict[str, bool] | None = None,
               on_event: Event | None = None) -> dict[str, Any]:
    """Run the probe ``jobs`` (see :func:`plan_probes`) into ``doc``, saved to ``out`` after each."""
    doc.setdefault("probes", [])
    return run_jobs(doc, jobs, out, PROBE_KIND, timeout, memory_limit, on_event, machine_devices)
