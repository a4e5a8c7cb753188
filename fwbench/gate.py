"""The CI regression gate: compare two results documents, print the verdict, append the step summary,
return the exit code. Shared by ``fwbench compare`` and ``fwbench run --baseline`` (no CLI objects here).

Exit codes: 0 no regression; 1 at least one cell is slower, or (with ``fail_on_missing``) absent or failed
in the current run, or no cell of the current run could be judged while the baseline had cells that the
current run lost (every current cell crashed); 2 usage or input error; 3 inconclusive or incomparable
cells with ``fail_on_inconclusive``. A closed output pipe (``compare … | head -1``) never changes the code.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from fwbench.compare import DEFAULT_ALPHA, DEFAULT_ESTIMATOR, DEFAULT_THRESHOLD, Comparison
from fwbench.errors import UsageError

FORMATS = ("table", "markdown", "json")


def parse_threshold(text: str) -> float:
    """``5%``, ``5 %``, ``0.05`` -> 0.05 (a fraction of the baseline)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*", text)
    if not m:
        raise UsageError(f"--threshold {text!r}: give a percentage such as 5% (or a fraction such as 0.05)")
    value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not m.group(2) and value >= 1:
        value /= 100.0  # "5" means 5%, nobody gates on a 500% slowdown
    if not 0 < value < 1:
        raise UsageError(f"--threshold {text!r}: must be above 0% and below 100%")
    return value


def exit_code(result: Comparison, fail_on_inconclusive: bool = False, fail_on_missing: bool = False) -> int:
    """:meth:`Comparison.exit_code`, and 1 when nothing in the current run could be judged although the
    baseline had cells it lost: a run whose every cell crashed never passes a gate silently."""
    from fwbench.report.compare_render import judged

    code = result.exit_code(fail_on_inconclusive, fail_on_missing)
    lost = any(c.verdict == "missing" and c.missing_in == "current" for c in result.cells)
    if code == 0 and lost and not judged(result):
        return 1
    return code


def gate(base_doc: dict[str, Any], cur_doc: dict[str, Any], threshold: float = DEFAULT_THRESHOLD,
         alpha: float = DEFAULT_ALPHA, fmt: str = "table", fail_on_inconclusive: bool = False,
         fail_on_missing: bool = False, allow_mismatch: bool = False,
         names: tuple[str, str] = ("baseline", "current"), estimator: str = DEFAULT_ESTIMATOR) -> int:
    """Compare, print in ``fmt`` on stdout, append markdown to ``$GITHUB_STEP_SUMMARY``; return the exit code."""
    from fwbench.compare import compare, group_cells

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if not set(group_cells(base_doc)) & set(group_cells(cur_doc)):
        raise UsageError(f"nothing to compare: no (workload, runner, device) cell of {names[1]} "
                         f"is in {names[0]}")
    result = compare(base_doc, cur_doc, threshold, alpha, allow_mismatch, estimator)
    return emit(result, names, fmt, fail_on_inconclusive, fail_on_missing)


def emit(result: Comparison, names: tuple[str, str], fmt: str = "table", fail_on_inconclusive: bool = False,
         fail_on_missing: bool = False, title: str = "fwbench compare") -> int:
    """Print a comparison in ``fmt`` on stdout and append its markdown to ``$GITHUB_STEP_SUMMARY``; return
    the exit code (shared by ``compare``, ``run --baseline`` and ``ab``)."""
    from fwbench.report import compare_render as render

    code = exit_code(result, fail_on_inconclusive, fail_on_missing)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:  # before printing: a reader that closes stdout early must not cost the summary
        try:
            with open(summary_file, "a", encoding="utf-8") as f:
                f.write(render.markdown(result, names, code, title) + "\n")
        except OSError as exc:  # the gate's verdict matters more than the summary: warn, do not fail
            print(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({summary_file}): {exc.strerror or exc}",
                  file=sys.stderr)
    try:
        if fmt == "json":
            print(render.to_json(result, names, code))
        elif fmt == "markdown":
            print(render.markdown(result, names, code, title))
        else:
            from rich.table import Table

            from fwbench.report.terminal import make_console, print_table

            console = make_console()
            for part in render.table(result, names, code):
                if isinstance(part, Table):
                    print_table(console, part)
                else:
                    console.print(part, highlight=False)
        sys.stdout.flush()
    except BrokenPipeError:
        from fwbench.report.terminal import quiet_stdout

        quiet_stdout()
    return code


# ---------------------------------------------------------------- `fwbench run --baseline FILE`

def prepare_baseline(path: Path | None, threshold: str) -> tuple[dict[str, Any] | None, float]:
    """Read the baseline and parse the threshold before a run starts, so a bad file costs nothing."""
    from fwbench import results

    if path is None:
        return None, DEFAULT_THRESHOLD
    doc = results.read(path)
    if results.is_ab(doc):
        raise UsageError(f"--baseline {path}: an `fwbench ab` file holds two environments; run without "
                         f"--baseline, then `fwbench compare {path} CURRENT --side A` (or B)")
    return doc, parse_threshold(threshold)


def gate_after_run(base_doc: dict[str, Any], doc: dict[str, Any], threshold: float, names: tuple[str, str],
                   strict_code: int = 0) -> int:
    """Compare a finished run with its baseline. A cell that failed in this run while the baseline has it
    counts as a regression (exit 1), as it would in the run alone; ``strict_code`` keeps ``--strict``'s
    parity failure. Everything else follows ``fwbench compare``."""
    code = gate(base_doc, doc, threshold, fmt="table", fail_on_missing=True, names=names)
    return code or strict_code
