"""Printing results to the terminal with rich (the only place tables meet a console)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from fwbench.tables import COLUMNS, TTA_COLUMNS, run_rows, tta_rows

STATUS_STYLE = {"ok": "green", "skipped": "yellow"}
RIGHT = ("median step ±95% CI", "samples/s", "MFU", "first step", "peak mem", "loss")
NO_WRAP = ("runner",)


def print_run_tables(doc: dict[str, Any], console: Console) -> None:
    """One table per workload (reasons of cells that did not succeed listed under it), then the parity verdict."""
    for workload, rows in run_rows(doc).items():
        spec = doc.get("workloads", {}).get(workload, {})
        title = f"{workload} — {spec.get('mode', 'train')}, batch {spec.get('batch_size', '?')}"
        cols = [c for c in COLUMNS if c != "device" or len({r["device"] for r in rows}) > 1]
        if len({r["device"] for r in rows}) == 1:
            title += f", {rows[0]['device']}"
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      caption="peak mem: worker RSS high-water mark (\"dev\": device memory); "
                              "MFU: model FLOPs / measured peak", caption_justify="left")
        for col in cols:
            table.add_column(col, justify="right" if col in RIGHT else "left", no_wrap=col in NO_WRAP, overflow="fold")
        notes = []
        for row in rows:
            status, _, reason = row["status"].partition(": ")
            if reason:
                notes.append(f"{row['runner']}: {status}: {reason}")
            cells = [status if c == "status" else row[c] for c in cols]
            table.add_row(*cells, style=STATUS_STYLE.get(status, "red"))
        console.print(table)
        for note in notes:
            console.print(f"  {note}", highlight=False, markup=False)
    for workload, rows in tta_rows(doc).items():
        table = Table(title=f"{workload} — time to accuracy (training time, evaluations excluded)",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in TTA_COLUMNS:
            table.add_column(col)
        for row in rows:
            table.add_row(*(row[c] for c in TTA_COLUMNS), style="green" if row["reached"] == "yes" else "red")
        console.print(table)
    parity = doc.get("parity") or {}
    if parity.get("mismatches"):
        console.print(f"[bold red]Parity check FAILED[/] for {', '.join(parity['mismatches'])}: "
                      "these runners did not compute the same losses as the reference "
                      f"({parity.get('reference')}); their timings are not comparable.")
        for cell in doc["cells"]:
            detail = (cell.get("parity") or {}).get("detail")
            if detail:
                console.print(f"  {cell['id']}: {detail}", highlight=False, markup=False)
    elif parity.get("groups"):
        console.print(f"Parity: every runner matched the reference ({parity.get('reference')}) "
                      "on the initial and K-step losses.")
