"""``fwbench compare BASELINE CURRENT``: the CI regression gate, and its table / markdown / JSON renderers.

Exit codes: 0 no regression; 1 at least one cell is slower (or, with ``--fail-on-missing``, absent or
failed in CURRENT); 2 usage or input error (missing, malformed or other-version file, nothing in common);
3 inconclusive or incomparable cells with ``--fail-on-inconclusive``. The markdown summary is appended to
``$GITHUB_STEP_SUMMARY`` whenever that variable is set, whatever ``--format`` prints.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import typer

from fwbench import units
from fwbench.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, CellVerdict, Comparison
from fwbench.errors import UsageError

FORMATS = ("table", "markdown", "json")
MARKS = {"slower": "✗", "faster": "✓", "no change": "✓", "inconclusive": "?", "missing": "–", "incomparable": "≠"}
COLUMNS = ("", "workload", "runner", "device", "baseline", "current", "change", "CI", "q", "verdict")


def register(app: typer.Typer) -> None:
    from fwbench.cli.app import guarded

    app.command("compare")(guarded(compare_cmd))


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


def compare_cmd(
    baseline: Path = typer.Argument(..., help="Results file of the reference run (e.g. from the main branch)."),
    current: Path = typer.Argument(..., help="Results file of the run under test."),
    threshold: str = typer.Option(f"{DEFAULT_THRESHOLD:.0%}", "--threshold", "-t",
                                  help="Smallest slowdown that counts as a regression, e.g. 5% or 0.05."),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", min=1e-6, max=0.5,
                                help="Significance level after Benjamini–Hochberg adjustment across cells."),
    fmt: str = typer.Option("table", "--format", help="table, markdown or json (to stdout)."),
    fail_on_inconclusive: bool = typer.Option(False, "--fail-on-inconclusive",
                                              help="Exit 3 when a cell is inconclusive or incomparable."),
    fail_on_missing: bool = typer.Option(False, "--fail-on-missing",
                                         help="Exit 1 when a baseline cell is absent or failed in CURRENT."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch",
                                        help="Compare cells even when CPU/GPU model, versions or settings differ."),
) -> None:
    """Compare two results files cell by cell; exit 1 only on a statistically real slowdown."""
    from fwbench import results

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    thr = parse_threshold(threshold)
    base_doc, cur_doc = results.read(baseline), results.read(current)
    code = gate(base_doc, cur_doc, thr, alpha, fmt, fail_on_inconclusive, fail_on_missing, allow_mismatch,
                names=(str(baseline), str(current)))
    raise typer.Exit(code)


def gate(base_doc: dict[str, Any], cur_doc: dict[str, Any], threshold: float = DEFAULT_THRESHOLD,
         alpha: float = DEFAULT_ALPHA, fmt: str = "table", fail_on_inconclusive: bool = False,
         fail_on_missing: bool = False, allow_mismatch: bool = False,
         names: tuple[str, str] = ("baseline", "current")) -> int:
    """Compare, print in ``fmt``, append markdown to ``$GITHUB_STEP_SUMMARY``; return the exit code.
    Shared by ``fwbench compare`` and ``fwbench run --baseline``."""
    from fwbench.compare import compare, group_cells

    if not set(group_cells(base_doc)) & set(group_cells(cur_doc)):
        raise UsageError(f"nothing to compare: no (workload, runner, device) cell of {names[1]} "
                         f"is in {names[0]}")
    result = compare(base_doc, cur_doc, threshold, alpha, allow_mismatch)
    code = result.exit_code(fail_on_inconclusive, fail_on_missing)
    if fmt == "json":
        doc = result.to_dict()
        doc.update(baseline=names[0], current=names[1], exit_code=code)
        print(json.dumps(doc, indent=1, ensure_ascii=False))
    elif fmt == "markdown":
        print(markdown(result, names, code))
    else:
        print_table(result, names, code)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as f:
                f.write(markdown(result, names, code) + "\n")
        except OSError as exc:  # the gate's verdict matters more than the summary: warn, do not fail
            print(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({summary_file}): {exc.strerror or exc}",
                  file=sys.stderr)
    return code


# ---------------------------------------------------------------- rendering (pure)

def pct(x: float | None, signed: bool = True) -> str:
    """``1.0834`` (a ratio) -> ``+8.3%``; one decimal, never float noise."""
    if x is None or not math.isfinite(x):
        return "-"
    v = (x - 1.0) * 100.0
    return f"{v:+.1f}%" if signed else f"{v:.1f}%"


def qvalue(q: float | None) -> str:
    if q is None or not math.isfinite(q):
        return "-"
    return "<0.0001" if q < 1e-4 else f"{q:.2g}" if q < 0.01 else f"{q:.2f}"


def verdict_text(c: CellVerdict, threshold: float) -> str:
    text = c.verdict
    details = []
    if c.verdict == "inconclusive" and c.mdc is not None:
        details.append(f"too noisy for the threshold: minimum detectable change {c.mdc * 100:.1f}% "
                       f"(threshold {threshold * 100:.3g}%)" if c.mdc > threshold else
                       "beyond the threshold but not significant")
    if c.detail:
        details.append(c.detail)
    return text + (": " + "; ".join(details) if details else "")


def row(c: CellVerdict, threshold: float) -> dict[str, str]:
    ci = f"{pct(c.ci_low)} … {pct(c.ci_high)}" if c.ci_low is not None else "-"
    return {"": MARKS[c.verdict], "workload": c.workload, "runner": c.runner, "device": c.device,
            "baseline": units.seconds(c.base_median_s), "current": units.seconds(c.current_median_s),
            "change": pct(c.ratio), "CI": ci, "q": qvalue(c.q), "verdict": verdict_text(c, threshold)}


def headline(result: Comparison, code: int) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in result.counts.items() if n)
    if result.count("slower"):
        lead = f"✗ regression: {result.count('slower')} cell(s) slower"
    elif code:
        lead = "✗ gate failed"
    elif not (result.count("no change") or result.count("faster")):
        lead = "? no regression found, but no cell could be judged"
    else:
        lead = "✓ no regression"
    return f"{lead} ({counts}; exit {code})"


def settings_line(result: Comparison, names: tuple[str, str]) -> str:
    return (f"baseline `{names[0]}` → current `{names[1]}`; threshold {result.threshold * 100:.3g}%, "
            f"alpha {result.alpha:g} after Benjamini–Hochberg; CI {100 * (1 - result.alpha):.3g}%")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(result: Comparison, names: tuple[str, str], code: int) -> str:
    """GitHub-flavoured markdown: a headline, the settings, a table, the notes."""
    lines = [f"### fwbench compare: {headline(result, code)}", "", settings_line(result, names), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join(":-:" if not c else "---" for c in COLUMNS) + "|"]
    for c in result.cells:
        r = row(c, result.threshold)
        lines.append("| " + " | ".join(_md_escape(r[col]) for col in COLUMNS) + " |")
    lines.append("")
    lines.append("baseline / current: typical step time (geometric mean of the process medians with 3+ processes, "
                 "else the median step); change = current / baseline − 1 (positive = slower); q = Benjamini–Hochberg "
                 "adjusted p-value. Slower needs q < alpha and a change beyond the threshold.")
    for note in result.notes:
        lines.append(f"\n> note: {note}")
    return "\n".join(lines)


def print_table(result: Comparison, names: tuple[str, str], code: int) -> None:
    """A compact terminal table (fits 80 columns); each cell's detail follows as a numbered note."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=headline(result, code), title_justify="left")
    cols = ("", "cell", "baseline", "current", "change", f"{100 * (1 - result.alpha):.3g}% CI", "q", "verdict")
    for col in cols:
        table.add_column(col, overflow="fold", justify="left" if col in ("", "cell", "verdict") else "right")
    styles = {"slower": "red", "faster": "green", "no change": "", "inconclusive": "yellow"}
    notes = []
    for c in result.cells:
        r = row(c, result.threshold)
        verdict = c.verdict
        detail = verdict_text(c, result.threshold)[len(c.verdict):].lstrip(": ")
        if detail:
            notes.append(detail)
            verdict += f" [{len(notes)}]"
        table.add_row(r[""], f"{c.workload}/{c.runner}/{c.device}", r["baseline"], r["current"], r["change"],
                      r["CI"], r["q"], verdict, style=styles.get(c.verdict, "dim"))
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(f"[{i}] {note}", highlight=False, markup=False)
    console.print(settings_line(result, names).replace("`", ""), highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


# ---------------------------------------------------------------- `fwbench run --baseline FILE`

def prepare_baseline(path: Path | None, threshold: str) -> tuple[dict[str, Any] | None, float]:
    """Read the baseline and parse the threshold before a run starts, so a bad file costs nothing."""
    from fwbench import results

    if path is None:
        return None, DEFAULT_THRESHOLD
    return results.read(path), parse_threshold(threshold)


def gate_after_run(base_doc: dict[str, Any], doc: dict[str, Any], threshold: float, names: tuple[str, str],
                   strict_code: int = 0) -> int:
    """Compare a finished run with its baseline. A cell that failed in this run while the baseline has it
    counts as a regression (exit 1), as it would in the run alone; ``strict_code`` keeps ``--strict``'s
    parity failure. Everything else follows ``fwbench compare``."""
    code = gate(base_doc, doc, threshold, fmt="table", fail_on_missing=True, names=names)
    return code or strict_code
