"""``fwbench list``: workloads, runners (installed? version) and devices found."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("list")(guarded(list_all))


def list_all() -> None:
    """List workloads, runners (installed or not, with versions) and the devices this machine has."""
    from rich.markup import escape
    from rich.table import Table

    from fwbench import env as envmod
    from fwbench.config import available_cores
    from fwbench.runners.registry import RUNNERS
    from fwbench.workload import discover, shown_path

    from fwbench.report.terminal import make_console, print_table

    console = make_console()
    wt = Table(title="Workloads")
    for col in ("name", "from", "mode", "batch", "params", "data", "description / problem"):
        wt.add_column(col)
    for row in workload_rows(discover()):
        *cells, text, bad = row
        # user text, made inert: one printable line (control characters escaped), no rich markup
        wt.add_row(*(escape(shown_path(c)) for c in cells),
                   ("[red]invalid:[/] " if bad else "") + escape(shown_path(text)))
    print_table(console, wt)

    rt = Table(title="Runners")
    for col in ("runner", "family", "mode", "installed", "versions", "devices"):
        rt.add_column(col)
    for info in RUNNERS.values():
        missing = info.missing()
        versions = ", ".join(f"{k} {v}" for k, v in info.versions().items()) or "-"
        installed = "yes" if not missing else f"no ({', '.join(missing)} missing)"
        rt.add_row(info.name + (" (test double)" if info.hidden else ""), info.family, info.mode, installed,
                   versions, ", ".join(info.devices))
    print_table(console, rt)

    found = envmod.devices()
    gpus = envmod.gpus()
    dt = Table(title="Devices")
    dt.add_column("device")
    dt.add_column("found")
    dt.add_row("cpu", f"yes: {envmod.cpu_model()}, {available_cores()} cores")
    dt.add_row("cuda", "yes: " + "; ".join(g["name"] for g in gpus) if gpus else "no (nvidia-smi found no GPU)")
    dt.add_row("tpu", "yes" if found["tpu"] else "no")
    print_table(console, dt)


def workload_rows(found: dict[str, Any]) -> list[tuple[str, str, str, str, str, str, str, bool]]:
    """One row per workload name: name, where from (and what it shadows), mode, batch, trainable parameters,
    data, description or
    the reason it cannot be used, and whether it is invalid. Files are read safely (a FIFO or a device is a
    row, not a hang); plugins are not imported here."""
    from fwbench.errors import WorkloadError
    from fwbench.workload import PLUGIN, load_file
    from fwbench.workload_spec import parameter_count

    rows = []
    for name, f in sorted(found.items()):
        where = f.where + (f" ({f.shadow_note()})" if f.shadows else "")
        if f.origin == PLUGIN:
            rows.append((name, where, "?", "?", "?", "plugin", "(Python plugin, entry point fwbench.workloads)", False))
            continue
        try:
            spec = load_file(f.path, expect_name=name)
        except WorkloadError as exc:
            rows.append((name, where, "-", "-", "-", "-", f"{exc.field + ': ' if exc.field else ''}{exc.message}", True))
            continue
        rows.append((name, where, spec.mode, str(spec.batch_size), f"{parameter_count(spec):,}", spec.data,
                     spec.description, False))
    return rows
