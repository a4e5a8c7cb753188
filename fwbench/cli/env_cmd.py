"""``fwbench env``: the environment that results will record."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("env")(guarded(env))


def env(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show the environment (versions, CPU, GPU, threads, git commit) that results record."""
    from fwbench import env as envmod

    info = envmod.capture()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if key == "versions":
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        elif key == "gpus":
            value = "; ".join(f"{g['name']} (driver {g['driver']}, {g['memory']})" for g in value) or "none"
        table.add_row(key, str(value))
    Console().print(table)
