"""Spawning workers: one fresh process per cell, in its own process group, with a timeout.

What happened to the worker becomes the cell's status: its own result file (``ok``, ``failed``,
``skipped``, ``oom``, ``diverged``), or, when it wrote none, ``timeout`` (killed with its whole process
group), ``crashed`` (ended by a signal) or ``failed`` (exited without a usable result), each with the last
lines of its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from fwbench.job import Job
from fwbench.jsonio import write_json_atomic
from fwbench.runners.registry import RUNNERS

LOG_TAIL_LINES = 15
KILL_GRACE_S = 3.0


def worker_env(job: Job, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: explicit thread counts and the runner's own variables (e.g. KERAS_BACKEND)."""
    env = dict(os.environ)
    threads = str(job.threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[var] = threads
    env["PYTHONUNBUFFERED"] = "1"
    env.update(dict(RUNNERS[job.runner].env))
    env.update(extra or {})
    return env


def _limit_memory(limit_bytes: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ""


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the worker's process group, then SIGKILL whatever is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGTERM:  # the leader is gone; make sure no child of it lingers
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_cell(job: Job, workdir: Path, timeout: float, memory_limit: int | None = None,
             extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one job in a fresh worker process and return the cell's measured fields (never raises for worker faults).

    ``KeyboardInterrupt`` (and the CLI's SIGTERM handler) still propagate, after the worker group is killed.
    """
    stem = job.cell_id.replace("/", "_")
    job_path, result_path, log_path = (workdir / f"{stem}.{ext}" for ext in ("job.json", "result.json", "log"))
    write_json_atomic(job_path, job.to_dict())
    result_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fwbench.worker", str(job_path), str(result_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=worker_env(job, extra_env),
            start_new_session=True, preexec_fn=_limit_memory(memory_limit) if memory_limit else None,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return {"status": "timeout", "reason": f"no result after the {timeout:g} s cell timeout; worker killed",
                    "duration_s": time.perf_counter() - t0, "log_tail": log_tail(log_path)}
        except BaseException:
            kill_group(proc)
            raise
    cell = classify(code, result_path, log_path, memory_limit)
    cell["duration_s"] = time.perf_counter() - t0
    return cell


def classify(code: int, result_path: Path, log_path: Path, memory_limit: int | None = None) -> dict[str, Any]:
    """The cell from a finished worker: its result file if valid, else a status from the exit code."""
    tail = log_tail(log_path)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return {"status": "crashed", "reason": f"worker killed by signal {name}", "log_tail": tail}
    try:
        cell = json.loads(result_path.read_text(encoding="utf-8"))
        if not isinstance(cell, dict) or "status" not in cell:
            raise ValueError("no status")
    except (OSError, ValueError):
        reason = f"worker exited with code {code} without a valid result"
        if memory_limit and "MemoryError" in tail:
            return {"status": "oom", "reason": f"out of memory under the {memory_limit / 2**20:.0f} MiB limit",
                    "log_tail": tail}
        return {"status": "failed", "reason": reason, "log_tail": tail}
    if cell["status"] == "oom" and memory_limit:
        cell["reason"] = f"out of memory under the {memory_limit / 2**20:.0f} MiB limit ({cell.get('reason', '')})"
    if cell["status"] not in ("ok", "skipped"):
        cell.setdefault("log_tail", tail)
    return cell
