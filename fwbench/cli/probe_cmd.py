"""``fwbench probe``: capability probes (debugging, shape changes, export), each in a fresh worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("probe")(guarded(probe))


def probe(
    framework: list[str] = typer.Option([], "--framework", "-f", help="Family: torch, tensorflow, keras, or all (default)."),
    runner: list[str] = typer.Option([], "--runner", "-r", help="One runner exactly (repeatable)."),
    probe_name: list[str] = typer.Option([], "--probe", "-p", help="Probe name (repeatable; default: every probe)."),
    workload: str = typer.Option("cnn", "--workload", "-w", help="Workload whose network the probes use."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda or auto."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results file (default: results/probes-<run-id>.json)."),
    timeout: float = typer.Option(300.0, "--timeout", min=1.0, help="Seconds before a probe's worker is killed."),
    threads: int = typer.Option(0, "--threads", min=0, help="Intra-op threads per worker (0 = all cores)."),
) -> None:
    """Run capability probes and record their findings in a results file (render them with `fwbench report`)."""
    from fwbench import env as envmod
    from fwbench import results
    from fwbench.cli.run_cmd import check_writable, resolve_devices
    from fwbench.runners.registry import select
    from fwbench.workload import load_workload

    runners = [r.name for r in select(framework or ([] if runner else ["all"]), runner)]
    spec = load_workload(workload)
    dev = resolve_devices([device])[0]
    threads = threads or envmod.cpu_count()
    config = {"frameworks": framework, "runners": runner, "probes": probe_name, "workloads": [workload],
              "devices": [device], "resolved_devices": [dev], "timeout": timeout, "quick": False,
              "threads": threads, "options": {}, "argv": sys.argv[1:]}
    doc = results.new_document(config, envmod.capture(threads))
    out = out or Path("results") / f"probes-{doc['run_id']}.json"
    check_writable(out)
    code = run_probes_with_progress(doc, runners, probe_name, spec.to_dict(), dev, threads, out, timeout)
    raise typer.Exit(code)


def run_probes_with_progress(doc: dict[str, Any], runners: list[str], probe_names: list[str],
                             workload: dict[str, Any], device: str, threads: int, out: Path,
                             timeout: float = 300.0, memory_limit: int | None = None) -> int:
    """Run the probes of ``runners`` into ``doc`` (saved to ``out``), print one line each and a table.

    Returns 1 when a probe failed, crashed or timed out (0 when all ran or were skipped with a reason).
    """
    from rich.console import Console
    from rich.table import Table

    from fwbench.errors import UsageError
    from fwbench.probes.catalog import select as select_probes
    from fwbench.probes.run import run_probes
    from fwbench.report.corpus import Record
    from fwbench.report.seed import describe_probe

    pairs = select_probes(probe_names, runners)
    console, err = Console(), Console(stderr=True)
    if not pairs:
        if probe_names:
            raise UsageError(f"no probe {', '.join(probe_names)} applies to the selected runners "
                             f"({', '.join(runners) or 'none'})")
        err.print(f"No capability probe applies to {', '.join(runners) or 'these runners'}.", highlight=False)
        return 0

    def on_event(kind: str, i: int, n: int, rec: dict[str, Any]) -> None:
        if kind == "done":
            mark = "✓" if rec["status"] == "ok" else "-" if rec["status"] == "skipped" else "✗"
            err.print(f"{mark} probe {i + 1}/{n} {rec['id']}: {rec['status']}"
                      + (f" ({rec['reason']})" if rec.get("reason") else ""), highlight=False, markup=False)

    run_probes(doc, pairs, workload, device, threads, out, timeout=timeout, memory_limit=memory_limit,
               on_event=on_event)
    table = Table(title="Capability probes", title_justify="left")
    for col in ("probe", "runner", "status", "finding"):
        table.add_column(col, overflow="fold")
    for rec in doc["probes"]:
        r = Record(str(out), rec)
        text = describe_probe(r, "en")[0] if r.ok else (rec.get("reason") or "")
        table.add_row(rec["probe"], rec["runner"], rec["status"], text)
    console.print(table)
    err.print(f"Results: {out}", highlight=False)
    return 1 if any(p["status"] not in ("ok", "skipped") for p in doc["probes"]) else 0
