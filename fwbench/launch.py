"""Spawning workers: one fresh process per cell, in its own process group, with a timeout.

What happened to the worker becomes the cell's status: its own result file (``ok``, ``failed``,
``skipped``, ``oom``, ``diverged``), or, when it wrote none, ``timeout`` (killed with its whole process
group), ``crashed`` (ended by a signal) or ``failed`` (exited without a usable result, or could not be
started at all), each with the last lines of its log.

Every process fwbench starts (cell and probe workers, torchrun, TensorFlow ranks) goes through
:func:`child_setup`: on Linux it dies with the CLI, even when the CLI is SIGKILLed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from fwbench import phase
from fwbench.errors import ResultsError
from fwbench.job import Job
from fwbench.jsonio import loads as json_loads, write_json_atomic
from fwbench.results import check_cell
from fwbench.runners.registry import RUNNERS

LOG_TAIL_LINES = 15
LOG_TAIL_BYTES = 8192
KILL_GRACE_S = 3.0
PHASE_POLL_S = 0.25  # how often a waiting parent reads its worker's phase file (only with a listener)
IDENTITY_FIELDS = ("id", "workload", "runner", "family", "device", "repeat")


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def worker_env(job: Job, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: explicit thread counts and the runner's own variables (e.g. KERAS_BACKEND)."""
    env = dict(os.environ)
    threads = str(job.options.threads)
    for var in THREAD_VARS:
        env[var] = threads
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a worker killed by a fatal signal leaves its Python stack in the log
    env.update(dict(RUNNERS[job.runner].env))
    env.update(extra or {})
    return env


PR_SET_PDEATHSIG = 1
SPAWNED_ENV = "FWBENCH_SPAWNED_AT"  # time.monotonic() just before the worker was spawned (read by the worker)


def _load_prctl() -> Any:
    """libc's ``prctl`` (Linux only), resolved here at import: the child may not load anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()
_SIGKILL = int(signal.SIGKILL)
_RLIMIT_AS = resource.RLIMIT_AS


def child_setup(memory_limit: int | None = None) -> Callable[[], None]:
    """The ``preexec_fn`` of every process fwbench starts: die with the parent, and run under the memory limit.

    On Linux the child asks for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so that no worker
    outlives the CLI, even a CLI killed with SIGKILL; if the parent already died between the fork and that
    request, the child exits at once. The signal fires when the parent *thread* that started the child ends:
    fwbench starts workers from the CLI's main thread. It is cleared on fork, so it covers the processes
    fwbench starts, not the helpers a framework starts inside a worker (the worker's process group is killed
    at a timeout or an interrupt, but not after a SIGKILL of the CLI). Elsewhere (macOS) workers are not tied
    to the parent.
    """
    parent = os.getpid()

    # Runs in the child between fork and exec: no imports there (another thread of the parent, such as the
    # progress display's, may have held an import lock at the fork), hence ctypes, prctl and ``resource``
    # resolved at module level.
    def apply() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(1)
        if memory_limit:
            resource.setrlimit(_RLIMIT_AS, (memory_limit, memory_limit))

    return apply


def cell_stem(cell_id: str) -> str:
    """File-name stem for a cell's job, result and log files.

    Workload names are user data (any printable text, up to 80 characters); they never reach a path as
    they are. The stem keeps ASCII letters, digits, ``.``, ``_`` and ``-`` (no leading dot, at most 60
    characters) for the reader, and a hash of the full id so that distinct cells never share files.
    """
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", cell_id)[:60].lstrip(".") or "cell"
    return f"{readable}-{hashlib.sha256(cell_id.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a worker's log, read from its last :data:`LOG_TAIL_BYTES` bytes only: a
    worker that floods its output (megabytes without a newline) cannot bloat the results file."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(deque(text.rstrip("\n").split("\n"), maxlen=lines)).rstrip()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the worker's process group, then SIGKILL whatever is left after a grace period.

    The SIGKILL is sent from a ``finally``: an interrupt that lands during the grace period must not leave
    a process of the group (a framework's helper that ignores SIGTERM, say) running.
    """
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=KILL_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    finally:
        try:  # the leader may be gone while its children still hold the group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:  # stuck in the kernel (a driver call); nothing more to do
            pass


def run_cell(job: Job, workdir: Path, timeout: float, memory_limit: int | None = None,
             extra_env: dict[str, str] | None = None, module: str = "fwbench.worker",
             python: str | None = None) -> dict[str, Any]:
    """Run one job in a fresh worker process and return the cell's measured fields (never raises for worker faults).

    ``KeyboardInterrupt`` (and the CLI's SIGTERM handler) still propagate, after the worker group is killed.
    ``module`` is the worker entry point run as ``python -m MODULE JOB RESULT`` (probes use their own);
    ``python`` the interpreter (default: this one; ``fwbench ab`` gives each side its own).
    """
    stem = cell_stem(job.cell_id)
    job_path, result_path, log_path, phase_path = (workdir / f"{stem}.{ext}"
                                                   for ext in ("job.json", "result.json", "log", "phase"))
    write_json_atomic(job_path, job.to_dict())
    result_path.unlink(missing_ok=True)
    phase_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc: subprocess.Popen | None = None
    with open(log_path, "w", encoding="utf-8") as log:
        try:  # Popen inside the try: an interrupt right after the fork must still kill the new worker
            try:
                proc = subprocess.Popen(
                    [python or sys.executable, "-m", module, str(job_path), str(result_path)],  # module: the entry point
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    # the spawn instant on the system-wide monotonic clock, for a cold start's process-start time
                    env=worker_env(job, {**(extra_env or {}), phase.ENV: str(phase_path),
                                         SPAWNED_ENV: f"{time.monotonic():.9f}"}),
                    start_new_session=True, preexec_fn=child_setup(memory_limit),
                )
            except (OSError, subprocess.SubprocessError, ValueError) as exc:  # EACCES, ENOENT, ENOMEM, E2BIG …
                return {"status": "failed", "reason": start_failure(exc), "duration_s": time.perf_counter() - t0}
            code = wait(proc, time.perf_counter() + timeout, phase_path)
        except subprocess.TimeoutExpired:
            assert proc is not None
            kill_group(proc)
            return {"status": "timeout", "reason": f"no result after the {timeout:g} s cell timeout; worker killed",
                    "duration_s": time.perf_counter() - t0, "log_tail": log_tail(log_path)}
        except BaseException:
            if proc is not None:
                kill_group(proc)
            raise
    phase_path.unlink(missing_ok=True)  # the worker's last phase: read while it ran, nothing to keep
    cell = classify(code, result_path, log_path, memory_limit)
    cell["duration_s"] = time.perf_counter() - t0
    return cell


def wait(proc: subprocess.Popen, deadline: float, phase_path: Path) -> int:
    """The worker's exit code; ``TimeoutExpired`` at ``deadline`` (``time.perf_counter``). Under
    :func:`fwbench.phase.listening`, the worker's phase is read and passed on every :data:`PHASE_POLL_S`."""
    listener = phase.listener()
    if listener is None:
        return proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
    while True:
        listener(phase.read(phase_path))
        try:
            return proc.wait(timeout=max(0.0, min(PHASE_POLL_S, deadline - time.perf_counter())))
        except subprocess.TimeoutExpired:
            if time.perf_counter() >= deadline:
                raise


def start_failure(exc: BaseException) -> str:
    """A cell's reason when its worker could not be started at all (the cell fails; the run goes on)."""
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        if exc.filename:
            what += f": {exc.filename}"
    elif isinstance(exc, subprocess.SubprocessError):  # raised in the child before exec: the rlimit or prctl
        what = f"setting up the process failed ({exc})"
    else:
        what = str(exc)
    return f"could not start the worker: {what}"


def classify(code: int, result_path: Path, log_path: Path, memory_limit: int | None = None) -> dict[str, Any]:
    """The cell from a finished worker: its result file if valid, else a status from the exit code.

    Under ``--memory-limit``, a crashed or failed cell whose log or reason shows an allocation refused
    (see :data:`OOM_SIGNS`) is ``oom``: the limit shows up wherever the worker first allocates, which may be
    loading a shared library or a BLAS buffer rather than Python's own ``MemoryError``. A worker killed by a
    signal before it printed anything under a limit is ``oom`` too, said as "probably": so small a limit
    makes the kernel kill the interpreter while it is loaded (SIGSEGV), before any error can be written.
    """
    cell = _classify(code, result_path, log_path)
    limit = f"the {_mib(memory_limit)} limit" if memory_limit else ""
    if memory_limit and (cell["status"] == "oom" or cell["status"] in ("crashed", "failed") and looks_oom(
            cell.get("reason", "") + "\n" + cell.get("log_tail", ""))):
        cell["reason"] = f"out of memory under {limit} ({cell.get('reason', '')})"
        cell["status"] = "oom"
    elif memory_limit and cell["status"] == "crashed" and not cell.get("log_tail"):
        cell["reason"] = f"probably out of memory under {limit} ({cell['reason']} before it printed anything)"
        cell["status"] = "oom"
    return cell


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB" if nbytes >= 2**20 else f"{nbytes} B"


# How a refused allocation reads in a worker's log: Python, the dynamic loader, OpenBLAS, C++ (torch, TF).
OOM_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment from shared object",
             "std::bad_alloc", "can't allocate memory", "Memory allocation still failed", "out of memory",
             "Out of memory", "ResourceExhaustedError", "OOM when allocating")


def looks_oom(text: str) -> bool:
    return any(sign in text for sign in OOM_SIGNS)


def _classify(code: int, result_path: Path, log_path: Path) -> dict[str, Any]:
    tail = log_tail(log_path)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return {"status": "crashed", "reason": f"worker killed by signal {name}", "log_tail": tail}
    try:
        cell = json_loads(result_path.read_text(encoding="utf-8"))  # non-finite numbers restored
        if not isinstance(cell, dict) or "status" not in cell:
            raise ValueError("no status")
        # The cell's identity is the parent's, never the worker's; the rest must pass the results schema,
        # or one bad worker would make the whole results file unreadable.
        cell = {k: v for k, v in cell.items() if k not in IDENTITY_FIELDS}
        check_cell({"id": "", "workload": "", "runner": "", "device": "", **cell}, "worker result")
    except (OSError, ValueError, RecursionError, ResultsError) as exc:
        reason = f"worker exited with code {code} without a valid result"
        if isinstance(exc, ResultsError):
            reason = f"worker exited with code {code} with an invalid result ({exc.message})"
        return {"status": "failed", "reason": reason, "log_tail": tail}
    if cell["status"] not in ("ok", "skipped"):
        cell.setdefault("log_tail", tail)
    return cell
