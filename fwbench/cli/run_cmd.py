"""``fwbench run``: run workloads through runners on devices, with live progress, then print the tables.

Results (the tables) go to stdout; progress, per-cell lines and the results file's name go to stderr, so
``fwbench run ... > log`` keeps only the tables.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from fwbench.cli import common
from fwbench.cli.progress import EXIT_SIGNALS
from fwbench.config import (MAX_BATCH, MAX_CELLS, MAX_REPEATS, PRECISIONS, SCENARIO_CHOICES, ConfigError, RunConfig,
                            RunnerOptions)
from fwbench.scenarios import COLD_START_REPEATS
from fwbench.errors import UsageError
from fwbench.textsafe import shell_join, term_plain

if TYPE_CHECKING:
    from fwbench.distributed.config import DistOptions

# Options that only change what this invocation prints or how it exits; the rest come from the stored
# configuration under --resume and may not be given with it.
RESUME_COMPATIBLE = {"resume", "baseline", "threshold", "strict", "probes"}


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("run")(guarded(interruptible(run)))


def interruptible(fn: Any) -> Any:
    """Ctrl-C outside the cells (loading workloads, capturing the environment, comparing afterwards): exit 130
    with one line, not click's "Aborted!" and status 1. While cells run, the signal handlers take over."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            print("Interrupted; every cell that finished is already in the results file.", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def run(
    ctx: typer.Context,
    framework: common.Framework = [],
    runner: common.Runner = [],
    workload: common.Workload = [],
    device: common.Device = ["cpu"],
    out: common.Out = None,
    force: common.Force = False,
    results_dir: common.ResultsDir = Path("results"),
    timeout: float = common.timeout_option(600.0, "cell"),
    quick: common.Quick = False,
    warmup: common.Warmup = None,
    min_steps: common.MinSteps = None,
    max_steps: common.MaxSteps = None,
    max_time: common.MaxTime = None,
    target_ci: common.TargetCI = None,
    timing: common.TimingMode = None,
    cuda_graphs: common.CudaGraphs = False,
    threads: common.Threads = 0,
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=MAX_REPEATS, metavar="N",
                                          help="Run each cell in this many fresh worker processes "
                                               f"[default: 1; {COLD_START_REPEATS} for --scenario cold-start]."),
    scenario: Optional[str] = typer.Option(None, "--scenario", metavar="|".join(SCENARIO_CHOICES),
                                           help="What to measure: training steps, inference latency at batch 1 "
                                                "(p50/p90/p99), inference throughput (samples/s), or a fresh "
                                                "process's cold start [default: each workload's own, train]."),
    batch_size: List[int] = typer.Option([], "--batch-size", "-b", min=1, max=MAX_BATCH, metavar="N",
                                         help="Override the workload's batch; repeat it for a sweep "
                                              "(e.g. -b 1 -b 16 -b 64 -b 256)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="PyTorch: NHWC (channels_last) memory format."),
    precision: str = typer.Option("fp32", "--precision", metavar="|".join(PRECISIONS),
                                  help="Mixed precision for bf16/fp16: autocast / Keras policy."),
    tf32: bool = typer.Option(False, "--tf32", help="Allow TF32 tensor-core math for fp32 on NVIDIA GPUs."),
    target: bool = typer.Option(True, "--target/--no-target",
                                help="Train to the [target] of workloads that declare one (held-out accuracy, or a "
                                     "loss near a known optimum)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the parity check flags a runner."),
    memory_limit: common.MemoryLimit = None,
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="FILE",
                                          help="Finish the missing or interrupted cells of this results file, "
                                               "with its stored configuration."),
    probes: bool = typer.Option(False, "--probes", help="Then run the capability probes of the selected runners "
                                                        "on every workload and device, into the same results file."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, metavar="N",
                                          help="Data-parallel ranks per node; makes every workload data-parallel "
                                               "[default: a [distributed] workload's own count, 2 on CPU; one per GPU on cuda]."),
    nnodes: int = typer.Option(1, "--nnodes", min=1, metavar="N", help="Data-parallel: machines running this same command."),
    node_rank: int = typer.Option(0, "--node-rank", min=0, metavar="N", help="Data-parallel: this machine's index, 0..nnodes-1."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", metavar="HOST",
                                    help="Data-parallel: address of node 0 (torchrun rendezvous, TF_CONFIG exchange)."),
    master_port: int = typer.Option(0, "--master-port", min=0, max=65535, metavar="PORT",
                                    help="Data-parallel: port on node 0 (0: a free loopback port; needed with --nnodes > 1)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", metavar="FILE",
                                            help="Then compare with this results file (exit codes of `fwbench compare`)."),
    threshold: str = typer.Option("5%", "--threshold", "-t", metavar="PCT",
                                  help="With --baseline: smallest slowdown that counts as a regression."),
) -> None:
    """Run workloads through runners and record every measurement in a results file."""
    given = {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"}
    if "threshold" in given and baseline is None:
        raise UsageError("--threshold applies to --baseline; give --baseline FILE, or compare later with "
                         "`fwbench compare BASELINE CURRENT --threshold PCT`")
    from fwbench.gate import prepare_baseline

    base_doc, thr = prepare_baseline(baseline, threshold)  # a bad baseline fails before any work (exit 2)
    noisy_share_setting()
    from fwbench import env as envmod
    from fwbench import results
    from fwbench.pipeline import plan

    with contextlib.ExitStack() as held:  # the results file's lock, held until the command ends
        if resume is not None:
            refused = sorted(given - RESUME_COMPATIBLE)
            if refused:
                flags = ", ".join("--" + name.replace("_", "-") for name in refused)
                raise UsageError(f"--resume continues a run with its stored configuration; {flags} cannot be "
                                 "combined with it (start a new run instead)")
            held.enter_context(results.lock(resume))
            doc, config, specs = resumed_run(resume)
            out = resume
        else:
            from fwbench.distributed.config import DistOptions

            config, specs = new_run(
                RunConfig(command="run", frameworks=framework, runners=runner, workloads=workload or ["cnn"],
                          devices=device, resolved_devices=common.resolve_devices(device), timeout=timeout,
                          quick=quick, target=target, memory_limit=memory_limit, scenario=scenario,
                          batch_sizes=tuple(batch_size),
                          timing_overrides=common.timing_overrides(warmup, min_steps, max_steps, max_time, target_ci),
                          repeats=repeats if repeats is not None else COLD_START_REPEATS if scenario == "cold-start" else 1,
                          options=RunnerOptions(threads=common.threads(threads), precision=precision, tf32=tf32,
                                                channels_last=channels_last, timing=timing,
                                                cuda_graphs=cuda_graphs),
                          argv=sys.argv[1:]),
                DistOptions(workers, nnodes, node_rank, master_addr, master_port))
        runners = common.select_runners(list(config.frameworks), list(config.runners), config.scenario or "train")
        devices = list(config.resolved_devices)
        jobs = plan(specs, runners, devices, config)
        if len(jobs) > MAX_CELLS:
            raise UsageError(f"this run plans {len(jobs)} cells (workloads × runners × devices × repeats); "
                             f"the limit is {MAX_CELLS}: split it into several runs")
        if resume is not None:
            # Every recorded cell is finished (whatever its status); an interrupted cell was never recorded.
            done = {c["id"] for c in doc["cells"]}
            jobs = [j for j in jobs if j.cell_id not in done]
        else:
            doc = results.new_document(config.to_dict(), envmod.capture(config.options.threads))
            out = common.claim_output(held, out, results_dir / f"{doc['run_id']}.json", force, "run")
        assert out is not None
        if baseline is not None and same_file(baseline, out):
            raise UsageError(f"--out {out} is the --baseline file: the run would replace the measurements it is "
                             "compared with; write the run elsewhere")
        code = execute_with_progress(doc, jobs, out, config, strict, last=not probes)
        if probes and code not in EXIT_SIGNALS.values():
            from fwbench.cli.probing import run_probes_with_progress
            from fwbench.report.terminal import make_console

            try:
                code = max(code, run_probes_with_progress(
                    doc, [r.name for r in runners], [], [s.to_dict() for s in specs], devices, config, out,
                    min(config.timeout, 300.0), results_line=False))
            finally:  # the results file's name, once, last
                make_console(stderr=True).print(term_plain(f"Results: {out}"), highlight=False, markup=False)
        if base_doc is not None and code not in EXIT_SIGNALS.values():
            from fwbench.gate import gate_after_run

            code = gate_after_run(base_doc, doc, thr, (str(baseline), str(out)), code if strict else 0)
        raise typer.Exit(code)


def new_run(config: RunConfig, dist: "DistOptions") -> tuple[RunConfig, list[Any]]:
    """The workloads of a new run (``--quick``, then the timing flags, then data-parallel options applied) and
    its final configuration. Each workload's effective ``[timing]`` is what the results file stores for it."""
    import dataclasses

    from fwbench.distributed.config import make_distributed
    from fwbench.limits import max_workers

    specs = common.load_workloads(list(config.workloads))
    timing = config.timing_overrides
    if config.quick or timing.given:
        specs = [s.with_timing(**timing.apply(s.timing, config.quick)) for s in specs]
    if dist.workers is not None and dist.workers > max_workers():
        raise UsageError(f"--workers {dist.workers}: at most {max_workers()} data-parallel ranks per node here "
                         "(4 per core); set FWBENCH_MAX_WORKERS to allow more")
    specs, used = make_distributed(specs, dist)
    return dataclasses.replace(config, options=dataclasses.replace(config.options, distributed=used)), specs


def resumed_run(path: Path) -> tuple[dict[str, Any], RunConfig, list[Any]]:
    """The document, configuration and workloads of the run in ``path``, each re-validated."""
    from fwbench import results
    from fwbench.workload import check_unique_names

    doc = results.read(path)
    config = resumed_config(doc, path)
    specs = stored_workloads(doc, path)
    check_unique_names(specs)
    return doc, config, specs


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links and relative paths)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def resumed_config(doc: dict[str, Any], path: Path) -> RunConfig:
    """The run configuration stored in a results file, checked with the command line's rules."""
    try:
        config = RunConfig.from_dict(doc["config"])
    except ConfigError as exc:
        raise common.config_error_in(path, exc) from None
    except TypeError as exc:  # a required field missing
        raise common.config_error_in(path, ConfigError("config", str(exc))) from None
    if config.command != "run":
        raise common.config_error_in(path, ConfigError("command", f"written by `fwbench {config.command}`, "
                                                                  "not `fwbench run`"))
    return config


def stored_workloads(doc: dict[str, Any], path: Path) -> list[Any]:
    """The workload specs a results file was planned with, validated like workload files."""
    from fwbench.errors import ResultsError, WorkloadError
    from fwbench.workload_spec import WorkloadSpec

    stored = doc.get("workloads")
    if not isinstance(stored, dict) or not stored:
        raise ResultsError(str(path), "it holds no workload definitions; this run cannot be resumed")
    specs = []
    for name, spec in stored.items():
        try:
            specs.append(WorkloadSpec.from_dict(spec, where=f"{path}:workloads.{name}"))
        except WorkloadError as exc:
            raise ResultsError(str(path), f"{exc.message if exc.field else exc} (at workloads.{name}"
                                          f"{'.' + exc.field if exc.field else ''}); this run cannot be resumed") from None
        if specs[-1].name != name:
            raise ResultsError(str(path), f"workloads.{name} holds a workload named {specs[-1].name!r}; "
                                          "this run cannot be resumed")
    return specs


def noisy_share_setting() -> float:
    """``$FWBENCH_NOISY_SHARE``, checked before any work: a bad value exits 2 (workers read it again)."""
    import os

    from fwbench.interference import threshold_from

    try:
        return threshold_from(os.environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def execute_with_progress(doc: dict[str, Any], jobs: list, out: Path, config: RunConfig, strict: bool,
                          last: bool = True) -> int:
    """Run the cells with live progress, print the run's tables, and return the exit code.

    The results file's name is printed once, last: here when ``last`` or when a signal stopped the run, else
    by the caller (``run --probes`` prints it after the probes)."""
    from fwbench import results
    from fwbench.cli.console import print_run_tables
    from fwbench.cli.progress import run_with_progress
    from fwbench.pipeline import execute
    from fwbench.report.terminal import make_console

    console, err = make_console(), make_console(stderr=True)

    def describe(cell: dict[str, Any]) -> str | None:
        if not cell.get("distributed"):  # data-parallel cells: ranks, backend, global throughput, efficiency
            return None
        from fwbench.distributed.aggregate import summary_line

        return summary_line(cell)

    from fwbench.interference import warning

    interrupted = run_with_progress(len(jobs), "cell", lambda on_event: execute(doc, jobs, out, config, on_event),
                                    lambda: results.save_or_fallback(out, doc), err, describe, warning, jobs=jobs)
    print_run_tables(doc, console)
    if last or interrupted is not None:
        err.print(term_plain(f"Results: {out}"), highlight=False, markup=False)
    if interrupted is not None:
        err.print(term_plain(f"Interrupted: {len(doc['cells'])} finished cells are saved; "
                             f"`fwbench run --resume {shell_join([str(out)])}` runs the rest."),
                  highlight=False, markup=False)
        return interrupted
    if any(c["status"] != "ok" for c in doc["cells"]):
        return 1
    if strict and not doc.get("parity", {}).get("ok", True):
        return 1
    return 0
