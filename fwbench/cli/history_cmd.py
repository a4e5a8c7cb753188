"""``fwbench history add|show|check``: a performance history across commits, and its change points.

``add`` files results under their commit and date in the history folder (``--dir``, else
``$FWBENCH_HISTORY_DIR``, else ``.fwbench-history``); ``show`` renders trend tables and plots (markdown or
a self-contained HTML page); ``check`` finds the steps of every cell's series and exits 1 when the newest
commit starts a slowdown step larger than ``--threshold`` (0 otherwise, 2 on a usage error such as an empty
history), appending its markdown to ``$GITHUB_STEP_SUMMARY`` when set. See ``docs/history.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

history = typer.Typer(help="A performance history across commits: add runs, show trends, check for steps.",
                      no_args_is_help=True, rich_markup_mode=None)

Dir = typer.Option(None, "--dir", metavar="DIR",
                   help="History folder [default: $FWBENCH_HISTORY_DIR, else .fwbench-history].")


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    history.command("add")(guarded(add_cmd))
    history.command("show")(guarded(show_cmd))
    history.command("check")(guarded(check_cmd))
    app.add_typer(history, name="history")


def add_cmd(
    files: list[Path] = typer.Argument(..., metavar="RESULTS", help="Results files to store."),
    commit: Optional[str] = typer.Option(None, "--commit", metavar="SHA",
                                         help="File under this commit [default: the git commit the run recorded]."),
    date: Optional[str] = typer.Option(None, "--date", metavar="ISO",
                                       help="File under this date [default: the run's 'created' time]."),
    side: Optional[str] = typer.Option(None, "--side", metavar="A|B",
                                       help="For an A/B results file (`fwbench ab`): store this side only."),
    folder: Optional[Path] = Dir,
) -> None:
    """Store results files in the history, keyed by commit and date (adding a run twice changes nothing)."""
    from fwbench import results
    from fwbench.history import store
    from fwbench.textsafe import term_plain

    where = store.resolve_dir(folder)
    docs = [(str(f), results.read(f)) for f in files]  # every file checked before anything is stored
    for name, doc in docs:
        done = store.add(where, doc, name, commit, date, side)
        e = done.entry
        print(term_plain(f"{done.status}: {name} -> commit {e.commit} ({e.date})"
                         f"{f', side {e.side}' if e.side else ''} in {where}"))


def _load(folder: Optional[Path]) -> tuple[Path, list, list, list]:
    """The folder, its stored runs, its commits (date order) and the per-cell series; exit 2 when empty."""
    from fwbench.errors import UsageError
    from fwbench.history import series, store

    where = store.resolve_dir(folder)
    runs = store.read_runs(where)
    if not runs:
        raise UsageError(f"the history in {where} is empty: store runs with `fwbench history add RESULTS`")
    return where, runs, series.commits(runs), series.build(runs)


def show_cmd(
    folder: Optional[Path] = Dir,
    out_dir: Path = typer.Option(Path("history-report"), "--out-dir", metavar="DIR",
                                 help="Where to write history.md and plots/, or history.html."),
    fmt: str = typer.Option("markdown", "--format", metavar="FORMAT",
                            help="markdown (history.md + plots/) or html (one self-contained page)."),
) -> None:
    """Trend tables and plots, per cell, of the step time over commits."""
    from fwbench.errors import UsageError
    from fwbench.history import plots, render
    from fwbench.history.changepoints import detect
    from fwbench.textsafe import term_plain

    if fmt not in ("markdown", "html"):
        raise UsageError(f"--format {fmt!r}: choose from markdown, html")
    where, runs, commits, all_series = _load(folder)
    trends = []
    for s in all_series:
        if s.points:
            det = detect([p.centre for p in s.points])
            trends.append(render.Trend(s, det, plots.trend_png(s, det), plots.file_name(s)))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if fmt == "html":
            target = out_dir / "history.html"
            target.write_text(render.show_html(trends, commits, len(runs), str(where)), encoding="utf-8")
        else:
            (out_dir / "plots").mkdir(exist_ok=True)
            for t in trends:
                (out_dir / "plots" / t.png_name).write_bytes(t.png)
            target = out_dir / "history.md"
            target.write_text(render.show_markdown(trends, commits, len(runs), str(where)), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    print(term_plain(f"{len(trends)} cell(s) over {len(commits)} commit(s): {target}"))


def check_cmd(
    folder: Optional[Path] = Dir,
    threshold: str = typer.Option("5%", "--threshold", "-t", metavar="PCT",
                                  help="Smallest slowdown step that fails, e.g. 5% or 0.05."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table, markdown or json (to stdout)."),
) -> None:
    """Find the change points of every cell's series; exit 1 when the newest commit starts a slowdown step."""
    from fwbench.errors import UsageError
    from fwbench.gate import FORMATS, parse_threshold
    from fwbench.history import judge, render

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    thr = parse_threshold(threshold)
    where, _, commits, all_series = _load(folder)
    res = judge.check(all_series, commits, thr, str(where))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as f:
                f.write(render.check_markdown(res) + "\n")
        except OSError as exc:
            print(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({summary_file}): {exc.strerror or exc}",
                  file=sys.stderr)
    text = {"json": render.check_json, "markdown": render.check_markdown, "table": render.check_text}[fmt](res)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        from fwbench.report.terminal import quiet_stdout

        quiet_stdout()
    raise typer.Exit(res.exit_code)
