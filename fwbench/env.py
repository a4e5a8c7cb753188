"""Environment capture for results: versions, CPU, GPU, threads, git commit. Never imports a framework.

Framework versions come from package metadata; GPUs from ``nvidia-smi`` (where present); the CPU from
``/proc/cpuinfo`` or ``platform``. Each field is best-effort: a missing tool gives ``None``, not an error.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from fwbench import __version__
from fwbench.config import available_cores

FRAMEWORK_DISTS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "numpy", "onnx", "onnxruntime", "torch_xla")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {}
    for dist in FRAMEWORK_DISTS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs seen by ``nvidia-smi`` (name, driver, memory); empty where there is none."""
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if not out:
        return []
    rows = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            rows.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return rows


def tpu_present() -> bool:
    """A TPU host: TPU device files, or the environment a Cloud TPU VM / Colab TPU sets."""
    return bool(list(Path("/dev").glob("accel*")) or list(Path("/dev").glob("vfio/[0-9]*"))
                or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"))


def devices() -> dict[str, bool]:
    """Device kinds this machine appears to have (a framework may still not see one)."""
    return {"cpu": True, "cuda": bool(gpus()), "tpu": tpu_present()}


def git_commit(cwd: Path | None = None) -> str | None:
    return _run(["git", "-C", str(cwd or Path.cwd()), "rev-parse", "--short=12", "HEAD"], timeout=5.0)


def capture(threads: int | None = None) -> dict[str, Any]:
    """The environment a run records."""
    return {
        "fwbench": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": available_cores(),
        "threads": threads or available_cores(),
        "gpus": gpus(),
        "tpu": tpu_present(),
        "versions": versions(),
        "git_commit": git_commit(),
        "hostname": platform.node(),
    }
