"""Running probes from the parent: plan (probe, runner) pairs, run each in a probe worker, record it.

A probe record is stored in the results document's ``probes`` list, like a cell: identity
(``id`` = ``workload/probe/runner/device``, ``probe``, ``kind``, ``runner``, ``family``, ``workload``,
``device``), ``status`` and ``reason`` (a failed probe is data, not an exception), ``findings`` (what the
probe measured, see each probe's docstring), ``versions``, ``duration_s``. The document is saved after
every probe. No framework is imported here.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from pathlib import Path
from typing import Any, Callable

from fwbench import results
from fwbench.job import Job
from fwbench.launch import run_cell
from fwbench.pipeline import precheck
from fwbench.probes.catalog import ProbeInfo
from fwbench.runners.registry import RUNNERS

WORKER = "fwbench.probes.worker"
ProbeEvent = Callable[[str, int, int, dict[str, Any]], None]


def probe_id(workload: str, probe: str, runner: str, device: str) -> str:
    return f"{workload}/{probe}/{runner}/{device}"


def base_record(info: ProbeInfo, job: Job) -> dict[str, Any]:
    runner = RUNNERS[job.runner]
    versions = runner.versions()
    for module in info.modules:
        try:
            versions[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"id": probe_id(job.workload["name"], info.name, job.runner, job.device), "probe": info.name,
            "kind": info.kind, "description": info.description, "runner": job.runner, "family": runner.family,
            "workload": job.workload["name"], "device": job.device, "status": "skipped", "reason": "",
            "findings": {}, "versions": versions}


def upsert_probe(doc: dict[str, Any], record: dict[str, Any]) -> None:
    doc["probes"] = [p for p in doc.get("probes", []) if p.get("id") != record["id"]] + [record]


def run_probes(doc: dict[str, Any], pairs: list[tuple[ProbeInfo, str]], workload: dict[str, Any], device: str,
               threads: int, out: Path, timeout: float = 300.0, memory_limit: int | None = None,
               machine_devices: dict[str, bool] | None = None, on_event: ProbeEvent | None = None) -> dict[str, Any]:
    """Run every (probe, runner) pair on ``workload`` (a WorkloadSpec dict) and ``device`` into ``doc``."""
    from fwbench import env as envmod

    machine_devices = machine_devices if machine_devices is not None else envmod.devices()
    doc.setdefault("probes", [])
    doc.setdefault("workloads", {}).setdefault(workload["name"], workload)
    with tempfile.TemporaryDirectory(prefix="fwbench-probes-") as tmp:
        for i, (info, runner) in enumerate(pairs):
            job = Job(workload=workload, runner=runner, device=device, threads=threads,
                      options={"probe": info.name}, phases=("probe",))
            record = base_record(info, job)
            if on_event:
                on_event("start", i, len(pairs), record)
            missing = info.missing()
            why_not = precheck(job, machine_devices) or (
                f"{', '.join(missing)} not installed (pip install {' '.join(missing)})" if missing else None)
            if why_not:
                record["reason"] = why_not
            else:
                workdir = Path(tmp) / f"{i:02d}-{info.name}"  # one folder per probe: its job, result and log
                workdir.mkdir()
                record.update(run_cell(job, workdir, timeout, memory_limit, module=WORKER))
            upsert_probe(doc, record)
            results.save_or_fallback(out, doc)
            if on_event:
                on_event("done", i, len(pairs), record)
    return doc
