"""Renderers of a :class:`~fwbench.compare.Comparison`: markdown, a rich table, JSON (pure: return text or
rich renderables; :mod:`fwbench.gate` prints them).

Workload, runner and device names, file names, details and notes are user data: markdown escapes them
with :func:`fwbench.textsafe.md_text` / :func:`~fwbench.textsafe.md_code`, the terminal table holds them as
:class:`rich.text.Text` (never parsed as markup, control characters replaced).
"""

from __future__ import annotations

import json
import math
from typing import Any

from fwbench import units
from fwbench.compare import CellVerdict, Comparison
from fwbench.textsafe import md_code, md_text

MARKS = {"slower": "✗", "faster": "✓", "no change": "✓", "inconclusive": "?", "missing": "–", "incomparable": "≠"}
COLUMNS = ("", "workload", "runner", "device", "baseline", "current", "change", "CI", "q", "verdict")
STYLES = {"slower": "red", "faster": "green", "no change": "", "inconclusive": "yellow"}
FOOTNOTE = ("baseline / current: typical step time (geometric mean of the process medians with 3+ processes, "
            "else the median step); change = current / baseline − 1 (positive = slower); q = Benjamini–Hochberg "
            "adjusted p-value. Slower needs q < alpha and a change beyond the threshold.")


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
    """Plain text per column of :data:`COLUMNS` (renderers escape it for their format)."""
    ci = f"{pct(c.ci_low)} … {pct(c.ci_high)}" if c.ci_low is not None else "-"
    return {"": MARKS[c.verdict], "workload": c.workload, "runner": c.runner, "device": c.device,
            "baseline": units.seconds(c.base_median_s), "current": units.seconds(c.current_median_s),
            "change": pct(c.ratio), "CI": ci, "q": qvalue(c.q), "verdict": verdict_text(c, threshold)}


def judged(result: Comparison) -> int:
    """How many cells could be judged (no change, faster or slower)."""
    return result.count("no change") + result.count("faster") + result.count("slower")


def headline(result: Comparison, code: int) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in result.counts.items() if n)
    if result.count("slower"):
        lead = f"✗ regression: {result.count('slower')} cell(s) slower"
    elif code and not judged(result):
        lead = "✗ gate failed: no cell of the current run could be judged"
    elif code:
        lead = "✗ gate failed"
    elif not judged(result):
        lead = "? no regression found, but no cell could be judged"
    else:
        lead = "✓ no regression"
    return f"{lead} ({counts}; exit {code})"


def settings(result: Comparison) -> str:
    return (f"threshold {result.threshold * 100:.3g}%, alpha {result.alpha:g} after Benjamini–Hochberg; "
            f"CI {100 * (1 - result.alpha):.3g}%")


def markdown(result: Comparison, names: tuple[str, str], code: int) -> str:
    """GitHub-flavoured markdown: a headline, the settings, a table, the notes. Every name, detail and
    note is escaped, so the text renders inert in a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    lines = [f"### fwbench compare: {md_text(headline(result, code))}", "",
             f"baseline {md_code(names[0])} → current {md_code(names[1])}; {md_text(settings(result))}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join(":-:" if not c else "---" for c in COLUMNS) + "|"]
    for c in result.cells:
        r = row(c, result.threshold)
        lines.append("| " + " | ".join(md_text(r[col], in_table=True) for col in COLUMNS) + " |")
    lines += ["", md_text(FOOTNOTE)]
    lines += [f"\n> note: {md_text(note)}" for note in result.notes]
    return "\n".join(lines)


def to_json(result: Comparison, names: tuple[str, str], code: int) -> str:
    doc: dict[str, Any] = result.to_dict()
    doc.update(baseline=names[0], current=names[1], exit_code=code)
    return json.dumps(doc, indent=1, ensure_ascii=False)


def table(result: Comparison, names: tuple[str, str], code: int) -> list[Any]:
    """Renderables for the terminal, in order: the table, its numbered details, the settings, the notes.

    Numbers and headers never wrap; the cell and verdict columns take what width is left."""
    from rich.table import Table

    from fwbench.report.terminal import text

    t = Table(title=text(headline(result, code)), title_justify="left")
    cols = ("", "cell", "baseline", "current", "change", f"{100 * (1 - result.alpha):.3g}% CI", "q", "verdict")
    for col in cols:
        wraps = col in ("cell", "verdict")
        t.add_column(col, overflow="fold", no_wrap=not wraps,
                     justify="left" if col in ("", "cell", "verdict") else "right")
    notes: list[str] = []
    for c in result.cells:
        r = row(c, result.threshold)
        verdict = c.verdict
        detail = verdict_text(c, result.threshold)[len(c.verdict):].lstrip(": ")
        if detail:
            notes.append(detail)
            verdict += f" [{len(notes)}]"
        t.add_row(*(text(v) for v in (r[""], f"{c.workload}/{c.runner}/{c.device}", r["baseline"], r["current"],
                                      r["change"], r["CI"], r["q"], verdict)),
                  style=STYLES.get(c.verdict, "dim"))
    out: list[Any] = [t]
    out += [text(f"[{i}] {note}") for i, note in enumerate(notes, 1)]
    out.append(text(f"baseline {names[0]} → current {names[1]}; {settings(result)}"))
    out += [text(f"note: {note}") for note in result.notes]
    return out

