"""What a probe function receives inside its worker: the job, the workload, shared weights and data."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.runners.base import Session
from fwbench.weights import Params, init_params
from fwbench.workload_spec import WorkloadSpec

# An exported model reproduces the original when max |Δ| <= ATOL + RTOL * max |original| (fp32 outputs).
RTOL, ATOL = 1e-4, 1e-5


@dataclass
class ProbeContext:
    job: Job
    spec: WorkloadSpec
    params: Params
    data: DataSource
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fwbench-probe-")))

    @classmethod
    def from_job(cls, job: Job) -> "ProbeContext":
        spec = WorkloadSpec.from_dict(job.workload).without_dropout()  # deterministic forward passes
        return cls(job, spec, init_params(spec), DataSource(spec))

    def session(self) -> Session:
        """The runner's own session (set up, not built), so probes use the networks and steps that are timed."""
        from fwbench.worker import load_session

        s = load_session(self.job)
        s.setup()
        return s

    def inputs(self) -> np.ndarray:
        """The first shared batch's inputs, channels-last float32."""
        return self.data.batch(0)[0]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (a SavedModel is a folder)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compare_outputs(reference: np.ndarray, exported: np.ndarray) -> dict[str, Any]:
    """max |Δ| of the exported model's outputs against the original's, and whether it is within tolerance."""
    reference, exported = np.asarray(reference, np.float64), np.asarray(exported, np.float64)
    if reference.shape != exported.shape:
        return {"max_abs_diff": None, "reproduces": False,
                "mismatch": f"output shape {list(exported.shape)} vs original {list(reference.shape)}"}
    diff = float(np.max(np.abs(reference - exported))) if reference.size else 0.0
    bound = ATOL + RTOL * float(np.max(np.abs(reference))) if reference.size else ATOL
    return {"max_abs_diff": diff, "reproduces": bool(np.isfinite(diff) and diff <= bound), "tolerance": bound}


def export_findings(fmt: str, export_s: float, artifact: Path, reference: np.ndarray, exported: np.ndarray,
                    **extra: Any) -> dict[str, Any]:
    return {"format": fmt, "export_s": export_s, "artifact_bytes": size_of(artifact),
            "artifact": artifact.name, **compare_outputs(reference, exported), **extra}


def version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def quiet_env() -> None:
    """Keep TensorFlow's start-up chatter out of the probe's log where it would bury a real error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
