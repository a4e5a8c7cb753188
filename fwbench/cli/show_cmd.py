"""``fwbench show RESULTS``: a saved run's terminal tables and summary, as ``fwbench run`` printed them at its end.

An ``fwbench ab`` results file holds two runs: ``--side A`` or ``--side B`` shows one; without ``--side``
both are shown, A then B, each under a heading (the sides' cells are never mixed in one table).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("show")(guarded(show))


def show(
    results_file: Path = typer.Argument(..., metavar="RESULTS", help="Results file of fwbench run (or ab)."),
    side: Optional[str] = typer.Option(None, "--side", metavar="A|B",
                                       help="Of an `fwbench ab` results file: the side to show (default: both)."),
) -> None:
    """Show a saved run's results tables and summary in the terminal."""
    from fwbench import results
    from fwbench.cli.console import make_console, print_run_tables, text

    doc = results.read(results_file)
    if side is not None or not results.is_ab(doc):
        sides: list[tuple[str, dict[str, Any]]] = [("", results.read_side(results_file, side))]
    else:
        sides = [(f"side {s}: {doc['ab']['sides'][s].get('label', '')}".rstrip(": "), results.side_view(doc, s))
                 for s in results.SIDE_CHOICES if s in doc["ab"].get("sides", {})]
    console = make_console()
    for name, view in sides:
        console.print(text(heading(results_file, view, name), style="bold"), highlight=False)
        print_run_tables(view, console)
        console.print()


def heading(path: Path, doc: dict[str, Any], side: str = "") -> str:
    """``run.json (side A): run 2026…, 2026-11-28T13:30:57Z — fwbench run -r torch …``"""
    argv = (doc.get("config") or {}).get("argv")
    command = f" — fwbench {shlex.join(str(a) for a in argv)}" if isinstance(argv, list) and argv else ""
    return f"{path}{f' ({side})' if side else ''}: run {doc.get('run_id', '?')}, {doc.get('created', '?')}{command}"
