"""Markdown rendering of a :class:`~fwbench.report.model.Report` (pure: returns text)."""

from __future__ import annotations

from fwbench.report.labels import FEATURE, phrase
from fwbench.report.model import Evidence, Report
from fwbench.report.perf import PERF_COLUMNS, headers
from fwbench.report.utilisation import UTIL_HEADERS, UTIL_NOTE, UTIL_TITLE


def inert(text: str) -> str:
    """Text that renders as itself: no HTML (``<``, ``>``, ``&`` become entities) and no link (``](``).

    Workload names, descriptions and failure reasons are user data; the renderer's own line break
    ``<br>`` is the only tag kept.
    """
    parts = str(text).split("<br>")
    safe = [p.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("](", "]\\(") for p in parts]
    return "<br>".join(safe)


def cell(text: str) -> str:
    """Text made safe for one markdown table cell: one line, pipes escaped, inert (see :func:`inert`)."""
    return inert(" ".join(str(text).split()).replace("|", "\\|"))


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def evidence_text(ev: Evidence, lang: str, refs: list[int]) -> str:
    """The evidence (with its source numbers), what is still missing, or "not measured"."""
    if ev.status == "not_measured":
        return f"*{phrase(lang, 'not_measured')}*"
    hint = " / ".join(phrase(lang, "hint_run", cmd=c) for c in ev.hints)
    if not ev.parts:
        return phrase(lang, "missing", hint=hint)
    text = "; ".join(ev.parts) + (" " + "".join(f"[{n}]" for n in refs) if refs else "")
    return text + (f"; *{phrase(lang, 'more', hint=hint)}*" if hint else "")


def render(report: Report) -> str:
    lang = report.lang
    lines = [f"# {phrase(lang, 'title')}", ""]
    lines += [f"> {inert(n)}" for n in report.notes] + ([""] if report.notes else [])
    lines += [f"## {phrase(lang, 'environment')}", ""] + [f"- {inert(e)}" for e in report.environment] + [""]
    lines += [f"## {phrase(lang, 'parity')}", ""] + [f"- {inert(p)}" for p in report.parity] + [""]
    lines += [f"## {phrase(lang, 'performance')}", ""]
    for t in report.performance:
        lines += [f"### {inert(t.title)}", ""]
        lines += table(headers(lang, t.reference), [[r.text[c] for c in PERF_COLUMNS] for r in t.rows]) + [""]
    lines += [phrase(lang, "perf_fields"), ""]
    if report.utilisation:  # runs that recorded FLOPs (fwbench.flops) and a measured peak
        lines += [f"### {UTIL_TITLE[lang]}", ""] + table(list(UTIL_HEADERS[lang]), report.utilisation) + [""]
        lines += [UTIL_NOTE[lang], ""]
    if report.plots:
        lines += [f"## {phrase(lang, 'plots')}", ""]
        lines += [f"![{inert(caption).replace('[', '(').replace(']', ')')}]({path})" for caption, path in report.plots]
        lines += [""]
    lines += [f"## {phrase(lang, 'seed_tables')}", "", phrase(lang, "seed_intro"), ""]
    n = 0
    for t in report.seed_tables:
        lines += [f"### {t.title}", ""]
        rows, notes = [], []
        for r in t.rows:
            row = [r.label]
            for key, _ in t.columns:
                ev = r.evidence[key]
                refs = []
                if ev.parts and ev.sources:
                    n += 1
                    refs = [n]
                    notes.append(f"{n}. " + "; ".join(f"`{s}`" for s in ev.sources))
                row.append(f"{evidence_text(ev, lang, refs)}<br>*{phrase(lang, 'document')}:* {r.claims[key]}")
            rows.append(row)
        lines += table([FEATURE[lang]] + [label for _, label in t.columns], rows) + [""]
        if notes:
            lines += [f"{phrase(lang, 'sources')}:", ""] + notes + [""]
    if report.probes:
        lines += [f"## {phrase(lang, 'probes')}", ""]
        head = [phrase(lang, k) for k in ("col_probe", "col_runner", "col_status", "col_result", "col_source")]
        lines += table(head, [[p.probe, p.runner, p.status, p.text, f"`{p.source}`"] for p in report.probes]) + [""]
    return "\n".join(lines).rstrip() + "\n"
