"""Reading results files and writing a report in one format into a folder (the I/O edge of the package)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from fwbench import results
from fwbench.errors import UsageError
from fwbench.report import markdown, tabular
from fwbench.report.build import build_report, machines, machines_warning
from fwbench.report.corpus import Corpus

FORMATS = ("markdown", "html", "csv", "json")


def labels_for(paths: list[Path]) -> list[str]:
    """Short names for the files a report cites: the file name, or the path where two names clash."""
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else str(p) for p in paths]


def pick_reference(docs: list[tuple[str, dict[str, Any]]], reference: str | None) -> str:
    """The runner speedups are measured against: ``reference`` when the results ran it (else a usage error
    naming the runners they hold); by default ``torch`` where it ran, else the first runner."""
    ran = list(dict.fromkeys(str(c.get("runner")) for _, doc in docs for c in doc.get("cells", [])))
    if reference is None:
        return "torch" if "torch" in ran or not ran else ran[0]
    if ran and reference not in ran:
        raise UsageError(f"--reference {reference!r}: no cell of these results ran it; choose from: {', '.join(ran)}")
    return reference


def write_report(paths: list[Path], out_dir: Path, fmt: str = "markdown", lang: str = "en",
                 reference: str | None = None, plots: bool = True,
                 warn: Callable[[str], None] | None = None) -> list[Path]:
    """Render the results files ``paths`` as ``fmt`` into ``out_dir``; returns the files written.

    markdown: ``report.md`` and, with ``plots``, ``plots/*.png``; html: ``report.html`` alone (the markdown
    report as one self-contained page, the plots embedded in it: see :mod:`fwbench.report.html`); csv: ``performance.csv``,
    ``seed_tables.csv``, ``probes.csv`` (and ``scenarios.csv`` where there are inference scenarios); json: ``report.json``. ``reference``: see :func:`pick_reference`.
    ``warn`` receives what a reader must not miss (results from several machines), besides the report.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if lang not in ("en", "zh"):
        raise UsageError(f"unknown language {lang!r}; choose from: en, zh")
    if not paths:
        raise UsageError("give at least one results file")
    docs = []
    for label, p in zip(labels_for(paths), paths):
        doc = results.read(p)
        # an `fwbench ab` file is two runs: each side reads as a results file of its own
        docs += [(f"{label} [{s}]", results.side_view(doc, s)) for s in doc["ab"]["sides"]] if results.is_ab(doc) \
            else [(label, doc)]
    report = build_report(docs, reference=pick_reference(docs, reference), lang=lang)
    where = machines(docs)
    if warn and len(set(where.values())) > 1:
        warn(machines_warning(where, "en"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    written: list[Path] = []
    if fmt == "markdown":
        if plots:
            from fwbench.report.plots import make_plots

            report.plots = make_plots(Corpus(docs), out_dir, lang, warn=warn)
            written += [out_dir / rel for _, rel in report.plots]
        files = {"report.md": markdown.render(report)}
    elif fmt == "html":
        from fwbench.report import html

        images: dict[str, bytes] = {}
        if plots:  # drawn as for markdown, then embedded: report.html is the only file written
            from fwbench.report.plots import make_plots

            with tempfile.TemporaryDirectory(prefix="fwbench-plots-") as tmp:
                report.plots = make_plots(Corpus(docs), Path(tmp), lang, warn=warn)
                images = {rel: (Path(tmp) / rel).read_bytes() for _, rel in report.plots}
        files = {"report.html": html.page(markdown.render(report), images, lang)}
    elif fmt == "csv":
        files = {"performance.csv": tabular.performance_csv(report), "seed_tables.csv": tabular.seed_csv(report),
                 "probes.csv": tabular.probes_csv(report)}
        if report.scenarios:  # inference scenarios (fwbench.report.scenarios), where the results have them
            files["scenarios.csv"] = tabular.scenarios_csv(report)
    else:
        files = {"report.json": tabular.to_json(report)}
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    return written
