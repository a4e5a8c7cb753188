"""Markdown rendering of a :class:`~fwbench.report.model.Report` (pure: returns text).

The model holds plain text; every piece of it is escaped here, where it meets markdown, with
:mod:`fwbench.textsafe` (``md_text`` for running text and source labels, ``md_code`` for cell ids and
suggested commands). Seed-table cells cite their sources as literal ``[n]``, listed in a bulleted list under
each table (see docs/report.md for why not ordered lists or ``[^n]`` footnotes).
"""

from __future__ import annotations

from fwbench.report.context import Context, flops_text
from fwbench.report.context import text as ctx_text
from fwbench.report.labels import FEATURE, phrase
from fwbench.report.model import Evidence, Report
from fwbench.report import summary
from fwbench.report.perf import PERF_COLUMNS, PERF_NOTE, headers
from fwbench.report.scenarios import TEXT as SCENARIO_TEXT
from fwbench.report.scenarios import ScenarioTable
from fwbench.report.utilisation import UTIL_HEADERS, UTIL_NOTE, UTIL_TITLE
from fwbench.textsafe import md_code, md_text


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A GFM table of cells that are already markdown (escaped where they hold user text); headers are
    plain text and escaped here."""
    out = ["| " + " | ".join(md_text(h, True) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c for c in r) + " |" for r in rows]
    return out


def source_label(src: str) -> str:
    """``run.json#cnn/tf-graph/cpu/0: summary.median`` -> ``run.json · cnn/tf-graph/cpu/0 · summary.median``."""
    file, _, rest = src.partition("#")
    record, _, fields = rest.partition(": ")
    return " · ".join(p for p in (file, record, fields) if p)


def cite(numbers: list[int]) -> str:
    """``\\[3\\]\\[4\\]``: literal brackets, so no renderer reads a link or footnote reference."""
    return "".join(f"\\[{n}\\]" for n in numbers)


class Notes:
    """The numbered sources of one table (listed under it) and the full texts for the appendix; numbers
    continue from table to table, and a source cited twice in one table keeps its number."""

    def __init__(self, start: int = 0):
        self.next = start
        self.numbers: dict[str, int] = {}
        self.full: list[tuple[int, str, str]] = []  # (number, source, full text)

    def number(self, src: str) -> int:
        if src not in self.numbers:
            self.next += 1
            self.numbers[src] = self.next
        return self.numbers[src]

    def lines(self) -> list[str]:
        """A bulleted list whose items start with the literal label: renders the same everywhere."""
        return [f"- {cite([n])} {md_text(source_label(s), True)}" for s, n in self.numbers.items()]


def evidence_text(ev: Evidence, lang: str, notes: Notes) -> str:
    """The verdict and why, one line per finding with its source numbers, and what is still missing;
    lines joined with ``<br>``."""
    lines = [f"**{phrase(lang, 'verdict_' + ev.verdict)}** — {md_text(ev.why, True)}"]
    for f in ev.findings:
        numbers = [notes.number(s) for s in f.sources]
        lines.append(md_text(f.text, True) + (" " + cite(numbers) if numbers else ""))
        if f.detail:
            notes.full.append((numbers[0] if numbers else 0, f.sources[0] if f.sources else "", f.detail))
    hint = " / ".join(phrase(lang, "hint_run", cmd=md_code(c, in_table=True)) for c in ev.hints)
    if hint:
        lines.append(phrase(lang, "missing", hint=hint) if not ev.findings else f"*{phrase(lang, 'more', hint=hint)}*")
    return "<br>".join(lines)


def appendix(lang: str, full: list[tuple[int, str, str]]) -> list[str]:
    """"Failures in full": each shortened failure or error message whole, with its source."""
    if not full:
        return []
    merged: dict[tuple[str, str], list[int]] = {}  # one item per (source, text), citing every number it had
    for n, src, text in full:
        numbers = merged.setdefault((src, text), [])
        numbers += [n] if n not in numbers else []
    lines = [f"## {phrase(lang, 'failures_title')}", "", phrase(lang, "failures_intro"), ""]
    lines += [f"- {cite(ns)} {md_text(source_label(src), True)}: {md_text(text, True)}" for (src, text), ns in merged.items()]
    return lines + [""]


def context_lines(ctx: Context, lang: str) -> list[str]:
    """The reader's context: one line per runner present, the workloads' definitions, the commands."""
    lines = [f"## {ctx_text(lang, 'title')}", ""]
    if ctx.runners:
        lines += [f"### {ctx_text(lang, 'runners')}", ""]
        lines += [f"- {md_code(name)}: {md_text(line, True)}" for name, line in ctx.runners] + [""]
    if ctx.workloads:
        head = [ctx_text(lang, k) for k in ("col_workload", "col_mode", "col_batch", "col_input", "col_params",
                                             "col_flops", "col_layers")]
        rows = [[md_text(w.name, True), md_text(w.mode, True), str(w.batch) if w.batch is not None else "-",
                 md_text(w.input_shape, True), f"{w.parameters:,}" if w.parameters is not None else "-",
                 flops_text(w.flops_per_step), md_text(w.layers, True) or "-"] for w in ctx.workloads]
        lines += [f"### {ctx_text(lang, 'workloads')}", ""] + table(head, rows) + ["", ctx_text(lang, "flops_note"), ""]
    if ctx.commands:
        lines += [f"### {ctx_text(lang, 'commands')}", ""]
        lines += [f"- {md_text(label)}: " + (md_code(cmd) if cmd else f"*{ctx_text(lang, 'no_command')}*")
                  for label, cmd in ctx.commands] + [""]
    return lines


def scenario_lines(tables: list[ScenarioTable], lang: str) -> list[str]:
    """The inference scenarios' tables (latency, throughput sweep and its memory, cold start), each with the
    lines under it (what the figures are, energy, the failed points' reasons) as a bulleted list."""
    if not tables:
        return []
    lines = [f"## {SCENARIO_TEXT[lang]['section']}", ""]
    for t in tables:
        rows = [[md_text(c, True) for c in r[:-1]] + [md_code(r[-1], in_table=True)] for r in t.rows]
        lines += [f"### {md_text(t.title)}", ""] + table(t.headers, rows) + [""]
        lines += [f"- {md_text(n)}" for n in t.notes] + ([""] if t.notes else [])
    return lines


def render(report: Report) -> str:
    lang = report.lang
    lines = [f"# {phrase(lang, 'title')}", ""]
    lines += [f"> {md_text(n)}" for n in report.notes] + ([""] if report.notes else [])
    if report.summary is not None:
        lines += summary.markdown(report.summary, lang)
    lines += [f"## {phrase(lang, 'environment')}", ""] + [f"- {md_text(e)}" for e in report.environment] + [""]
    if report.context:
        lines += context_lines(report.context, lang)
    lines += [f"## {phrase(lang, 'parity')}", ""] + [f"- {md_text(p)}" for p in report.parity] + [""]
    lines += [f"## {phrase(lang, 'performance')}", ""]
    for t in report.performance:
        lines += [f"### {md_text(t.title)}", ""]
        rows = [[md_code(r.text[c], in_table=True) if c == "source" else md_text(r.text[c], True)
                 for c in PERF_COLUMNS] for r in t.rows]
        lines += table(headers(lang, t.reference), rows) + [""]
        lines += [md_text(n) for n in t.legend] + ([""] if t.legend else [])
    lines += [PERF_NOTE[lang], ""]
    if report.utilisation:  # runs that recorded FLOPs (fwbench.flops) and a measured peak
        util = [[md_text(c, True) for c in r[:-1]] + [md_code(r[-1], in_table=True)] for r in report.utilisation]
        lines += [f"### {UTIL_TITLE[lang]}", ""] + table(list(UTIL_HEADERS[lang]), util) + [""]
        lines += [UTIL_NOTE[lang], ""]
        lines += [f"> {md_text(n)}" for n in report.utilisation_notes] + ([""] if report.utilisation_notes else [])
    lines += scenario_lines(report.scenarios, lang)
    if report.plots:
        lines += [f"## {phrase(lang, 'plots')}", ""]
        for caption, path in report.plots:  # path: fwbench's own slug; one figure per paragraph
            lines += [f"![{md_text(caption)}]({path})", ""]
    lines += [f"## {phrase(lang, 'seed_tables')}", "", phrase(lang, "seed_intro"), ""]
    n, full = 0, []
    for t in report.seed_tables:
        lines += [f"### {md_text(t.title)}", ""]
        rows, notes = [], Notes(n)
        for r in t.rows:
            row = [md_text(r.label, True)]
            for key, _ in t.columns:
                claim = md_text(r.claims[key], True)
                row.append(f"{evidence_text(r.evidence[key], lang, notes)}<br>*{phrase(lang, 'document')}:* {claim}")
            rows.append(row)
        lines += table([FEATURE[lang]] + [label for _, label in t.columns], rows) + [""]
        if notes.numbers:
            lines += [f"{phrase(lang, 'sources')}:", ""] + notes.lines() + [""]
        n, full = notes.next, full + notes.full
    if report.probes:
        lines += [f"## {phrase(lang, 'probes')}", ""]
        head = [phrase(lang, k) for k in ("col_probe", "col_runner", "col_status", "col_result", "col_source")]
        probes = [[md_text(v, True) for v in (p.probe, p.runner, p.status, p.text)] + [md_code(p.source, in_table=True)]
                  for p in report.probes]
        lines += table(head, probes) + [""]
    lines += appendix(lang, full)
    return "\n".join(lines).rstrip() + "\n"
