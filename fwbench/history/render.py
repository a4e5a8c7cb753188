"""Strings of ``fwbench history show`` (markdown, HTML) and ``history check`` (text, markdown, JSON). Pure.

User text (workload, runner and device names, commits, folder names) goes through :mod:`fwbench.textsafe`
in markdown and plain text, through :func:`html.escape` in HTML."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from fwbench.history import changepoints as cp
from fwbench.history.changepoints import Detection
from fwbench.history.judge import Check, CellCheck
from fwbench.history.series import Commit, Point, Series
from fwbench.textsafe import md_code, md_text, term_plain
from fwbench.units import seconds

MARK = {"slower": "✗ slower", "faster": "✓ faster", "no step": "✓ no step", "small step": "✓ small step",
        "too short": "– too short", "not measured": "– not measured"}


def method_text() -> str:
    return (f"PELT (ruptures, l2 cost, segments of >= {cp.MIN_SIZE} run) on the log of the per-commit centres, "
            f"penalty {cp.PENALTY_FACTOR:g}·ln(n) per change point in units of the noise σ (trimmed RMS of first "
            f"differences, floor {cp.SIGMA_FLOOR:.1%}); at least {cp.MIN_POINTS} commits")


@dataclass(frozen=True)
class Trend:
    """What ``show`` draws for one cell: the series, its change points, and its PNG."""

    series: Series
    detection: Detection
    png: bytes
    png_name: str


def _when(date: str) -> str:
    return date.replace("T", " ")[:16]


def _span(commits: list[Commit] | tuple[Commit, ...]) -> str:
    return f"{len(commits)} commit(s), {_when(commits[0].date)} to {_when(commits[-1].date)} UTC"


def _step_text(det: Detection, i: int) -> str:
    s = det.step_at(i)
    if s is None:
        return ""
    arrow = "▲" if s.ratio > 1 else "▼"
    return f"{arrow} x{s.ratio:.3f} ({s.ratio - 1:+.1%}){' (one run)' if s.provisional else ''}"


def _rows(t: Trend) -> list[tuple[str, ...]]:
    rows = []
    for i, p in enumerate(t.series.points):
        rows.append((str(i + 1), p.commit[:12], _when(p.date), seconds(p.centre),
                     f"{seconds(p.ci_low)} – {seconds(p.ci_high)}", _from(p),
                     ",".join(map(str, p.threads)) or "-", _step_text(t.detection, i)))
    return rows


def _from(p: Point) -> str:
    what = "geomean of process medians" if p.method == "processes" else "median of steps"
    return f"{what} ({p.processes} proc., {p.steps} steps)"


HEAD = ("#", "commit", "date (UTC)", "step time", "95% CI", "from", "threads", "step starts here")


def show_markdown(trends: list[Trend], commits: list[Commit], runs: int, folder: str) -> str:
    out = ["# Performance history", "",
           f"{runs} run(s), {_span(commits)}, from {md_code(folder)}. One point per commit and cell; "
           f"change points: {method_text()}.", ""]
    for t in trends:
        out += [f"## {md_text(t.series.name)}", "", f"![{md_text(t.series.name)} trend](plots/{t.png_name})", "",
                "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        for r in _rows(t):
            cells = [r[0], md_code(r[1], in_table=True), *(md_text(v, in_table=True) for v in r[2:])]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}code{font-size:90%}")


def show_html(trends: list[Trend], commits: list[Commit], runs: int, folder: str) -> str:
    import base64

    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', "<title>Performance history</title>",
           f"<style>{_CSS}</style></head><body>", "<h1>Performance history</h1>",
           f"<p>{e(str(runs))} run(s), {e(_span(commits))}, from <code>{e(folder)}</code>. One point per commit "
           f"and cell; change points: {e(method_text())}.</p>"]
    for t in trends:
        data = base64.b64encode(t.png).decode("ascii")
        out += [f"<h2>{e(t.series.name)}</h2>",
                f'<img alt="{e(t.series.name)} trend" src="data:image/png;base64,{data}">',
                "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEAD) + "</tr>"]
        for r in _rows(t):
            out.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- check

def _steps_list(c: CellCheck) -> list[str]:
    pts = c.series.points
    return [f"{pts[s.index].commit[:12]} (#{s.index + 1}) x{s.ratio:.3f} ({s.ratio - 1:+.1%}: "
            f"{seconds(s.before)} -> {seconds(s.after)}){' one run' if s.provisional else ''}"
            for s in c.detection.steps]


def _where(res: Check) -> list[str]:
    n = res.newest
    return [f"history {res.folder}: {_span(res.commits)}; newest commit {n.commit[:12]} ({_when(n.date)})",
            f"judged: does the newest commit start a slowdown step > +{res.threshold:.0%}? (exit 1 if so)",
            f"method: {method_text()}"]


def _verdict(res: Check) -> str:
    bad = sum(c.failed for c in res.cells)
    return (f"✗ {bad} cell(s) slower from the newest commit on (exit 1)" if bad
            else "✓ no slowdown step starts at the newest commit (exit 0)")


def check_text(res: Check) -> str:
    out = [*map(term_plain, _where(res)), ""]
    for c in res.cells:
        d = c.detection
        noise = f"noise σ {d.sigma:.1%}, penalty {d.penalty:.1f}" if d.judged else "not judged"
        out.append(term_plain(f"{c.series.name}: {len(c.series.points)} commit(s), {noise}"))
        for s in _steps_list(c) or ["no change point"]:
            out.append("  step at " + term_plain(s) if s != "no change point" else "  " + s)
        out.append(f"  newest commit: {MARK[c.verdict]}: {term_plain(c.detail)}")
    out += ["", _verdict(res)]
    return "\n".join(out)


def check_markdown(res: Check) -> str:
    out = [f"### fwbench history check: {_verdict(res)}", "", *("- " + md_text(w) for w in _where(res)), "",
           "| cell | commits | noise σ | steps (first commit: size) | newest commit |", "|---|---|---|---|---|"]
    for c in res.cells:
        d = c.detection
        steps = "<br>".join(md_text(s, in_table=True) for s in _steps_list(c)) or "none"
        out.append(f"| {md_text(c.series.name, in_table=True)} | {len(c.series.points)} | "
                   f"{f'{d.sigma:.1%}' if d.judged else '-'} | {steps} | "
                   f"{MARK[c.verdict]}: {md_text(c.detail, in_table=True)} |")
    return "\n".join(out) + "\n"


def check_json(res: Check) -> str:
    doc = {"folder": res.folder, "threshold": res.threshold, "exit_code": res.exit_code,
           "method": {"algorithm": "PELT", "library": "ruptures", "cost": "l2", "on": "log centre step time",
                      "min_size": cp.MIN_SIZE, "penalty": f"{cp.PENALTY_FACTOR:g}*ln(n) sigma^2",
                      "sigma_floor": cp.SIGMA_FLOOR, "trim": cp.TRIM, "min_points": cp.MIN_POINTS},
           "newest": {"commit": res.newest.commit, "date": res.newest.date},
           "cells": [{"workload": c.series.workload, "runner": c.series.runner, "device": c.series.device,
                      "verdict": c.verdict, "detail": c.detail, "sigma": c.detection.sigma,
                      "points": [{"commit": p.commit, "date": p.date, "centre_s": p.centre, "ci_low_s": p.ci_low,
                                  "ci_high_s": p.ci_high, "method": p.method} for p in c.series.points],
                      "steps": [{"index": s.index, "commit": c.series.points[s.index].commit, "ratio": s.ratio,
                                 "before_s": s.before, "after_s": s.after, "provisional": s.provisional}
                                for s in c.detection.steps]} for c in res.cells]}
    return json.dumps(doc, indent=1)
