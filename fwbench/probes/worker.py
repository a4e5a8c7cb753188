"""The probe worker: ``python -m fwbench.probes.worker JOB.json RESULT.json`` runs one probe.

Like :mod:`fwbench.worker` it never raises: the probe's findings, or its failure with a reason, are
written to RESULT.json as ``{"status", "reason", "findings"}``. The probe is ``job.options["probe"]``,
applied to ``job.runner``; the implementation is imported here, so frameworks load only in this process.
"""

from __future__ import annotations

import importlib
import json
import resource
import shutil
import sys
import time
import traceback
from typing import Any

from fwbench.job import Job
from fwbench.jsonio import write_json_atomic
from fwbench.probes.catalog import PROBES
from fwbench.probes.context import ProbeContext, quiet_env
from fwbench.runners.base import CellSkipped
from fwbench.worker import _brief


def run_probe(job: Job) -> dict[str, Any]:
    info = PROBES[job.options["probe"]]
    module, _, fn = info.impls[job.runner].partition(":")
    ctx = ProbeContext.from_job(job)
    try:
        findings = getattr(importlib.import_module(module), fn)(ctx)
    finally:  # exported artifacts were measured (artifact_bytes); they are not kept
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return {"status": "ok", "reason": "", "findings": findings}


def main(argv: list[str] | None = None) -> int:
    job_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    quiet_env()
    with open(job_path, encoding="utf-8") as f:
        job = Job.from_dict(json.load(f))
    t0 = time.perf_counter()
    try:
        out = run_probe(job)
    except CellSkipped as exc:
        out = {"status": "skipped", "reason": str(exc)}
    except MemoryError as exc:
        traceback.print_exc()
        out = {"status": "oom", "reason": f"out of memory: {_brief(exc)}"}
    except Exception as exc:  # a failure is data: recorded with its reason
        traceback.print_exc()
        out = {"status": "failed", "reason": _brief(exc)}
    out["worker_s"] = time.perf_counter() - t0
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_json_atomic(result_path, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
