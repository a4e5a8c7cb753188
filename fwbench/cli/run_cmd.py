"""``fwbench run``: run workloads through runners on devices, with live progress, then print the tables."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from fwbench.errors import UsageError

DEVICE_CHOICES = ("cpu", "cuda", "tpu", "auto")
PRECISIONS = ("fp32", "bf16", "fp16")
EXIT_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}  # 128 + signal number


class Interrupted(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("run")(guarded(interruptible(run)))


def interruptible(fn: Any) -> Any:
    """Ctrl-C outside the cells (loading workloads, capturing the environment, comparing afterwards): exit 130
    with one line, not click's "Aborted!" and status 1. While cells run, the signal handlers below take over."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            print("Interrupted; every cell that finished is already in the results file.", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def parse_size(text: str) -> int:
    """``512MiB``, ``2GiB``, ``2G``, ``1048576`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", text, re.IGNORECASE)
    if not m:
        raise UsageError(f"--memory-limit {text!r}: give a size such as 512MiB or 2GiB")
    scale = 1024 ** "KMGT".find(m.group(2).upper()) * 1024 if m.group(2) else 1
    return int(float(m.group(1)) * scale)


def resolve_devices(devices: list[str]) -> list[str]:
    from fwbench import env as envmod

    out = []
    for d in devices:
        if d not in DEVICE_CHOICES:
            raise UsageError(f"unknown device {d!r}; choose from: {', '.join(DEVICE_CHOICES)}")
        if d == "auto":
            d = "cuda" if envmod.devices()["cuda"] else "cpu"
        if d not in out:
            out.append(d)
    return out


_RESUME_FIELDS: dict[str, Any] = {"frameworks": list, "runners": list, "workloads": list, "devices": list,
                                  "quick": bool, "repeats": int, "timeout": (int, float),
                                  "options": dict}


def resume_config(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """The run configuration stored in a results file, checked before ``--resume`` relies on it."""
    from fwbench.errors import ResultsError

    cfg = doc["config"]
    for key, typ in _RESUME_FIELDS.items():
        value = cfg.get(key)
        if not isinstance(value, typ) or (typ is list and not all(isinstance(v, str) for v in value)):
            raise ResultsError(str(path), f"config.{key} is missing or malformed; this run cannot be resumed")
    if not isinstance(cfg.get("memory_limit"), (str, type(None))):
        raise ResultsError(str(path), "config.memory_limit is malformed; this run cannot be resumed")
    return cfg


def stored_workloads(doc: dict[str, Any], path: Path) -> list[Any]:
    """The workload specs a results file was planned with (empty when it holds none)."""
    from fwbench.errors import ResultsError
    from fwbench.workload import WorkloadSpec

    stored = doc.get("workloads")
    if not isinstance(stored, dict):
        return []
    try:
        return [WorkloadSpec.from_dict(spec) for spec in stored.values()]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise ResultsError(str(path), "its stored workloads are malformed; this run cannot be resumed") from None


def check_writable(path: Path) -> None:
    """Fail before any work if the results file cannot be written."""
    from fwbench.results import check_target

    check_target(path)  # refuses special files (/dev/null, FIFOs, folders) and unwritable places
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".fwbench-write-test-{os.getpid()}-{time.time_ns()}"
        probe.write_text("x")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write results to {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name such as {path / 'run.json'}")


def run(
    framework: list[str] = typer.Option([], "--framework", "-f", help="Family: torch, tensorflow, keras, or all installed."),
    runner: list[str] = typer.Option([], "--runner", "-r", help="One runner exactly (repeatable), e.g. torch-compile."),
    workload: list[str] = typer.Option([], "--workload", "-w", help="Workload name or path to a .toml file (default: cnn)."),
    device: list[str] = typer.Option(["cpu"], "--device", "-d", help="cpu, cuda, tpu or auto (cuda where available)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results file (default: results/<run-id>.json)."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Folder for results when --out is not given."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds before a cell's worker is killed."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: 2 warm-up and at most 20 timed steps or 2 s per cell."),
    threads: int = typer.Option(0, "--threads", min=0, help="Intra-op threads per worker (0 = all cores)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Run each cell in this many fresh worker processes."),
    channels_last: bool = typer.Option(False, "--channels-last", help="PyTorch: NHWC (channels_last) memory format."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (mixed precision: autocast / Keras policy)."),
    tf32: bool = typer.Option(False, "--tf32", help="Allow TF32 tensor-core math for fp32 on NVIDIA GPUs (default: off)."),
    target: bool = typer.Option(True, "--target/--no-target", help="Train to the accuracy target of workloads that declare one (time-to-accuracy)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the parity check flags a runner."),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="Per-worker address-space limit, e.g. 4GiB."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Finish the missing or interrupted cells of this results file."),
    probes: bool = typer.Option(False, "--probes", help="Then run the capability probes of the selected runners (first workload and device) into the same results file."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Data-parallel ranks per node; makes every workload data-parallel (default: a [distributed] workload's own count, 2 on CPU; one per GPU on cuda)."),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="Data-parallel: machines running this same command."),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="Data-parallel: this machine's index, 0..nnodes-1."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Data-parallel: address of node 0 (torchrun rendezvous, TF_CONFIG exchange)."),
    master_port: int = typer.Option(0, "--master-port", min=0, max=65535, help="Data-parallel: port on node 0 (0: a free loopback port; needed with --nnodes > 1)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Then compare with this results file (exit codes of `fwbench compare`)."),
    threshold: str = typer.Option("5%", "--threshold", help="With --baseline: smallest slowdown that counts as a regression."),
) -> None:
    """Run workloads through runners and record every measurement in a results file."""
    from fwbench.cli.compare_cmd import prepare_baseline

    base_doc, thr = prepare_baseline(baseline, threshold)  # a bad baseline fails before any work (exit 2)
    from fwbench import env as envmod
    from fwbench import results
    from fwbench.pipeline import RunOptions, plan
    from fwbench.runners.registry import select
    from fwbench.workload import load_workload

    if resume is not None:
        doc = results.read(resume)
        cfg = resume_config(doc, resume)
        framework, runner, workload, device = cfg["frameworks"], cfg["runners"], cfg["workloads"], cfg["devices"]
        quick, threads, repeats, target = cfg["quick"], cfg["options"].get("threads"), cfg["repeats"], cfg.get("target", False)
        timeout, channels_last = cfg["timeout"], cfg["options"].get("channels_last", False)
        precision, tf32 = cfg["options"].get("precision", "fp32"), cfg["options"].get("tf32", False)
        memory_limit = cfg.get("memory_limit")
        out = resume
    if not framework and not runner:
        framework = ["torch"]
    runners = select(framework, runner)
    if not runners:
        raise UsageError("no runner selected: none of the chosen frameworks is installed (see `fwbench list`)")
    workload = workload or ["cnn"]
    # On --resume, the workloads the run was planned with (as stored in its file), not today's files.
    specs = stored_workloads(doc, resume) if resume is not None else []
    specs = specs or [load_workload(w) for w in workload]
    if quick:
        specs = [s.with_timing(warmup=2, min_steps=5, max_steps=20, min_seconds=0.0, max_seconds=2.0) for s in specs]
    devices = resolve_devices(device)
    limit = parse_size(memory_limit) if memory_limit else None
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from: {', '.join(PRECISIONS)}")
    options: dict[str, Any] = {"channels_last": channels_last, "precision": precision, "tf32": tf32}
    from fwbench.distributed.config import DistOptions, make_distributed

    dist = (DistOptions.from_dict(cfg["options"].get("distributed")) if resume is not None
            else DistOptions(workers, nnodes, node_rank, master_addr, master_port))
    specs = make_distributed(specs, dist, options)
    phases = ("timing", "parity") + (("target",) if target else ())
    opts = RunOptions(timeout=timeout, memory_limit=limit, threads=threads, repeats=repeats, options=options,
                      phases=phases)
    config = {"frameworks": framework, "runners": runner, "workloads": workload, "devices": device,
              "resolved_devices": devices, "timeout": timeout, "quick": quick, "threads": threads or envmod.cpu_count(),
              "repeats": repeats, "target": target, "options": options, "memory_limit": memory_limit,
              "argv": sys.argv[1:]}
    jobs = plan(specs, runners, devices, opts)
    if resume is not None:
        # Every recorded cell is finished (whatever its status); an interrupted cell was never recorded.
        done = {c["id"] for c in doc["cells"]}
        jobs = [j for j in jobs if j.cell_id not in done]
    else:
        doc = results.new_document(config, envmod.capture(threads or None))
        out = out or results_dir / f"{doc['run_id']}.json"
    assert out is not None
    check_writable(out)
    code = _execute_with_progress(doc, jobs, out, opts, strict)
    if probes and code not in EXIT_SIGNALS.values():
        from fwbench.cli.probe_cmd import run_probes_with_progress

        code = max(code, run_probes_with_progress(doc, [r.name for r in runners], [], specs[0].to_dict(), devices[0],
                                                  threads or envmod.cpu_count(), out, min(timeout, 300.0), limit))
    if base_doc is not None and code not in EXIT_SIGNALS.values():
        from fwbench.cli.compare_cmd import gate_after_run

        code = gate_after_run(base_doc, doc, thr, (str(baseline), str(out)), code if strict else 0)
    raise typer.Exit(code)


def _execute_with_progress(doc: dict[str, Any], jobs: list, out: Path, opts: Any, strict: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from fwbench import results
    from fwbench.cli.console import print_run_tables
    from fwbench.pipeline import execute

    console, err = Console(), Console(stderr=True)

    def on_signal(signum: int, frame: Any) -> None:
        # Later signals are ignored: stopping the worker's group and saving must not be cut short.
        for s in EXIT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    # a signal ignored by whoever started us (nohup, a background job of a script) stays ignored
    old = {s: signal.signal(s, on_signal) for s in EXIT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True)
    task = progress.add_task("starting", total=len(jobs))

    def on_event(kind: str, i: int, n: int, job: Any, cell: Any) -> None:
        if kind == "start":
            progress.update(task, description=f"cell {i + 1}/{n}: {job.cell_id}")
        else:
            progress.advance(task)
            mark = "✓" if cell["status"] == "ok" else "✗"
            err.print(f"{mark} {job.cell_id}: {cell['status']}" + (f" ({cell['reason']})" if cell.get("reason") else ""),
                      highlight=False, markup=False)
            if cell.get("distributed"):  # data-parallel cells: ranks, backend, global throughput, efficiency
                from fwbench.distributed.aggregate import summary_line

                err.print(f"  {summary_line(cell)}", highlight=False, markup=False)

    interrupted = None
    try:
        with progress:
            execute(doc, jobs, out, opts, on_event)
    except (KeyboardInterrupt, Interrupted) as exc:
        interrupted = getattr(exc, "signum", signal.SIGINT)
        for s in EXIT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        # The signal may have landed between recording a cell and saving it.
        results.save_or_fallback(out, doc)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print_run_tables(doc, console)
    err.print(f"Results: {out}", highlight=False)
    if interrupted is not None:
        err.print(f"Interrupted: {len(doc['cells'])} finished cells are saved; "
                  f"`fwbench run --resume {out}` runs the rest.", highlight=False)
        return EXIT_SIGNALS[interrupted]
    bad = [c for c in doc["cells"] if c["status"] != "ok"]
    if bad:
        return 1
    if strict and not doc.get("parity", {}).get("ok", True):
        return 1
    return 0
