"""``fwbench compare BASELINE CURRENT``: the CI regression gate (a thin adapter over :mod:`fwbench.gate`).

Exit codes: 0 no regression; 1 at least one cell is slower, or no cell of CURRENT could be judged while
BASELINE had cells that CURRENT lost (or, with ``--fail-on-missing``, any such cell); 2 usage or input
error (missing, malformed or other-version file, nothing in common); 3 inconclusive or incomparable cells
with ``--fail-on-inconclusive``. The markdown summary is appended to ``$GITHUB_STEP_SUMMARY`` whenever
that variable is set, whatever ``--format`` prints. Rendering lives in :mod:`fwbench.report.compare_render`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fwbench.cli import common

from fwbench.compare import DEFAULT_ALPHA, DEFAULT_ESTIMATOR, DEFAULT_THRESHOLD
from fwbench.gate import emit, gate, parse_threshold


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("compare")(guarded(compare_cmd))


def compare_cmd(
    baseline: Path = typer.Argument(..., metavar="BASELINE",
                                    help="Results file of the reference run (e.g. from the main branch)."),
    current: Optional[Path] = typer.Argument(None, metavar="CURRENT",
                                            help="Results file of the run under test. Omitted when BASELINE is "
                                                 "an `fwbench ab` file: its side B is judged against side A."),
    threshold: common.Threshold = f"{DEFAULT_THRESHOLD:.0%}",
    alpha: common.Alpha = DEFAULT_ALPHA,
    fmt: common.GateFormat = "table",
    fail_on_inconclusive: common.FailOnInconclusive = False,
    fail_on_missing: bool = typer.Option(False, "--fail-on-missing",
                                         help="Exit 1 when a baseline cell is absent or failed in CURRENT."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch",
                                        help="Compare cells even when CPU/GPU model, versions or settings differ."),
    estimator: common.Estimator = DEFAULT_ESTIMATOR,
    side: Optional[str] = typer.Option(None, "--side", metavar="A|B",
                                       help="With two files: the side of any `fwbench ab` file among them."),
) -> None:
    """Compare two results files cell by cell; exit 1 only on a statistically real slowdown."""
    from fwbench import results
    from fwbench.errors import UsageError

    common.check_gate_options(fmt, estimator)
    thr = parse_threshold(threshold)
    if current is None:
        doc = results.read(baseline)
        if not results.is_ab(doc):
            raise UsageError(f"give CURRENT too: {baseline} is a plain results file (only an `fwbench ab` file "
                             "is compared on its own, side B against side A)")
        if side is not None:
            raise UsageError("--side picks a side to compare with another file; with one A/B file, B is judged "
                             "against A")
        from fwbench.ab import compare_sides, describe_side

        sides = doc["ab"]["sides"]
        result = compare_sides(doc, thr, alpha, estimator)
        code = emit(result, (describe_side(sides["A"]), describe_side(sides["B"])), fmt, fail_on_inconclusive,
                    True, title="fwbench ab")  # as `fwbench ab`: a cell side B lost fails the gate
        raise typer.Exit(code)
    base_doc, cur_doc = results.read_side(baseline, side), results.read_side(current, side)
    code = gate(base_doc, cur_doc, thr, alpha, fmt, fail_on_inconclusive, fail_on_missing, allow_mismatch,
                names=(str(baseline), str(current)), estimator=estimator)
    raise typer.Exit(code)
