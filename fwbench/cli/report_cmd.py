"""``fwbench report``: render results as markdown (with plots), a self-contained HTML page, CSV or JSON, in English or Chinese, into a folder.

``--out-dir DIR`` names the folder (``--out``/``-o``, a folder here but a file everywhere else, is kept as a
deprecated alias and says so on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("report")(guarded(report))


def report(
    results_files: list[Path] = typer.Argument(..., metavar="RESULTS", help="Results files of fwbench run/probe."),
    fmt: str = typer.Option("markdown", "--format", metavar="FORMAT",
                            help="markdown (with PNG plots), html (one self-contained page: "
                                 "plots embedded, sortable tables), csv or json."),
    lang: str = typer.Option("en", "--lang", metavar="LANG",
                             help="en, or zh for the source document's own Chinese labels."),
    out_dir: Path = typer.Option(Path("report"), "--out-dir", metavar="DIR", help="Folder to write the report into."),
    out_legacy: Optional[Path] = typer.Option(None, "--out", "-o", hidden=True,
                                              help="Deprecated alias of --out-dir."),
    reference: Optional[str] = typer.Option(None, "--reference", metavar="RUNNER",
                                            help="Runner that speedups are measured against "
                                                 "(default: torch where it ran, else the first runner)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw PNG plots (markdown and html only)."),
) -> None:
    """Render results as performance tables, plots and the source document's tables with measured evidence."""
    from fwbench.report.write import write_report
    from fwbench.textsafe import term_plain

    def warn(line: str) -> None:
        print(f"warning: {term_plain(line)}", file=sys.stderr)

    for path in write_report(results_files, out_legacy or out_dir, fmt=fmt, lang=lang, reference=reference,
                             plots=plots, warn=warn):
        print(term_plain(path))
    if out_legacy is not None:  # after the work: an error stays the one line it always was
        warn("--out/-o of `fwbench report` is deprecated (it names a folder here, a file elsewhere): "
             "use --out-dir")
