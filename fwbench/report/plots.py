"""Plots of the performance tables (matplotlib, Agg backend, PNG files of a fixed size).

Three figures per (workload, device), one bar or box per (workload, runner, device) with its repeats
combined (:func:`fwbench.estimate.cell_estimate`, the number every table shows): throughput per runner with
its 95% CI as whiskers; peak memory and first-step (trace/compile) time per runner; the distribution of
per-step times per runner. :func:`plot_data` prepares what is drawn (pure, tested); :func:`make_plots` draws.

Chinese labels need a CJK font: :func:`cjk_font` finds one (``fonts-wqy-microhei`` or ``fonts-noto-cjk`` on
Debian); without one, ``--lang zh`` plots keep English labels and say so once.
"""

from __future__ import annotations

import re
import statistics
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from fwbench.estimate import cell_estimate, group
from fwbench.report.corpus import Corpus
from fwbench.report.scenarios import Sweep, sweeps
from fwbench.textsafe import plot_text

FIG_SIZE_IN = (8.0, 4.5)
DPI = 100  # -> 800 x 450 pixels
KINDS = ("throughput", "memory", "steps")  # the figures of one (workload, device), in the report's order
SWEEP_KINDS = ("sweep-throughput", "sweep-memory")  # the figures of one throughput sweep (base workload, device)

PLOT_TEXT: dict[str, dict[str, str]] = {
    "en": {"throughput": "throughput per runner (samples/s, higher is better)",
           "throughput_x": "samples per second (repeats combined, 95% CI)",
           "memory": "peak memory and first-step (trace/compile) time per runner",
           "memory_x": "peak memory (MiB, {kind})", "first_x": "first-step time (s{log})",
           "steps": "step-time distribution per runner (lower is better)", "steps_x": "step time (ms, log scale)",
           "log": ", log scale", "device": "device", "host": "host RSS", "mixed": "device or host RSS",
           "sweep-throughput": "throughput vs batch size per runner (samples/s, 95% CI)",
           "sweep-memory": "peak memory vs batch size per runner", "batch_x": "batch size (log2 scale)",
           "rate_y": "samples per second", "mem_y": "peak memory (MiB, {kind})"},
    "zh": {"throughput": "各运行器吞吐量(每秒样本数,越高越好)", "throughput_x": "每秒样本数(重复合并,95% 置信区间)",
           "memory": "各运行器峰值内存与首步(追踪/编译)时间", "memory_x": "峰值内存(MiB,{kind})",
           "first_x": "首步时间(秒{log})", "steps": "各运行器步时间分布(越低越好)",
           "steps_x": "步时间(毫秒,对数刻度)", "log": ",对数刻度", "device": "设备", "host": "主机 RSS",
           "mixed": "设备或主机 RSS",
           "sweep-throughput": "各运行器吞吐量随批大小变化(样本/秒,95% 置信区间)",
           "sweep-memory": "各运行器峰值内存随批大小变化", "batch_x": "批大小(log2 刻度)",
           "rate_y": "每秒样本数", "mem_y": "峰值内存(MiB,{kind})"},
}
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
                "Droid Sans Fallback", "AR PL UMing CN", "AR PL UKai CN", "SimHei", "Microsoft YaHei", "PingFang SC",
                "Heiti SC", "Noto Sans CJK JP", "Noto Sans CJK TC")
_CJK_FILE = re.compile(r"wqy|cjk|sourcehan|droidsansfallback|uming|ukai|simhei|msyh|pingfang", re.I)
NO_CJK_FONT = ("no CJK font found: the Chinese plots keep English labels; install one "
               "(Debian: apt-get install fonts-wqy-microhei)")
_warned: list[bool] = []


@dataclass(frozen=True)
class Bar:
    """One (workload, runner, device): its processes combined."""

    runner: str
    processes: int
    rate: float | None               # samples/s at the combined step time
    rate_low: float | None
    rate_high: float | None
    steps_ms: tuple[float, ...]      # every process's steps, pooled
    peak_bytes: int | None           # the largest peak of its processes
    peak_kind: str                   # "device" or "host" (RSS)
    first_step_s: float | None       # median over processes

    @property
    def label(self) -> str:
        return self.runner + (f" (×{self.processes})" if self.processes > 1 else "")


@dataclass(frozen=True)
class PlotGroup:
    workload: str
    device: str
    bars: list[Bar]


def slug(text: str) -> str:
    """A file-name part for user text (a workload name): ASCII letters, digits, - and _ only, at most 40 of
    them; a short hash is appended whenever characters were replaced or cut, so that distinct names (``a b``,
    ``a-b``, 80 CJK characters) never share a file nor exceed the file-name limit."""
    import hashlib

    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in text)[:40]
    return safe if safe == text else f"{safe}-{hashlib.sha256(text.encode('utf-8', 'replace')).hexdigest()[:8]}"


def _samples_per_step(c: Any) -> float | None:
    """A data-parallel cell's global batch, else its batch, else what its samples/s and median imply."""
    known = (c.get("distributed") or {}).get("global_batch") or c.batch_size
    return known or (c.samples_per_s * c.summary.median if c.samples_per_s and c.summary else None)


def _bar(cells: list[Any]) -> Bar | None:
    est = cell_estimate(cells)
    if est is None:
        return None
    ok = [c for c in cells if c.ok and c.step_s]
    batch = next((b for b in map(_samples_per_step, ok) if b), None)
    rates = (batch / est.centre_s, batch / est.high_s, batch / est.low_s) if batch and est.low_s > 0 else (None,) * 3
    device_peaks = [c.peak_device_bytes for c in ok if c.peak_device_bytes]
    peaks = device_peaks or [c.peak_rss_bytes for c in ok if c.peak_rss_bytes]
    firsts = [c.first_step_s for c in ok if c.first_step_s is not None]
    return Bar(ok[0].runner, est.processes, *rates, tuple(s * 1e3 for c in ok for s in c.step_s if s > 0),
               max(peaks) if peaks else None, "device" if device_peaks else "host",
               statistics.median(firsts) if firsts else None)


def plot_data(corpus: Corpus) -> list[PlotGroup]:
    """What the figures draw: per (workload, device) in the order they ran, one :class:`Bar` per runner
    with samples (its repeats combined); (workload, device) pairs with no samples are left out, and so are
    the points of throughput sweeps: the sweep's own figures (:func:`sweep_series`) draw every point."""
    out = []
    for workload, device in corpus.groups():
        cells = [r.data for r in corpus.cells if (r["workload"], r["device"]) == (workload, device)]
        if any(c.get("scenario") == "throughput" for c in cells):
            continue
        bars = [b for b in (_bar(g) for g in group(cells).values()) if b is not None]
        if bars:
            out.append(PlotGroup(workload, device, bars))
    return out


@cache
def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, or ``None``. Fonts installed after
    matplotlib built its font cache are found by file name and added."""
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((f for f in CJK_FAMILIES if f in names), None)

    if known() is None:
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except Exception:  # an unreadable font file: skip it
                    continue
    return known()


def labels_lang(lang: str, warn: Callable[[str], None] | None = None) -> tuple[str, str | None]:
    """The language the figures are labelled in and the CJK font they need: ``zh`` needs one; without one
    the labels stay English and ``warn`` (default: :func:`warnings.warn`) hears it once per process."""
    if lang != "zh":
        return "en", None
    font = cjk_font()
    if font is None:
        if not _warned:
            _warned.append(True)
            (warn or warnings.warn)(NO_CJK_FONT)
        return "en", None
    return "zh", font


def title(g: PlotGroup, kind: str, lang: str) -> str:
    return f"{g.workload} ({g.device}): {PLOT_TEXT[lang][kind]}"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def make_plots(corpus: Corpus, out_dir: Path, lang: str,
               warn: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """Write the figures into ``out_dir/plots``; returns ``(caption, path relative to out_dir)`` pairs."""
    plt = _pyplot()
    drawn_lang, font = labels_lang(lang, warn)
    rc = {"font.family": "sans-serif", "font.sans-serif": [font, *plt.rcParams["font.sans-serif"]]} if font else {}
    made = []
    with plt.rc_context(rc), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")  # a CJK name without a CJK font
        for g in plot_data(corpus):
            (out_dir / "plots").mkdir(parents=True, exist_ok=True)
            names = [plot_text(b.label) for b in g.bars]  # user text, drawn literally (no mathtext for a `$`)
            for kind in KINDS:
                rel = f"plots/{slug(g.workload)}-{slug(g.device)}-{kind}.png"
                fig = _figure(plt, kind, g.bars, names, drawn_lang)
                fig.suptitle(plot_text(title(g, kind, drawn_lang)))
                fig.tight_layout()
                fig.savefig(out_dir / rel, dpi=DPI)
                plt.close(fig)
                made.append((title(g, kind, lang), rel))
        for sw in sweeps(corpus):  # one pair per throughput sweep (fwbench.report.scenarios)
            (out_dir / "plots").mkdir(parents=True, exist_ok=True)
            for kind in SWEEP_KINDS:
                rel = f"plots/{slug(sw.workload)}-{slug(sw.device)}-{kind}.png"
                fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
                _sweep(ax, sw, kind, drawn_lang)
                fig.suptitle(plot_text(sweep_title(sw, kind, drawn_lang)))
                fig.tight_layout()
                fig.savefig(out_dir / rel, dpi=DPI)
                plt.close(fig)
                made.append((sweep_title(sw, kind, lang), rel))
    return made


def sweep_title(sw: Sweep, kind: str, lang: str) -> str:
    return f"{sw.workload} ({sw.device}): {PLOT_TEXT[lang][kind]}"


def sweep_series(sw: Sweep, kind: str) -> list[tuple[str, list[int], list[float], list[float], list[float]]]:
    """What a sweep figure draws, one line per runner: ``(label, batches, y, y - low, high - y)`` over the
    points that have a value (samples/s with its CI whiskers, or peak MiB without); pure, tested."""
    out = []
    for line in sw.lines:
        if kind == "sweep-throughput":
            pts = [p for p in line.points if p.rate is not None]
            ys = [p.rate for p in pts]
            lo = [max(0.0, p.rate - p.rate_low) if p.rate_low is not None else 0.0 for p in pts]  # type: ignore[operator]
            hi = [max(0.0, p.rate_high - p.rate) if p.rate_high is not None else 0.0 for p in pts]  # type: ignore[operator]
        else:
            pts = [p for p in line.points if p.peak_bytes]
            ys = [p.peak_bytes / 2**20 for p in pts]  # type: ignore[operator]
            lo = hi = [0.0] * len(pts)
        if pts:
            out.append((line.runner, [p.batch for p in pts], ys, lo, hi))  # type: ignore[misc]
    return out


_SWEEP_COLOURS = tuple(f"C{i}" for i in range(10)) + ("#393b79", "#8c6d31", "#843c39", "#7b4173", "#637939",
                                                     "#17becf", "#bcbd22", "#ad494a")
_SWEEP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _sweep(ax: Any, sw: Sweep, kind: str, lang: str) -> None:
    t = PLOT_TEXT[lang]
    for i, (label, xs, ys, lo, hi) in enumerate(sweep_series(sw, kind)):
        # tab20's colours and a marker per runner: a dozen runners never share a look
        look = {"color": _SWEEP_COLOURS[i % len(_SWEEP_COLOURS)], "marker": _SWEEP_MARKERS[i % len(_SWEEP_MARKERS)]}
        if kind == "sweep-throughput":
            ax.errorbar(xs, ys, yerr=[lo, hi], capsize=4, label=plot_text(label), **look)
        else:
            ax.plot(xs, ys, label=plot_text(label), **look)
    ax.set_xscale("log", base=2)
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(list(sw.batches), [str(b) for b in sw.batches])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(t["batch_x"])
    kinds = {p.peak_kind for line in sw.lines for p in line.points if p.peak_bytes}
    ax.set_ylabel(t["rate_y"] if kind == "sweep-throughput"
                  else t["mem_y"].format(kind=t[kinds.pop() if len(kinds) == 1 else "mixed"]))
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _figure(plt: Any, kind: str, bars: list[Bar], names: list[str], lang: str) -> Any:
    if kind == "memory":
        fig, (left, right) = plt.subplots(1, 2, figsize=FIG_SIZE_IN, dpi=DPI, sharey=True)
        _memory(left, right, bars, names, lang)
        return fig
    fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
    (_throughput if kind == "throughput" else _steps)(ax, bars, names, lang)
    return fig


def _barh(ax: Any, values: list[float], names: list[str], **kw: Any) -> None:
    y = list(range(len(values)))
    ax.barh(y, values, color="#4c72b0", **kw)
    ax.set_yticks(y, names)
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3, which="both")


def _throughput(ax: Any, bars: list[Bar], names: list[str], lang: str) -> None:
    rates = [b.rate or 0.0 for b in bars]
    lo = [max(0.0, b.rate - b.rate_low) if b.rate and b.rate_low else 0.0 for b in bars]
    hi = [max(0.0, b.rate_high - b.rate) if b.rate and b.rate_high else 0.0 for b in bars]
    _barh(ax, rates, names, xerr=[lo, hi], capsize=4)
    ax.set_xlabel(PLOT_TEXT[lang]["throughput_x"])


def _memory(left: Any, right: Any, bars: list[Bar], names: list[str], lang: str) -> None:
    t = PLOT_TEXT[lang]
    _barh(left, [(b.peak_bytes or 0) / 2**20 for b in bars], names)
    kinds = {b.peak_kind for b in bars if b.peak_bytes}
    left.set_xlabel(t["memory_x"].format(kind=t[kinds.pop() if len(kinds) == 1 else "mixed"]))
    positive = [b.first_step_s for b in bars if b.first_step_s]
    log = bool(positive) and max(positive) / min(positive) > 30  # compiled runners: seconds against milliseconds
    _barh(right, [b.first_step_s or (float("nan") if log else 0.0) for b in bars], names)
    if log:
        right.set_xscale("log")
    right.set_xlabel(t["first_x"].format(log=t["log"] if log else ""))


def _steps(ax: Any, bars: list[Bar], names: list[str], lang: str) -> None:
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    # `orientation` replaced `vert` in Matplotlib 3.10 (and `vert` warns from 3.11)
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    ax.boxplot([list(b.steps_ms) for b in bars], showfliers=True, **horizontal)
    ax.set_yticks(range(1, len(bars) + 1), names)
    ax.invert_yaxis()
    ax.set_xlabel(PLOT_TEXT[lang]["steps_x"])
    ax.set_xscale("log")  # runners can differ by orders of magnitude
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, 50 ...
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 10, 100, not 10^1, 10^2
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="x", alpha=0.3, which="both")
