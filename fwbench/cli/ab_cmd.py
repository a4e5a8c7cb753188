"""``fwbench ab``: an interleaved A/B of two environments in one job, judged by a paired analysis.

Exit codes are those of ``fwbench compare --fail-on-missing`` (0 no regression of B against A; 1 a cell of
B is slower, or a cell failed in every round of side B; 2 usage or input error; 3 with
``--fail-on-inconclusive``), as for ``fwbench run --baseline``: a side that breaks a cell fails the job; the markdown summary is appended to ``$GITHUB_STEP_SUMMARY`` whenever it is
set. See :mod:`fwbench.ab_run` (schedule, interpreters) and :mod:`fwbench.ab` (statistics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import typer

from fwbench.cli import common
from fwbench.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD

MAX_ROUNDS = 100


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded
    from fwbench.cli.run_cmd import interruptible

    app.command("ab")(guarded(interruptible(ab)))


def ab(
    framework: common.Framework = [],
    runner: common.Runner = [],
    workload: common.Workload = [],
    device: common.Device = ["cpu"],
    a_python: Optional[str] = typer.Option(None, "--a-python", metavar="PATH",
                                           help="Interpreter of side A, e.g. a venv's bin/python [default: this one]."),
    b_python: Optional[str] = typer.Option(None, "--b-python", metavar="PATH",
                                           help="Interpreter of side B [default: this one]."),
    a_env: list[str] = typer.Option([], "--a-env", metavar="KEY=VALUE", help="Variable set on side A (repeatable)."),
    b_env: list[str] = typer.Option([], "--b-env", metavar="KEY=VALUE", help="Variable set on side B (repeatable)."),
    rounds: int = typer.Option(5, "--rounds", min=3, max=MAX_ROUNDS, metavar="R",
                               help="Rounds; each runs every cell on A and on B in fresh processes."),
    estimator: common.Estimator = "median",
    threshold: common.Threshold = f"{DEFAULT_THRESHOLD:.0%}",
    alpha: common.Alpha = DEFAULT_ALPHA,
    fmt: common.GateFormat = "table",
    fail_on_inconclusive: common.FailOnInconclusive = False,
    out: common.Out = None,
    force: common.Force = False,
    results_dir: common.ResultsDir = Path("results"),
    timeout: float = common.timeout_option(600.0, "cell"),
    quick: common.Quick = False,
    threads: common.Threads = 0,
    memory_limit: common.MemoryLimit = None,
) -> None:
    """Measure two environments in one job, interleaved (A B, B A, ...), and judge B against A."""
    from fwbench import ab as abmod
    from fwbench import ab_run, results
    from fwbench import env as envmod
    from fwbench.cli.run_cmd import new_run, noisy_share_setting
    from fwbench.config import MAX_CELLS, RunConfig, RunnerOptions
    from fwbench.distributed.config import DistOptions
    from fwbench.errors import UsageError
    from fwbench.gate import emit, parse_threshold
    from fwbench.pipeline import plan
    from fwbench.textsafe import term_plain

    common.check_gate_options(fmt, estimator)
    thr = parse_threshold(threshold)
    noisy_share_setting()
    sides = {"A": ab_run.Side("A", ab_run.resolve_python(a_python, "--a-python"), ab_run.parse_env(a_env, "--a-env")),
             "B": ab_run.Side("B", ab_run.resolve_python(b_python, "--b-python"), ab_run.parse_env(b_env, "--b-env"))}
    config, specs = new_run(
        RunConfig(command="ab", frameworks=framework, runners=runner, workloads=workload or ["cnn"], devices=device,
                  resolved_devices=common.resolve_devices(device), timeout=timeout, quick=quick, repeats=rounds,
                  target=False, memory_limit=memory_limit,
                  options=RunnerOptions(threads=common.threads(threads)), argv=sys.argv[1:]),
        DistOptions())
    if any(s.distributed for s in specs):
        raise UsageError("fwbench ab does not run data-parallel workloads; compare those with two `fwbench run`s")
    chosen = common.select_runners(list(config.frameworks), list(config.runners))
    jobs = plan(specs, chosen, list(config.resolved_devices), dataclasses.replace(config, repeats=1))
    schedule = ab_run.schedule(jobs, rounds)
    if len(schedule) > MAX_CELLS:
        raise UsageError(f"this A/B plans {len(schedule)} worker processes (cells × 2 sides × rounds); the limit "
                         f"is {MAX_CELLS}: split it")
    def err(line: str) -> None:
        print(term_plain(line), file=sys.stderr, flush=True)

    with contextlib.ExitStack() as held, tempfile.TemporaryDirectory(prefix="fwbench-ab-path-") as tmp:
        shim = ab_run.make_shim(Path(tmp))
        records = {}
        for label, side in sides.items():
            err(f"checking side {label}: {side.python}")
            records[label] = ab_run.preflight(side, [r.name for r in chosen], config.options.threads, shim)
        doc = results.new_document(config.to_dict(), envmod.capture(config.options.threads))
        doc["ab"] = {"rounds": rounds, "order": "A B, then B A, alternating by round", "sides": records}
        path = common.claim_output(held, out, results_dir / f"{doc['run_id']}.json", force, "ab")
        for label in sides:
            err(f"side {label}: {abmod.describe_side(records[label])}")
        interrupted = _execute(doc, schedule, sides, shim, path, config)
        err(f"Results: {path}")
        if interrupted is not None:
            err(f"Interrupted: {len(doc['cells'])} finished cells are saved in {path}; an A/B job cannot be "
                "resumed (its rounds must interleave): run it again")
            raise typer.Exit(interrupted)
        result = abmod.compare_sides(doc, thr, alpha, estimator)
        code = emit(result, (abmod.describe_side(records["A"]), abmod.describe_side(records["B"])), fmt,
                    fail_on_inconclusive, fail_on_missing=True, title="fwbench ab")
        raise typer.Exit(code)


def _execute(doc: dict[str, Any], schedule: list[Any], sides: dict[str, Any], shim: Path, path: Path,
             config: Any) -> int | None:
    """Run the schedule with a progress bar; the exit code of a signal that stopped it, or ``None``."""
    from fwbench import ab_run, results
    from fwbench.cli.progress import run_with_progress
    from fwbench.interference import warning
    from fwbench.report.terminal import make_console

    err = make_console(stderr=True)
    return run_with_progress(len(schedule), "process",
                             lambda on_event: ab_run.execute(doc, schedule, sides, shim, path, config, on_event),
                             lambda: results.save_or_fallback(path, doc), err, warn=warning,
                             jobs=[job for _, _, job in schedule])
