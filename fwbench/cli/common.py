"""Options and resolvers shared by the commands, declared once (as asv's ``common_args``).

Each shared option has one meaning, one placeholder and one stated default wherever it appears:
``--framework``/``--runner`` (default: the torch family), ``--workload`` (repeatable, default cnn),
``--device`` (repeatable), ``--out`` (a results FILE), ``--force``, ``--threads``, ``--timeout``,
``--memory-limit``, and the timing flags (``--warmup``, ``--min-steps``, ``--max-steps``, ``--max-time``,
``--target-ci``, ``--timing``, ``--cuda-graphs``). The resolvers turn them into typed values, once, at the edge.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from fwbench.config import DEVICE_CHOICES, ConfigError, resolve_threads
from fwbench.errors import FwbenchError, UsageError

if TYPE_CHECKING:
    from fwbench.config import TimingOverrides
    from fwbench.runners.registry import RunnerInfo
    from fwbench.workload_spec import WorkloadSpec

DEFAULT_FRAMEWORK = "torch"

Framework = Annotated[list[str], typer.Option(
    "--framework", "-f", metavar="FAMILY",
    help="Runner family: torch, tensorflow, keras, or all installed (repeatable). "
         f"With neither --framework nor --runner: {DEFAULT_FRAMEWORK}.")]
Runner = Annotated[list[str], typer.Option(
    "--runner", "-r", metavar="RUNNER", help="One runner exactly, e.g. torch-compile (repeatable; see `fwbench list`).")]
Workload = Annotated[list[str], typer.Option(
    "--workload", "-w", metavar="NAME|FILE",
    help="Workload name or path to a .toml file (repeatable) [default: cnn].")]
Device = Annotated[list[str], typer.Option(
    "--device", "-d", metavar="DEVICE", help="cpu, cuda, tpu or auto (cuda where available); repeatable.")]
Out = Annotated[Optional[Path], typer.Option(
    "--out", "-o", metavar="FILE", help="Results file to write [default: results/<run-id>.json]; "
                                        "an existing file is refused without --force.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")]
Threads = Annotated[int, typer.Option(
    "--threads", min=0, metavar="N", help="Intra-op threads per worker; 0 = every core this process may use.")]
MemoryLimit = Annotated[Optional[str], typer.Option(
    "--memory-limit", metavar="SIZE", help="Per-worker address-space limit, e.g. 4GiB (at least 64MiB) [default: none].")]
ResultsDir = Annotated[Path, typer.Option(
    "--results-dir", metavar="DIR", help="Folder for results when --out is not given.")]
Quick = Annotated[bool, typer.Option(
    "--quick", help="Smoke run: 2 warm-up and at most 20 timed steps or 2 s per cell (timing flags given "
                    "with it win).")]

# Timing control, as hyperfine users expect: each flag replaces that field of every workload's [timing]
# table for this run (fwbench.config.TimingOverrides; bounds as in a workload file).
Warmup = Annotated[Optional[int], typer.Option(
    "--warmup", metavar="N", help="Warm-up steps before timing (1-10000) [default: each workload's [timing]].")]
MinSteps = Annotated[Optional[int], typer.Option(
    "--min-steps", metavar="N", help="Timed steps at least, before the CI target may stop timing (3-1000000).")]
MaxSteps = Annotated[Optional[int], typer.Option(
    "--max-steps", metavar="N", help="Timed steps at most (3-10000000).")]
MaxTime = Annotated[Optional[float], typer.Option(
    "--max-time", metavar="SECONDS", help="Seconds of timed steps at most per cell, the workload's "
                                          "[timing] max_seconds (above 0, at most 86400).")]
TargetCI = Annotated[Optional[str], typer.Option(
    "--target-ci", metavar="PCT", help="Stop once the 95% CI half-width of the median is within this share of it, "
                                       "e.g. 2% or 0.02.")]
TimingMode = Annotated[Optional[str], typer.Option(
    "--timing", metavar="per-step|windowed",
    help="per-step: synchronise and time every step; windowed: time windows of steps with no host "
         "synchronisation inside [default: per-step on cpu, windowed on cuda and tpu].")]
CudaGraphs = Annotated[bool, typer.Option(
    "--cuda-graphs", help="Replay CUDA graphs where the framework offers them (torch-compile: "
                          "mode=\"reduce-overhead\"); recorded per cell.")]

# The regression gate's options (`compare`, `ab`); defaults in fwbench.compare.
Threshold = Annotated[str, typer.Option(
    "--threshold", "-t", metavar="PCT", help="Smallest slowdown that counts as a regression, e.g. 5% or 0.05.")]
Alpha = Annotated[float, typer.Option(
    "--alpha", min=1e-6, max=0.5, metavar="P",
    help="Significance level after Benjamini–Hochberg adjustment across cells (0.000001 to 0.5).")]
GateFormat = Annotated[str, typer.Option("--format", metavar="FORMAT", help="table, markdown or json (to stdout).")]
Estimator = Annotated[str, typer.Option(
    "--estimator", metavar="median|p10|min", help="What summarises one worker process's step times.")]
FailOnInconclusive = Annotated[bool, typer.Option(
    "--fail-on-inconclusive", help="Exit 3 when a cell is inconclusive or incomparable.")]


def check_gate_options(fmt: str, estimator: str) -> None:
    """``--format`` and ``--estimator`` of the gate commands, checked before any work."""
    from fwbench.gate import FORMATS
    from fwbench.stats import ESTIMATORS

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if estimator not in ESTIMATORS:
        raise UsageError(f"--estimator {estimator!r}: choose from {', '.join(ESTIMATORS)}")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that fwbench's own errors print one line on stderr and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FwbenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def timeout_option(default: float, what: str) -> object:
    return typer.Option(default, "--timeout", min=1.0, metavar="SECONDS",
                        help=f"Seconds before a {what}'s worker is killed.")


def select_runners(frameworks: list[str], runners: list[str], scenario: str = "train") -> list["RunnerInfo"]:
    """The runners ``--framework``/``--runner`` name (``all``: those that run ``scenario``); neither: the
    :data:`DEFAULT_FRAMEWORK` family."""
    from fwbench.runners.registry import select

    if not frameworks and not runners:
        frameworks = [DEFAULT_FRAMEWORK]
    chosen = select(frameworks, runners, scenario)
    if not chosen:
        raise UsageError("no runner selected: none of the chosen frameworks is installed (see `fwbench list`)")
    return chosen


def load_workloads(names: list[str]) -> list["WorkloadSpec"]:
    """Each ``--workload`` (default ``cnn``), loaded and validated; two of one name are refused."""
    from fwbench.workload import check_unique_names, load_workload

    names = names or ["cnn"]
    specs = [load_workload(w) for w in names]
    check_unique_names(specs)
    return specs


def resolve_devices(devices: list[str]) -> list[str]:
    """``--device`` values checked and ``auto`` resolved (cuda where this machine has one), duplicates dropped."""
    from fwbench import env as envmod

    out: list[str] = []
    for d in devices or ["cpu"]:
        if d not in DEVICE_CHOICES:
            raise UsageError(f"unknown device {d!r}; choose from: {', '.join(DEVICE_CHOICES)}")
        if d == "auto":
            d = "cuda" if envmod.devices()["cuda"] else "cpu"
        if d not in out:
            out.append(d)
    return out


def timing_overrides(warmup: int | None, min_steps: int | None, max_steps: int | None, max_time: float | None,
                     target_ci: str | None) -> "TimingOverrides":
    """The timing flags as one checked :class:`~fwbench.config.TimingOverrides` (``--target-ci`` parsed: ``2%``
    or ``0.02``); a bad value raises :class:`~fwbench.config.ConfigError` naming its flag (exit 2)."""
    from fwbench.config import TimingOverrides, parse_fraction

    ci = parse_fraction(target_ci, "target_ci") if target_ci is not None else None
    return TimingOverrides(warmup=warmup, min_steps=min_steps, max_steps=max_steps, max_seconds=max_time,
                           target_ci=ci)


def threads(value: int) -> int:
    """``--threads`` resolved once: 0 means every core this process may use (its CPU affinity)."""
    return resolve_threads(value)


def output_file(out: Path | None, default: Path, force: bool, command: str = "run") -> Path:
    """The results file to write, checked before any work: writable, a regular file, not overwritten by accident."""
    from fwbench import results

    if out is not None and str(out) == "-":
        raise UsageError("--out -: results are always written to a file (atomically, under a lock); print them "
                         "afterwards with `fwbench export FILE` or `fwbench report FILE`")
    path = out if out is not None else default
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name such as {path / 'run.json'}")
    results.check_target(path)  # a device, FIFO or socket is refused whatever --force says
    if out is not None and not force and (path.exists() or path.is_symlink()):
        resume = f", or `fwbench run --resume {path}` to finish its missing cells" if command == "run" else ""
        raise UsageError(f"--out {path} exists; pass --force to overwrite it{resume}")
    return path


def claim_output(held: contextlib.ExitStack, out: Path | None, default: Path, force: bool, command: str) -> Path:
    """:func:`output_file`, then the file's lock (held by ``held`` until the command ends), then the checks
    again: another run may have created the file between the first check and the lock."""
    from fwbench import results

    path = output_file(out, default, force, command)
    held.enter_context(results.lock(path))
    return output_file(out, default, force, command)


def config_error_in(path: Path, exc: ConfigError) -> "Exception":
    """A stored configuration that fails validation, as a results-file error naming the field."""
    from fwbench.errors import ResultsError

    where = exc.field if exc.field == "config" else f"config.{exc.field}"
    return ResultsError(str(path), f"{where} {exc.message}; this run cannot be resumed")
