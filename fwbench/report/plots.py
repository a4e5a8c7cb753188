"""Plots of the performance tables (matplotlib, Agg backend, PNG files of a fixed size).

Two figures per (workload, device): throughput per runner with its 95% CI as whiskers, and the
distribution of per-step times per runner. Only successful cells with samples are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwbench.report.corpus import Corpus
from fwbench.report.labels import phrase
from fwbench.textsafe import plot_text

FIG_SIZE_IN = (8.0, 4.5)
DPI = 100  # -> 800 x 450 pixels


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    """A file-name part for user text (a workload name): ASCII letters, digits, - and _ only, at most 40 of
    them; a short hash is appended whenever characters were replaced or cut, so that distinct names (``a b``,
    ``a-b``, 80 CJK characters) never share a file nor exceed the file-name limit."""
    import hashlib

    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in text)[:40]
    return safe if safe == text else f"{safe}-{hashlib.sha256(text.encode('utf-8', 'replace')).hexdigest()[:8]}"


def make_plots(corpus: Corpus, out_dir: Path, lang: str) -> list[tuple[str, str]]:
    """Write the figures into ``out_dir/plots``; returns ``(caption, path relative to out_dir)`` pairs."""
    plt = _pyplot()
    made = []
    for workload, device in corpus.groups():
        cells = [r for r in corpus.cells if (r["workload"], r["device"]) == (workload, device)
                 and r.ok and r.get("step_s")]
        if not cells:
            continue
        # labels are user text: drawn literally (no mathtext for a `$`, no control characters)
        names = [plot_text(r["runner"] + (f" #{r['repeat']}" if r.get("repeat") else "")) for r in cells]
        (out_dir / "plots").mkdir(parents=True, exist_ok=True)
        for kind, draw in (("throughput", _throughput), ("steps", _steps)):
            rel = f"plots/{slug(workload)}-{slug(device)}-{kind}.png"
            fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
            draw(ax, cells, names)
            caption = f"{workload} ({device}): {phrase(lang, kind + '_plot')}"
            ax.set_title(plot_text(caption if lang == "en" else f"{workload} ({device})"))
            fig.tight_layout()
            fig.savefig(out_dir / rel, dpi=DPI)
            plt.close(fig)
            made.append((caption, rel))
    return made


def _throughput(ax: Any, cells: list, names: list[str]) -> None:
    rates = [r.get("samples_per_s") or 0.0 for r in cells]
    lo, hi = [], []
    for r, rate in zip(cells, rates):
        ci = r.get("samples_per_s_ci") or [rate, rate]
        lo.append(max(0.0, rate - ci[0]))
        hi.append(max(0.0, ci[1] - rate))
    y = range(len(cells))
    ax.barh(list(y), rates, xerr=[lo, hi], capsize=4, color="#4c72b0")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("throughput (samples/s, median with 95% CI)")
    ax.grid(axis="x", alpha=0.3)


def _steps(ax: Any, cells: list, names: list[str]) -> None:
    data = [[s * 1e3 for s in r["step_s"]] for r in cells]
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    # `orientation` replaced `vert` in Matplotlib 3.10 (and `vert` warns from 3.11)
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    ax.boxplot(data, showfliers=True, **horizontal)
    ax.set_yticks(range(1, len(cells) + 1), names)
    ax.invert_yaxis()
    ax.set_xlabel("step time (ms, log scale)")
    ax.set_xscale("log")  # runners can differ by orders of magnitude
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, 50 ...
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 10, 100, not 10^1, 10^2
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", alpha=0.3, which="both")
