"""Printing results to the terminal with rich (the only place tables meet a console)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fwbench.tables import COLUMNS, run_rows

STATUS_STYLE = {"ok": "green", "skipped": "yellow"}


def print_run_tables(doc: dict[str, Any], console: Console) -> None:
    """One table per workload, then the parity verdict."""
    for workload, rows in run_rows(doc).items():
        spec = doc.get("workloads", {}).get(workload, {})
        title = f"{workload} — {spec.get('mode', 'train')}, batch {spec.get('batch_size', '?')}"
        table = Table(title=title, title_justify="left")
        for col in COLUMNS:
            table.add_column(col, overflow="fold", no_wrap=col != "status", min_width=6 if col == "status" else None,
                             justify="right" if col in ("samples/s", "first step") else "left")
        for row in rows:
            status = row["status"].split(":")[0]
            table.add_row(*(row[c] for c in COLUMNS), style=STATUS_STYLE.get(status, "red"))
        console.print(table)
    parity = doc.get("parity") or {}
    if parity.get("mismatches"):
        console.print(f"[bold red]Parity check FAILED[/] for {', '.join(parity['mismatches'])}: "
                      "these runners did not compute the same losses as the reference "
                      f"({parity.get('reference')}); their timings are not comparable.")
        for cell in doc["cells"]:
            detail = (cell.get("parity") or {}).get("detail")
            if detail:
                console.print(f"  {cell['id']}: {detail}")
    elif parity.get("groups"):
        console.print(f"Parity: every runner matched the reference ({parity.get('reference')}) "
                      "on the initial and K-step losses.")
