"""``fwbench list``: workloads, runners (installed? version) and devices found."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("list")(guarded(list_all))


def list_all() -> None:
    """List workloads, runners (installed or not, with versions) and the devices this machine has."""
    from rich.console import Console
    from rich.table import Table

    from fwbench import env as envmod
    from fwbench.errors import WorkloadError
    from fwbench.runners.registry import RUNNERS
    from fwbench.workload import available_workloads, load_file, plugin_workloads

    console = Console()
    wt = Table(title="Workloads")
    for col in ("name", "mode", "batch", "data", "description / problem"):
        wt.add_column(col)
    for name, path in available_workloads().items():
        try:
            spec = load_file(path)
            wt.add_row(name, spec.mode, str(spec.batch_size), spec.data, spec.description)
        except WorkloadError as exc:
            wt.add_row(name, "-", "-", "-", f"[red]invalid:[/] {exc}")
    for name in plugin_workloads():
        wt.add_row(name, "?", "?", "plugin", "(Python plugin, entry point fwbench.workloads)")
    console.print(wt)

    rt = Table(title="Runners")
    for col in ("runner", "family", "mode", "installed", "versions", "devices"):
        rt.add_column(col)
    for info in RUNNERS.values():
        missing = info.missing()
        versions = ", ".join(f"{k} {v}" for k, v in info.versions().items()) or "-"
        installed = "yes" if not missing else f"no ({', '.join(missing)} missing)"
        rt.add_row(info.name + (" (test double)" if info.hidden else ""), info.family, info.mode, installed,
                   versions, ", ".join(info.devices))
    console.print(rt)

    found = envmod.devices()
    gpus = envmod.gpus()
    dt = Table(title="Devices")
    dt.add_column("device")
    dt.add_column("found")
    dt.add_row("cpu", f"yes: {envmod.cpu_model()}, {envmod.cpu_count()} cores")
    dt.add_row("cuda", "yes: " + "; ".join(g["name"] for g in gpus) if gpus else "no (nvidia-smi found no GPU)")
    dt.add_row("tpu", "yes" if found["tpu"] else "no")
    console.print(dt)
