"""The probe worker: ``python -m fwbench.probes.worker JOB.json RESULT.json`` runs one probe.

Like :mod:`fwbench.worker` it never raises: the probe's findings, or its failure with a reason, are
written to RESULT.json as ``{"status", "reason", "findings"}``. The probe is ``job.probe``,
applied to ``job.runner``; the implementation is imported here, so frameworks load only in this process.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from typing import Any

from fwbench.job import Job
from fwbench.probes.catalog import PROBES
from fwbench.probes.context import ProbeContext, quiet_env
from fwbench.worker import serve


def run_probe(job: Job) -> dict[str, Any]:
    info = PROBES[job.probe]
    module, _, fn = info.impls[job.runner].partition(":")
    ctx = ProbeContext.from_job(job)
    try:
        findings = getattr(importlib.import_module(module), fn)(ctx)
    finally:  # exported artifacts were measured (artifact_bytes); they are not kept
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return {"status": "ok", "reason": "", "findings": findings}


def main(argv: list[str] | None = None) -> int:
    quiet_env()
    return serve(run_probe, argv)


if __name__ == "__main__":
    sys.exit(main())
