"""The trend plot of one cell's series (matplotlib, Agg, the house size of :mod:`fwbench.report.plots`):
the centre step time per commit with its 95% CI as a band, change points as dashed lines. Returns PNG bytes,
which ``history show`` writes to ``plots/`` (markdown) or embeds as a data URI (HTML)."""

from __future__ import annotations

import io

from fwbench.history.changepoints import Detection
from fwbench.history.series import Series
from fwbench.report.plots import DPI, FIG_SIZE_IN, _pyplot, slug
from fwbench.textsafe import plot_text


def file_name(series: Series) -> str:
    return f"{slug(series.workload)}-{slug(series.runner)}-{slug(series.device)}.png"


def trend_png(series: Series, detection: Detection) -> bytes:
    plt = _pyplot()
    pts = series.points
    x = list(range(1, len(pts) + 1))
    fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
    try:
        ax.fill_between(x, [p.ci_low * 1e3 for p in pts], [p.ci_high * 1e3 for p in pts], color="#4c72b0",
                        alpha=0.25, linewidth=0, label="95% CI")
        ax.plot(x, [p.centre * 1e3 for p in pts], marker="o", color="#4c72b0", label="step time")
        for step in detection.steps:
            ax.axvline(step.index + 0.5, color="#c44e52", linestyle="--", linewidth=1)
            ax.annotate(f"x{step.ratio:.2f}", (step.index + 0.5, 1.0), xycoords=("data", "axes fraction"),
                        ha="left", va="top", color="#c44e52", fontsize=8)
        step_ticks = max(1, len(pts) // 12)  # at most about a dozen labels
        ax.set_xticks(x[::step_ticks], [plot_text(p.commit[:8]) for p in pts][::step_ticks], rotation=45,
                      ha="right", fontsize=8)
        ax.set_xlim(0.5, len(pts) + 0.5)
        ax.set_xlabel("commit (oldest to newest)")
        ax.set_ylabel("step time (ms)")
        ax.set_title(plot_text(f"{series.name}: step time over commits"))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)
