"""Report plots: one bar per (workload, runner, device) with repeats combined, memory and first-step chart,
Chinese labels. What is drawn is tested through plots.plot_data, not through pixels."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fwbench.cells import Cell
from fwbench.estimate import cell_estimate
from fwbench.report import plots
from fwbench.report.corpus import Corpus
from test_compare import cell, doc, repeated


def corpus() -> Corpus:
    cells = (repeated(runner="a", peak_rss_bytes=100, first_step_s=1.0)
             + [cell(runner="b", repeat=k, seed=9 + k, factor=2.0, first_step_s=0.1 * (k + 1),
                     peak_rss_bytes=200 + k, peak_device_bytes=300 + k) for k in range(2)]
             + [cell(runner="c", status="failed"), cell(runner="a", device="cuda", seed=3)]
             + [cell(workload="dead", runner="a", status="crashed")])
    return Corpus([("run.json", doc(cells))])


def test_one_bar_per_workload_runner_device_with_repeats_combined() -> None:
    groups = plots.plot_data(corpus())
    assert [(g.workload, g.device, [b.runner for b in g.bars]) for g in groups] == [
        ("w", "cpu", ["a", "b"]), ("w", "cuda", ["a"])]  # c failed, `dead` crashed: nothing to draw
    a, b = groups[0].bars
    assert (a.processes, b.processes) == (3, 2) and (a.label, b.label) == ("a (×3)", "b (×2)")
    est = cell_estimate([Cell.from_dict(c) for c in repeated(runner="a")])
    assert a.rate == pytest.approx(8 / est.centre_s) and a.rate_low == pytest.approx(8 / est.high_s)
    assert len(a.steps_ms) == 3 * 40  # the steps of every process, pooled
    assert (a.peak_bytes, a.peak_kind, a.first_step_s) == (100, "host", 1.0)
    assert (b.peak_bytes, b.peak_kind) == (301, "device")  # the largest peak; the device's where measured
    assert b.first_step_s == pytest.approx(0.15)  # median over processes
    ddp = cell(distributed={"world_size": 2, "global_batch": 16})
    (g,) = plots.plot_data(Corpus([("run.json", doc([ddp]))]))
    assert g.bars[0].rate == pytest.approx(16 / cell_estimate([Cell.from_dict(ddp)]).centre_s)  # the global batch


def test_zh_labels_with_a_cjk_font_and_english_without(monkeypatch) -> None:
    g = plots.plot_data(corpus())[0]
    assert plots.title(g, "throughput", "zh").startswith("w (cpu): 各运行器吞吐量")
    assert "throughput" in plots.title(g, "throughput", "en")
    monkeypatch.setattr(plots, "cjk_font", lambda: "Some CJK")
    assert plots.labels_lang("zh") == ("zh", "Some CJK") and plots.labels_lang("en") == ("en", None)
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    monkeypatch.setattr(plots, "_warned", [])
    heard: list[str] = []
    assert plots.labels_lang("zh", heard.append) == ("en", None) == plots.labels_lang("zh", heard.append)
    assert len(heard) == 1 and "fonts-wqy-microhei" in heard[0]  # once per process


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_make_plots_draws_three_figures_per_group_with_zh_labels(tmp_path, monkeypatch) -> None:
    c = Corpus([("run.json", doc(repeated(runner="a", first_step_s=1.0, peak_rss_bytes=2**20)
                                    + [cell(runner="b$x$", first_step_s=0.001, peak_rss_bytes=2**21)]))])
    monkeypatch.setattr(plots, "cjk_font", lambda: "DejaVu Sans")  # any font: the glyphs do not matter here
    drawn: list[tuple[str, list[str], list[str]]] = []
    figure = plots._figure

    def spy(plt, kind, bars, names, lang):
        fig = figure(plt, kind, bars, names, lang)
        drawn.append((kind, [ax.get_xlabel() for ax in fig.axes], [ax.get_xscale() for ax in fig.axes]))
        return fig

    monkeypatch.setattr(plots, "_figure", spy)
    made = plots.make_plots(c, tmp_path, "zh")
    assert [rel for _, rel in made] == [f"plots/w-cpu-{k}.png" for k in plots.KINDS]
    assert made[0][0] == "w (cpu): 各运行器吞吐量(每秒样本数,越高越好)"
    for _, rel in made:
        assert _png_size(tmp_path / rel) == (800, 450)
    labels = dict((k, x) for k, x, _ in drawn)
    assert labels["throughput"] == ["每秒样本数(重复合并,95% 置信区间)"]
    assert labels["memory"] == ["峰值内存(MiB,主机 RSS)", "首步时间(秒,对数刻度)"]
    assert dict((k, s) for k, _, s in drawn)["memory"] == ["linear", "log"]  # 1 s against 1 ms
