"""Markdown rendering of a :class:`~fwbench.report.model.Report` (pure: returns text).

The model holds plain text; every piece of it is escaped here, where it meets markdown, with
:mod:`fwbench.textsafe` (``md_text`` for running text, ``md_code`` for sources and suggested commands).
"""

from __future__ import annotations

from fwbench.report.labels import FEATURE, phrase
from fwbench.report.model import Evidence, Report
from fwbench.report import summary
from fwbench.report.perf import PERF_COLUMNS, PERF_NOTE, headers
from fwbench.report.utilisation import UTIL_HEADERS, UTIL_NOTE, UTIL_TITLE
from fwbench.textsafe import md_code, md_text


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A GFM table of cells that are already markdown (escaped where they hold user text); headers are
    plain text and escaped here."""
    out = ["| " + " | ".join(md_text(h, True) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c for c in r) + " |" for r in rows]
    return out


def evidence_text(ev: Evidence, lang: str, refs: list[int]) -> str:
    """The evidence (with its source numbers), what is still missing, or "not measured"."""
    if ev.status == "not_measured":
        return f"*{phrase(lang, 'not_measured')}*"
    hint = " / ".join(phrase(lang, "hint_run", cmd=md_code(c, in_table=True)) for c in ev.hints)
    if not ev.parts:
        return phrase(lang, "missing", hint=hint)
    text = "; ".join(md_text(p, True) for p in ev.parts) + (" " + "".join(f"[{n}]" for n in refs) if refs else "")
    return text + (f"; *{phrase(lang, 'more', hint=hint)}*" if hint else "")


def render(report: Report) -> str:
    lang = report.lang
    lines = [f"# {phrase(lang, 'title')}", ""]
    lines += [f"> {md_text(n)}" for n in report.notes] + ([""] if report.notes else [])
    if report.summary is not None:
        lines += summary.markdown(report.summary, lang)
    lines += [f"## {phrase(lang, 'environment')}", ""] + [f"- {md_text(e)}" for e in report.environment] + [""]
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
    if report.plots:
        lines += [f"## {phrase(lang, 'plots')}", ""]
        lines += [f"![{md_text(caption)}]({path})" for caption, path in report.plots]  # path: fwbench's own slug
        lines += [""]
    lines += [f"## {phrase(lang, 'seed_tables')}", "", phrase(lang, "seed_intro"), ""]
    n = 0
    for t in report.seed_tables:
        lines += [f"### {md_text(t.title)}", ""]
        rows, notes = [], []
        for r in t.rows:
            row = [r.label]
            for key, _ in t.columns:
                ev = r.evidence[key]
                refs = []
                if ev.parts and ev.sources:
                    n += 1
                    refs = [n]
                    notes.append(f"{n}. " + "; ".join(md_code(s) for s in ev.sources))
                claim = md_text(r.claims[key], True)
                row.append(f"{evidence_text(ev, lang, refs)}<br>*{phrase(lang, 'document')}:* {claim}")
            rows.append([md_text(row[0], True)] + row[1:])
        lines += table([FEATURE[lang]] + [label for _, label in t.columns], rows) + [""]
        if notes:
            lines += [f"{phrase(lang, 'sources')}:", ""] + notes + [""]
    if report.probes:
        lines += [f"## {phrase(lang, 'probes')}", ""]
        head = [phrase(lang, k) for k in ("col_probe", "col_runner", "col_status", "col_result", "col_source")]
        probes = [[md_text(v, True) for v in (p.probe, p.runner, p.status, p.text)] + [md_code(p.source, in_table=True)]
                  for p in report.probes]
        lines += table(head, probes) + [""]
    return "\n".join(lines).rstrip() + "\n"
