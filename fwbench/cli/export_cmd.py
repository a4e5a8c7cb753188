"""``fwbench export RESULTS``: results in github-action-benchmark's ``customSmallerIsBetter`` JSON, or CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from fwbench.errors import UsageError


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("export")(guarded(export))


def export(
    results_file: Path = typer.Argument(..., metavar="RESULTS", help="Results file to export."),
    fmt: str = typer.Option("github-action-benchmark", "--format", metavar="FORMAT",
                            help="github-action-benchmark (customSmallerIsBetter JSON) or csv."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="Write here instead of stdout."),
    side: Optional[str] = typer.Option(None, "--side", metavar="A|B", help="Of an `fwbench ab` results file: "
                                                                          "the side to export."),
) -> None:
    """Export median step times (ms, with 95% CI) per workload/runner/device cell."""
    from fwbench import export as exporter
    from fwbench import results

    if fmt not in exporter.FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(exporter.FORMATS)}")
    text = exporter.render(results.read_side(results_file, side), fmt)
    if out is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left (`| head`): not an error of the export
            from fwbench.report.terminal import quiet_stdout

            quiet_stdout()
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
