"""``fwbench report``: render results files as markdown (with plots), CSV or JSON, in English or Chinese."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("report")(guarded(report))


def report(
    results_files: list[Path] = typer.Argument(..., metavar="RESULTS...", help="Results files of fwbench run/probe."),
    fmt: str = typer.Option("markdown", "--format", help="markdown (with PNG plots), csv or json."),
    lang: str = typer.Option("en", "--lang", help="en, or zh for the source document's own Chinese labels."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder to write the report into."),
    reference: str = typer.Option("torch", "--reference", help="Runner that speedups are measured against."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw PNG plots (markdown only)."),
) -> None:
    """Render results as performance tables, plots and the source document's tables with measured evidence."""
    from fwbench.report.write import write_report

    for path in write_report(results_files, out, fmt=fmt, lang=lang, reference=reference, plots=plots):
        print(path)
