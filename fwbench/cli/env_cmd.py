"""``fwbench env``: the environment that results will record."""

from __future__ import annotations

import json

import typer

FORMATS = ("table", "json")


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("env")(guarded(env))


def env(
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table or json (to stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Show the environment (versions, CPU, GPU, threads, git commit) that results record, and what on this
    machine hurts measurements (load, governor, turbo, CPU affinity, SMT siblings, isolated CPUs)."""
    from fwbench import env as envmod
    from fwbench.machine_state import findings
    from fwbench.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    info = envmod.capture()
    state = findings()
    if as_json or fmt == "json":
        print(json.dumps({**info, "machine_state": [f.to_dict() for f in state]}, indent=2))
        return
    from rich.table import Table

    from fwbench.report.terminal import make_console, text

    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if key == "versions":
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        elif key == "gpus":
            value = "; ".join(f"{g['name']} (driver {g['driver']}, {g['memory']})" for g in value) or "none"
        table.add_row(text(key), text(value))
    console = make_console()
    console.print(table)
    console.print(text("What may hurt measurements here:"))
    checks = Table(show_header=False, box=None)
    for f in state:
        checks.add_row(text(f.name), text(f.verdict), text(f"{f.value} — {f.advice}"))
    console.print(checks)
