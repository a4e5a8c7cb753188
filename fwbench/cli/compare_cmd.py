"""``fwbench compare BASELINE CURRENT``: the CI regression gate (a thin adapter over :mod:`fwbench.gate`).

Exit codes: 0 no regression; 1 at least one cell is slower, or no cell of CURRENT could be judged while
BASELINE had cells that CURRENT lost (or, with ``--fail-on-missing``, any such cell); 2 usage or input
error (missing, malformed or other-version file, nothing in common); 3 inconclusive or incomparable cells
with ``--fail-on-inconclusive``. The markdown summary is appended to ``$GITHUB_STEP_SUMMARY`` whenever
that variable is set, whatever ``--format`` prints. Rendering lives in :mod:`fwbench.report.compare_render`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fwbench.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from fwbench.gate import FORMATS, gate, parse_threshold


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("compare")(guarded(compare_cmd))


def compare_cmd(
    baseline: Path = typer.Argument(..., metavar="BASELINE",
                                    help="Results file of the reference run (e.g. from the main branch)."),
    current: Path = typer.Argument(..., metavar="CURRENT", help="Results file of the run under test."),
    threshold: str = typer.Option(f"{DEFAULT_THRESHOLD:.0%}", "--threshold", "-t", metavar="PCT",
                                  help="Smallest slowdown that counts as a regression, e.g. 5% or 0.05."),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", min=1e-6, max=0.5, metavar="P",
                                help="Significance level after Benjamini–Hochberg adjustment across cells "
                                     "(0.000001 to 0.5)."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table, markdown or json (to stdout)."),
    fail_on_inconclusive: bool = typer.Option(False, "--fail-on-inconclusive",
                                              help="Exit 3 when a cell is inconclusive or incomparable."),
    fail_on_missing: bool = typer.Option(False, "--fail-on-missing",
                                         help="Exit 1 when a baseline cell is absent or failed in CURRENT."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch",
                                        help="Compare cells even when CPU/GPU model, versions or settings differ."),
) -> None:
    """Compare two results files cell by cell; exit 1 only on a statistically real slowdown."""
    from fwbench import results
    from fwbench.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    thr = parse_threshold(threshold)
    base_doc, cur_doc = results.read(baseline), results.read(current)
    code = gate(base_doc, cur_doc, thr, alpha, fmt, fail_on_inconclusive, fail_on_missing, allow_mismatch,
                names=(str(baseline), str(current)))
    raise typer.Exit(code)
