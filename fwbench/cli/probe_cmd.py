"""``fwbench probe``: capability probes (debugging, shape changes, export), each in a fresh worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from fwbench.cli import common
from fwbench.config import RunConfig, RunnerOptions


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

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

    runners = [r.name for r in common.select_runners(framework, runner)]
    specs = common.load_workloads(workload)
    config = RunConfig(command="probe", frameworks=framework, runners=runner, workloads=workload or ["cnn"],
                       devices=device, resolved_devices=common.resolve_devices(device), timeout=timeout,
                       target=False, memory_limit=memory_limit, probes=probe_name,
                       options=RunnerOptions(threads=common.threads(threads)), argv=sys.argv[1:])
    doc = results.new_document(config.to_dict(), envmod.capture(config.options.threads))
    out = common.output_file(out, Path("results") / f"probes-{doc['run_id']}.json", force)
    with results.lock(out):
        code = run_probes_with_progress(doc, runners, probe_name, [s.to_dict() for s in specs],
                                        list(config.resolved_devices), config, out, timeout)
    raise typer.Exit(code)


def run_probes_with_progress(doc: dict[str, Any], runners: list[str], probe_names: list[str],
                             workloads: list[dict[str, Any]], devices: list[str], config: RunConfig, out: Path,
                             timeout: float) -> int:
    """Run the probes of ``runners`` on every workload and device into ``doc`` (saved to ``out``).

    Prints one line per probe and a table. Returns 1 when a probe failed, crashed or timed out (0 when all
    ran or were skipped with a reason), or the exit code of a signal that stopped it.
    """
    from rich.table import Table

    from fwbench import results
    from fwbench.cli.progress import run_with_progress
    from fwbench.errors import UsageError
    from fwbench.probes.catalog import select as select_probes
    from fwbench.probes.run import plan_probes, run_probes
    from fwbench.report.corpus import Record
    from fwbench.report.seed import describe_probe
    from fwbench.report.terminal import make_console, print_table, text
    from fwbench.textsafe import term_plain

    pairs = select_probes(probe_names, runners)
    console, err = make_console(), make_console(stderr=True)
    if not pairs:
        if probe_names:
            raise UsageError(f"no probe {', '.join(probe_names)} applies to the selected runners "
                             f"({', '.join(runners) or 'none'})")
        err.print(term_plain(f"No capability probe applies to {', '.join(runners) or 'these runners'}."),
                  highlight=False, markup=False)
        return 0
    jobs = plan_probes(pairs, workloads, devices, config.options)
    interrupted = run_with_progress(
        len(jobs), "probe",
        lambda on_event: run_probes(doc, jobs, out, timeout, config.memory_limit_bytes, on_event=on_event),
        lambda: results.save_or_fallback(out, doc), err)
    table = Table(title="Capability probes", title_justify="left")
    for col in ("probe", "runner", "workload", "device", "status", "finding"):
        table.add_column(col, overflow="fold")
    for rec in doc.get("probes", []):
        r = Record(str(out), rec)
        finding = describe_probe(r, "en")[0] if r.ok else (rec.get("reason") or "")
        table.add_row(*(text(x) for x in (rec["probe"], rec["runner"], rec["workload"], rec["device"],
                                          rec["status"], finding)))
    print_table(console, table)
    err.print(term_plain(f"Results: {out}"), highlight=False, markup=False)
    if interrupted is not None:
        err.print(f"Interrupted: {len(doc.get('probes', []))} finished probes are saved.", highlight=False,
                  markup=False)
        return interrupted
    return 1 if any(p["status"] not in ("ok", "skipped") for p in doc["probes"]) else 0
