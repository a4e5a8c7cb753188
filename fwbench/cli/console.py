"""Printing results to the terminal with rich (the only place the run tables meet a console).

Results go to stdout, progress and status lines to stderr: build both with :func:`make_console`
(``make_console()`` and ``make_console(stderr=True)``), which keeps tables whole in a pipe. Every piece
of user text reaches rich as :class:`rich.text.Text` through :func:`fwbench.report.terminal.text`.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fwbench import units
from fwbench.estimate import WIDE_CI
from fwbench.report import summary
from fwbench.report.combined import combine
from fwbench.report.corpus import Corpus
from fwbench.report.scenarios import ScenarioTable, scenario, scenario_tables
from fwbench.report.terminal import fit, make_console, print_table, text
from fwbench.tables import COLUMNS, TTA_COLUMNS, run_rows, tta_rows

__all__ = ["make_console", "print_run_tables", "text"]

STATUS_STYLE = {"ok": "green", "skipped": "yellow"}
RIGHT = ("step (95% CI)", "processes", "samples/s", "MFU", "first step", "peak mem", "loss")
WRAPS = ("status",)  # the only column that may wrap: headers and numbers never break
CAPTION = ("one row per runner, its worker processes combined (fwbench.estimate); noisy: 95% CI wider than "
           f"±{WIDE_CI:.0%}; peak mem: worker RSS high-water mark (\"dev\": device memory); MFU: model FLOPs / "
           "measured peak")


def loss_column(cells: list[dict[str, Any]]) -> tuple[str, list[str], str]:
    """The loss column of one workload's table: ``(header, one text per cell, caption)``.

    The last loss comes after a different number of timed steps per runner, so beside a parity column it
    reads as a disagreement. Where every successful cell has the parity check's loss after the same K steps
    (same weights, same batches), that common-step loss is shown instead; otherwise the column is labelled
    "last loss" and the caption says what it is."""
    ks = {(c.get("parity") or {}).get("k") for c in cells if c.get("status") == "ok"}
    kloss = [(c.get("parity") or {}).get("kstep_loss") for c in cells if c.get("status") == "ok"]
    if len(ks) == 1 and None not in ks and kloss and None not in kloss:
        (k,) = ks
        return (f"loss @{k}", [units.loss((c.get("parity") or {}).get("kstep_loss")) for c in cells],
                f"loss @{k}: training loss after {k} steps from the same weights on the same batches "
                "(the parity check's common step)")
    return ("last loss", [units.loss(c.get("final_loss")) for c in cells],
            "last loss: after each runner's own number of timed steps (not a common step: compare losses "
            "with the parity column)")


def print_run_tables(doc: dict[str, Any], console: Console | None = None) -> None:
    """One table per workload, one row per runner with its repeats combined (reasons of cells that did not
    succeed listed under it), then the parity verdict and the summary (:mod:`fwbench.report.summary`)."""
    console = fit(console or make_console())
    for workload, rows in run_rows(doc).items():
        loss_head, losses, loss_note = loss_column([r.group.first for r in rows])
        spec = doc.get("workloads", {}).get(workload, {})
        title = f"{workload} — {spec.get('mode', 'train')}, batch {spec.get('batch_size', '?')}"
        cols = [c for c in COLUMNS if c != "device" or len({r["device"] for r in rows}) > 1]
        if len({r["device"] for r in rows}) == 1:
            title += f", {rows[0]['device']}"
        table = Table(title=text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      caption=Text(f"{CAPTION}; {loss_note}"), caption_justify="left")
        for col in cols:
            table.add_column(loss_head if col == "loss" else col, justify="right" if col in RIGHT else "left",
                             no_wrap=col not in WRAPS, overflow="fold")
        notes = []
        for i, row in enumerate(rows):
            status = row.group.status
            if row.note:
                notes.append(f"{row['runner']}: {status}: {row.note}")
            values = [losses[i] if c == "loss" and i < len(losses) else row[c] for c in cols]
            style = STATUS_STYLE.get(status, "red") if status != "ok" or not row.group.estimate \
                else "yellow" if row.group.estimate.noisy else STATUS_STYLE["ok"]
            table.add_row(*(text(v) for v in values), style=style)
        print_table(console, table)
        for note in notes:
            console.print(text(f"  {note}"), highlight=False)
        console.print()  # a blank line before the next table's title
    for workload, rows in tta_rows(doc).items():
        table = Table(title=text(f"{workload} — time to target (training time, evaluations excluded)"),
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in TTA_COLUMNS:
            table.add_column(col, no_wrap=True)
        for row in rows:
            table.add_row(*(text(row[c]) for c in TTA_COLUMNS), style="green" if row["reached"] == "yes" else "red")
        print_table(console, table)
    print_scenario_tables(doc, console)
    parity = doc.get("parity") or {}
    # each (workload, device) group's reference: torch where it ran, else the group's first runner
    refs = ", ".join(sorted({str(g.get("reference")) for g in parity.get("groups") or []})) or parity.get("reference")
    if parity.get("mismatches"):
        line = Text("Parity check FAILED", style="bold red")
        line.append(text(f" for {', '.join(map(str, parity['mismatches']))}: these runners did not compute the "
                         f"same losses (or, inference, the same logits) as the reference ({refs}); their "
                         "timings are not comparable."))
        console.print(line)
        for cell in doc["cells"]:
            detail = (cell.get("parity") or {}).get("detail")
            if detail:
                console.print(text(f"  {cell['id']}: {detail}"), highlight=False)
    elif parity.get("groups"):
        console.print(text(f"Parity: every runner matched the reference ({refs}): training cells on the initial "
                           "and K-step losses, inference cells on their logits."), highlight=False)
    print_summary(doc, console)


def scenario_table(t: ScenarioTable) -> Table:
    """One scenario table (:mod:`fwbench.report.scenarios`) for the terminal: every column but the source
    (cell ids; the report cites them). Rows with a parity mismatch or a failed point are red."""
    table = Table(title=text(t.title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    left = {t.headers[0], "parity", "status"}
    for head in t.headers[:-1]:
        table.add_column(text(head), justify="left" if head in left else "right", no_wrap=head != "status",
                         overflow="fold")
    for row in t.rows:
        bad = any(c.startswith(("mismatch", "out of memory", "failed", "crashed", "timeout")) for c in row[1:-1])
        table.add_row(*(text(c) for c in row[:-1]), style="red" if bad else "")
    return table


def print_scenario_tables(doc: dict[str, Any], console: Console, label: str = "run.json") -> None:
    """The latency (p50/p90/p99 with CIs), throughput sweep (with its memory) and cold-start tables, where
    the run has such cells, each with the lines under it (what the figures are, energy, failed points): the
    report's own builders, rendered for the terminal (English)."""
    for t in scenario_tables(Corpus([(label, doc)]), "en"):
        print_table(console, scenario_table(t))
        for note in t.notes:
            console.print(text(f"  {note}"), highlight=False)
        console.print()


def print_summary(doc: dict[str, Any], console: Console) -> None:
    """The summary (fastest runner per workload and device, the others' ratios to it) after the tables;
    cold-start cells (no steps) are in their own table only."""
    corpus = Corpus([("run.json", doc)])
    lines = summary.terminal(summary.summarise(combine([r for r in corpus.cells if scenario(r) != "cold-start"])))
    if lines:
        console.print()
    for line in lines:
        console.print(line, highlight=False)
