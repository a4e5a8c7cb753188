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
ESTIMATOR_WORDS = {"median": "medians", "p10": "10th percentiles", "min": "minima"}


def footnote(result: Comparison) -> str:
    """What the columns mean, for this comparison's method and estimator."""
    words = ESTIMATOR_WORDS.get(result.estimator, result.estimator)
    if result.paired:
        return (f"A / B: typical step time of each side (geometric mean over the clean rounds of each process's "
                f"step-time {words[:-1] if words.endswith('s') else words}); change = B / A − 1 (positive = B is "
                "slower), from a paired t-test over rounds; q = Benjamini–Hochberg adjusted p-value. Slower needs "
                "q < alpha and a change beyond the threshold.")
    single = {"median": "the median step", "p10": "the 10th percentile of the steps", "min": "the fastest step"}
    return (f"baseline / current: typical step time (geometric mean of the process {words} with 3+ processes, "
            f"else {single.get(result.estimator, result.estimator)}); change = current / baseline − 1 (positive = "
            "slower); q = Benjamini–Hochberg adjusted p-value. Slower needs q < alpha and a change beyond the "
            "threshold.")


VARIANCE_COLUMNS = ("workload", "runner", "device", "rounds", "step jitter", "within process",
                    "between processes", "between rounds")
VARIANCE_NOTE = ("Noise, as relative standard deviations: step jitter = spread of step times inside a process; "
                 "within process = what that jitter leaves in one process's estimate; between processes = "
                 "difference of two processes of the same round beyond that; between rounds = drift shared by "
                 "both sides of a round, which pairing cancels.")


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
    lost = [c for c in result.cells if c.verdict == "missing" and c.missing_in in ("current", "both")]
    if result.count("slower"):
        lead = f"✗ regression: {result.count('slower')} cell(s) slower"
    elif code == 1 and lost and result.paired:
        lead = f"✗ gate failed: side B lost {len(lost)} cell(s) (failed in every round)"
    elif code and not judged(result):
        lead = f"✗ gate failed: no cell of {'side B' if result.paired else 'the current run'} could be judged"
    elif code:
        lead = "✗ gate failed"
    elif not judged(result):
        lead = "? no regression found, but no cell could be judged"
    else:
        lead = "✓ no regression"
    return f"{lead} ({counts}; exit {code})"


def settings(result: Comparison) -> str:
    return (f"threshold {result.threshold * 100:.3g}%, alpha {result.alpha:g} after Benjamini–Hochberg; "
            f"CI {100 * (1 - result.alpha):.3g}%; estimator {result.estimator}")


def sd(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.1f}%"


def variance_rows(result: Comparison) -> list[dict[str, str]]:
    """Plain text per column of :data:`VARIANCE_COLUMNS`, one row per cell with a decomposition."""
    return [{"workload": w, "runner": r, "device": d, "rounds": str(v.rounds), "step jitter": sd(v.step),
             "within process": sd(v.within), "between processes": sd(v.between_processes),
             "between rounds": sd(v.between_rounds)} for (w, r, d), v in result.variance.items()]


def headers(result: Comparison, names: tuple[str, str]) -> tuple[str, ...]:
    """:data:`COLUMNS`, with ``A``/``B`` for the two sides of a paired comparison."""
    if not result.paired:
        return COLUMNS
    return tuple({"baseline": "A", "current": "B"}.get(c, c) for c in COLUMNS)


def markdown(result: Comparison, names: tuple[str, str], code: int, title: str = "fwbench compare") -> str:
    """GitHub-flavoured markdown: a headline, the settings, a table, the notes. Every name, detail and
    note is escaped, so the text renders inert in a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    heads = headers(result, names)
    sides = (f"A {md_code(names[0])} → B {md_code(names[1])}" if result.paired
             else f"baseline {md_code(names[0])} → current {md_code(names[1])}")
    lines = [f"### {md_text(title)}: {md_text(headline(result, code))}", "",
             f"{sides}; {md_text(settings(result))}", "",
             "| " + " | ".join(heads) + " |", "|" + "|".join(":-:" if not c else "---" for c in heads) + "|"]
    for c in result.cells:
        r = row(c, result.threshold)
        lines.append("| " + " | ".join(md_text(r[col], in_table=True) for col in COLUMNS) + " |")
    lines += ["", md_text(footnote(result))]
    if result.variance:
        lines += ["", "| " + " | ".join(VARIANCE_COLUMNS) + " |", "|" + "|".join("---" for _ in VARIANCE_COLUMNS) + "|"]
        lines += ["| " + " | ".join(md_text(v[col], in_table=True) for col in VARIANCE_COLUMNS) + " |"
                  for v in variance_rows(result)]
        lines += ["", md_text(VARIANCE_NOTE)]
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
    base, cur = ("A", "B") if result.paired else ("baseline", "current")
    cols = ("", "cell", base, cur, "change", f"{100 * (1 - result.alpha):.3g}% CI", "q", "verdict")
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
    if result.variance:
        v = Table(title=text("where the noise is (relative standard deviations)"), title_justify="left")
        for col in ("cell",) + VARIANCE_COLUMNS[3:]:
            v.add_column(col, overflow="fold", no_wrap=col != "cell", justify="left" if col == "cell" else "right")
        for r in variance_rows(result):
            v.add_row(text(f"{r['workload']}/{r['runner']}/{r['device']}"), *(text(r[c]) for c in VARIANCE_COLUMNS[3:]))
        out += [v, text(VARIANCE_NOTE)]
    sides = f"A {names[0]} → B {names[1]}" if result.paired else f"baseline {names[0]} → current {names[1]}"
    out.append(text(f"{sides}; {settings(result)}"))
    out += [text(f"note: {note}") for note in result.notes]
    return out

