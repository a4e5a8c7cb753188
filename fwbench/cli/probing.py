"""The probe phase in front of a person, shared by ``fwbench probe`` and ``fwbench run --probes``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwbench.config import RunConfig


def run_probes_with_progress(doc: dict[str, Any], runners: list[str], probe_names: list[str],
                             workloads: list[dict[str, Any]], devices: list[str], config: RunConfig, out: Path,
                             timeout: float, results_line: bool = True) -> int:
    """Run the probes of ``runners`` on every workload and device into ``doc`` (saved to ``out``).

    Prints one line per probe, a table and (``results_line``) the results file's name; ``run --probes``
    prints that name itself, once, after its cells and probes. Returns 1 when a probe failed, crashed or timed out (0 when all
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
    if not jobs:
        token_probes = sorted({p.name for p, _ in pairs if p.tokens_only})
        raise UsageError(f"{', '.join(token_probes)} needs a workload whose input is token ids (one with a "
                         "vocabulary, e.g. -w transformer or -w lstm)")
    interrupted = run_with_progress(
        len(jobs), "probe",
        lambda on_event: run_probes(doc, jobs, out, timeout, config.memory_limit_bytes, on_event=on_event),
        lambda: results.save_or_fallback(out, doc), err, jobs=jobs)
    table = Table(title="Capability probes", title_justify="left")
    for col in ("probe", "runner", "workload", "device", "status", "finding"):
        table.add_column(col, overflow="fold")
    for rec in doc.get("probes", []):
        r = Record(str(out), rec)
        finding = describe_probe(r, "en")[0] if r.ok else (rec.get("reason") or "")
        table.add_row(*(text(x) for x in (rec["probe"], rec["runner"], rec["workload"], rec["device"],
                                          rec["status"], finding)))
    print_table(console, table)
    if results_line:
        err.print(term_plain(f"Results: {out}"), highlight=False, markup=False)
    if interrupted is not None:
        err.print(f"Interrupted: {len(doc.get('probes', []))} finished probes are saved.", highlight=False,
                  markup=False)
        return interrupted
    return 1 if any(p["status"] not in ("ok", "skipped") for p in doc["probes"]) else 0
