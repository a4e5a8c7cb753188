"""``fwbench probe``: capability probes (debugging, shape changes, export), each in a fresh worker."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from fwbench.cli import common
from fwbench.config import RunConfig, RunnerOptions


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("probe")(guarded(probe))


def probe(
    framework: common.Framework = [],
    runner: common.Runner = [],
    probe_name: list[str] = typer.Option([], "--probe", "-p", metavar="PROBE",
                                         help="Probe name (repeatable) [default: every probe that applies]."),
    workload: common.Workload = [],
    device: common.Device = ["cpu"],
    out: common.Out = None,
    force: common.Force = False,
    timeout: float = common.timeout_option(300.0, "probe"),
    threads: common.Threads = 0,
    memory_limit: common.MemoryLimit = None,
) -> None:
    """Run capability probes and record their findings in a results file (render them with `fwbench report`)."""
    from fwbench import env as envmod
    from fwbench import results
    from fwbench.cli.probing import run_probes_with_progress
    from fwbench.errors import UsageError
    from fwbench.probes.catalog import select as select_probes

    runners = [r.name for r in common.select_runners(framework, runner)]
    if not select_probes(probe_name, runners):
        from fwbench.probes.catalog import PROBES

        named = f"no probe {', '.join(probe_name)}" if probe_name else "no capability probe"
        having = sorted({r for p in PROBES.values() for r in p.runners})
        raise UsageError(f"{named} applies to the selected runners ({', '.join(runners)}); "
                         f"probes exist for: {', '.join(having)}")
    specs = common.load_workloads(workload)
    config = RunConfig(command="probe", frameworks=framework, runners=runner, workloads=workload or ["cnn"],
                       devices=device, resolved_devices=common.resolve_devices(device), timeout=timeout,
                       target=False, memory_limit=memory_limit, probes=probe_name,
                       options=RunnerOptions(threads=common.threads(threads)), argv=sys.argv[1:])
    doc = results.new_document(config.to_dict(), envmod.capture(config.options.threads))
    with contextlib.ExitStack() as held:  # the results file's lock, held until the command ends
        out = common.claim_output(held, out, Path("results") / f"probes-{doc['run_id']}.json", force, "probe")
        code = run_probes_with_progress(doc, runners, probe_name, [s.to_dict() for s in specs],
                                        list(config.resolved_devices), config, out, timeout)
    raise typer.Exit(code)
