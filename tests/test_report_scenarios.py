"""Per-scenario report views (fwbench.report.scenarios) on results documents built by hand after the cell
contract of issue 18: latency percentiles pooled over processes, a throughput sweep with an out-of-memory
point and a skipped one, cold start over fresh processes, the seed tables' deployment and hardware lines,
Chinese, plots, the terminal, and hostile names."""

from __future__ import annotations

import copy
import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fwbench.quantiles import latency_summary, quantile
from fwbench.report import plots, scenarios
from fwbench.report.build import build_report
from fwbench.report.corpus import Corpus
from fwbench.report.markdown import render
from test_compare import ENV

NO_ENERGY = {"available": False, "reason": "energy: not available (no RAPL / NVML)"}


def _steps(centre: float, n: int, seed: int, cv: float = 0.05) -> list[float]:
    return (centre * np.random.default_rng(seed).lognormal(0, cv, n)).tolist()


def _cell(base: str, variant: str, scen: str, runner: str, batch: int, repeat: int = 0, status: str = "ok",
          **extra) -> dict:
    workload = f"{base}@{variant}"
    c = {"id": f"{workload}/{runner}/cpu/{repeat}", "workload": workload, "base_workload": base, "scenario": scen,
         "runner": runner, "device": "cpu", "repeat": repeat, "status": status, "mode": "infer", "batch_size": batch,
         "reason": extra.pop("reason", ""), "energy": NO_ENERGY}
    c.update(extra)
    return c


def latency_cell(runner: str, centre: float, repeat: int = 0, n: int = 200, parity: str = "ok", **kw) -> dict:
    steps = _steps(centre, n, seed=zlib.crc32(runner.encode()) + repeat)
    return _cell("cnn", "latency", "latency", runner, 1, repeat, step_s=steps, latency=latency_summary(steps),
                 summary={"n": n, "median": float(np.median(steps)), "ci_low": min(steps), "ci_high": max(steps)},
                 parity={"status": parity, "detail": kw.pop("detail", "")}, peak_rss_bytes=100 * 2**20, **kw)


def sweep_cell(runner: str, batch: int, per_sample: float, seed: int = 0, status: str = "ok", **kw) -> dict:
    extra = {"step_s": _steps(per_sample * batch, 40, seed), "peak_rss_bytes": (50 + batch) * 2**20} if status == "ok" else {}
    return _cell("cnn", f"throughput-b{batch}", "throughput", runner, batch, status=status, **extra, **kw)


def cold_cell(runner: str, repeat: int, total: float, status: str = "ok", **kw) -> dict:
    extra = {"cold_start": {"process_start_s": 0.05 + repeat * 0.001, "import_s": total * 0.6,
                            "build_s": total * 0.3, "first_call_s": total * 0.05, "total_s": total}} \
        if status == "ok" else {}
    return _cell("cnn", "cold-start", "cold-start", runner, 1, repeat, status=status, **extra, **kw)


def scenario_doc() -> dict:
    cells = [latency_cell("torch", 1.2e-3, k, parity="reference") for k in range(2)]
    cells += [latency_cell("onnxruntime", 0.41e-3, k) for k in range(2)]
    cells += [latency_cell("tflite", 0.3e-3, n=50, parity="mismatch", detail="max |Δ logits| 0.3 > tolerance 1e-4")]
    cells += [latency_cell("tf-eager", 2.0e-3, parity="reference")]
    # torch: batch 16 and 64 equally fast per sample (within noise), 256 out of memory, 1024 skipped
    cells += [sweep_cell("torch", 1, 1e-3, 1), sweep_cell("torch", 16, 1e-4, 2), sweep_cell("torch", 64, 1e-4, 3),
              sweep_cell("torch", 256, 0, status="oom", reason="batch 256 ran out of memory (--memory-limit 2G)"),
              sweep_cell("torch", 1024, 0, status="skipped",
                         reason="batch 256 ran out of memory: larger batches of this sweep are skipped")]
    cells += [sweep_cell("onnxruntime", 1, 5e-4, 4), sweep_cell("onnxruntime", 16, 1e-4, 5),
              sweep_cell("onnxruntime", 64, 4e-5, 6), sweep_cell("onnxruntime", 256, 8e-5, 7)]
    cells += [cold_cell("torch", k, t) for k, t in enumerate((2.1, 1.9, 2.5, 2.0, 2.2))]
    cells += [cold_cell("onnxruntime", k, t) for k, t in enumerate((0.9, 0.8, 1.1, 0.7, 1.0))]
    return {"schema_version": 1, "fwbench_version": "0.1.0", "run_id": "r", "created": "",
            "config": {"scenario": "latency", "batch_sizes": [1, 16, 64, 256, 1024]},
            "environment": copy.deepcopy(ENV), "workloads": {}, "parity": {}, "cells": cells}


def corpus(doc: dict | None = None) -> Corpus:
    return Corpus([("run.json", doc or scenario_doc())])


def tables(kind: str, lang: str = "en", doc: dict | None = None) -> list[scenarios.ScenarioTable]:
    return [t for t in scenarios.scenario_tables(corpus(doc), lang) if t.kind == kind]


# ---------------------------------------------------------------- latency

def test_latency_table_pools_processes_and_sorts_by_p50() -> None:
    doc = scenario_doc()
    (t,) = tables("latency", doc=doc)
    assert t.title == "cnn — cpu, latency at batch 1 (per request, processes pooled)"
    assert [r[0] for r in t.rows] == ["tflite", "onnxruntime", "torch", "tf-eager"]  # fastest p50 first
    torch = next(v for v in t.values if v["runner"] == "torch")
    pooled = [s for c in doc["cells"] if c["runner"] == "torch" and c["scenario"] == "latency" for s in c["step_s"]]
    assert torch["latency"] == latency_summary(pooled) and torch["latency"]["n"] == 400
    row = dict(zip(t.headers, t.rows[2]))
    p50 = latency_summary(pooled)["percentiles"][0]
    assert row["p50"].startswith(f"{p50['value'] * 1e3:.3g} ms (") and row["requests"] == "400"
    assert row["processes"] == "2" and row["parity"] == "reference" and "energy / request" not in t.headers
    tflite = dict(zip(t.headers, t.rows[0]))  # 50 requests: p99 cannot reach 95%; its coverage is printed
    assert re.search(r", \d+(\.\d+)?% CI\)$", tflite["p99"]) and "CI" not in tflite["p50"]
    assert tflite["parity"] == "mismatch: max |Δ logits| 0.3 > tolerance 1e-4"
    assert "energy: not available (no RAPL / NVML)" in t.notes
    alone = [c for c in doc["cells"] if c["runner"] == "tf-eager"]
    alone[0]["step_s"] = []  # a file trimmed of its requests: the stored summary of its one process
    (t,) = tables("latency", doc=doc)
    assert next(v for v in t.values if v["runner"] == "tf-eager")["latency"] == alone[0]["latency"]


def test_latency_energy_per_request_where_measured() -> None:
    doc = scenario_doc()
    for c in doc["cells"]:
        if c["scenario"] == "latency" and c["runner"] == "torch":
            c["energy"] = {"available": True, "source": "rapl", "joules": 2.0, "samples": 200, "j_per_sample": 0.01}
    (t,) = tables("latency", doc=doc)
    row = dict(zip(t.headers, next(r for r in t.rows if r[0] == "torch")))
    assert row["energy / request"] == "0.01 J"
    assert dict(zip(t.headers, t.rows[0]))["energy / request"] == "-"


# ---------------------------------------------------------------- throughput sweep

def test_sweep_names_the_best_batch_and_shows_the_failed_points_with_reasons() -> None:
    rate, mem = tables("throughput")[0], tables("memory")[0]
    assert rate.headers[1:6] == ["batch 1", "batch 16", "batch 64", "batch 256", "batch 1024"]
    rows = {r[0]: dict(zip(rate.headers, r)) for r in rate.rows}
    assert rows["onnxruntime"]["best batch"] == "64"
    assert rows["torch"]["best batch"] in ("16 (within noise of 64)", "64 (within noise of 16)")
    assert rows["torch"]["batch 256"] == "out of memory" and rows["torch"]["batch 1024"] == "skipped"
    assert rows["onnxruntime"]["batch 1024"] == ""  # not part of its sweep
    assert any("torch batch 256: oom: batch 256 ran out of memory (--memory-limit 2G)" == n for n in rate.notes)
    assert any(n.startswith("torch batch 1024: skipped: batch 256 ran out") for n in rate.notes)
    assert [r[0] for r in rate.rows] == ["onnxruntime", "torch"]  # the higher best samples/s first
    (sweep,) = scenarios.sweeps(corpus())
    ort = next(line for line in sweep.lines if line.runner == "onnxruntime")
    b64 = next(p for p in ort.points if p.batch == 64)
    assert b64.rate_low < b64.rate < b64.rate_high and b64.rate == pytest.approx(1 / 4e-5, rel=0.05)
    assert rows["onnxruntime"]["batch 64"].startswith(scenarios.units.rate(b64.rate) + " (")
    mrows = {r[0]: dict(zip(mem.headers, r)) for r in mem.rows}
    assert mrows["torch"]["batch 64"] == "114.0 MiB RSS" and mrows["torch"]["batch 256"] == "-"


# ---------------------------------------------------------------- cold start

def test_cold_start_median_with_its_coverage() -> None:
    (t,) = tables("cold-start")
    assert [r[0] for r in t.rows] == ["onnxruntime", "torch"]
    q = quantile([2.1, 1.9, 2.5, 2.0, 2.2], 0.5)
    assert not q.attained and q.coverage == pytest.approx(0.9375)
    torch = dict(zip(t.headers, t.rows[1]))
    assert torch["total (median, CI)"] == "2.1 s (1.9–2.5 s, 93.75% CI)"
    assert torch["processes"] == "5" and torch["import"] == scenarios.units.seconds(2.1 * 0.6)
    assert t.values[1]["total"]["value"] == 2.1


# ---------------------------------------------------------------- the document

def test_report_renders_scenarios_deployment_and_hardware_rows() -> None:
    report = build_report([("run.json", scenario_doc())])
    md = render(report)
    assert "## Inference scenarios" in md and "### cnn — cpu, cold start" in md
    seed = {(t.key, r.key): r for t in report.seed_tables for r in t.rows}
    dep = seed[("pytorch_tensorflow", "deployment")].evidence
    lines = dep["pytorch"].parts
    assert any(re.fullmatch(r"cnn: onnxruntime p50 [\d.]+ µs vs torch [\d.]+ ms at batch 1", p) for p in lines), lines
    (tfl,) = dep["tensorflow"].parts
    assert tfl.startswith("cnn: tflite p50 ") and " vs tf-eager " in tfl and tfl.endswith("(output parity mismatch)")
    assert all(s.endswith(": step_s") for s in dep["pytorch"].sources)
    # the document's training rows read training cells: a sweep's out-of-memory point is not a failure there
    assert not seed[("pytorch_tensorflow", "graph")].evidence["pytorch"].findings
    hw = seed[("pytorch_tensorflow", "hardware")].evidence["pytorch"].parts
    assert "cnn (cpu): onnxruntime best batch 64: " in "".join(hw)
    assert any("torch best batch" in p and "(within noise of batch" in p for p in hw)
    # the summary names the scenario; cold-start cells (no steps) are left to their own table
    titles = [b.workload + " " + b.scenario for b in report.summary.blocks]
    assert "cnn@latency latency" in titles and not any("cold-start" in t for t in titles)
    assert "cnn@latency — cpu (latency: per request" in md
    assert not any(t.workload == "cnn@cold-start" for t in report.performance)


def test_chinese_headings() -> None:
    md = render(build_report([("run.json", scenario_doc())], lang="zh"))
    for heading in ("## 推理场景", "批大小 1 的延迟", "不同批大小的吞吐量", "冷启动", "最佳批大小", "能耗:不可用"):
        assert heading in md, heading
    assert "对比 torch" in md


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_sweep_plots_are_written(tmp_path) -> None:
    (sweep,) = scenarios.sweeps(corpus())
    series = dict((s[0], s) for s in plots.sweep_series(sweep, "sweep-throughput"))
    assert series["torch"][1] == [1, 16, 64]  # the out-of-memory and skipped points have no value
    assert all(lo >= 0 and hi >= 0 for s in series.values() for lo, hi in zip(s[3], s[4]))
    mem = dict((s[0], s) for s in plots.sweep_series(sweep, "sweep-memory"))
    assert mem["onnxruntime"][2] == [51.0, 66.0, 114.0, 306.0]
    made = plots.make_plots(corpus(), tmp_path, "en")
    rels = [rel for _, rel in made]
    assert "plots/cnn-cpu-sweep-throughput.png" in rels and "plots/cnn-cpu-sweep-memory.png" in rels
    for rel in rels:
        assert (tmp_path / rel).stat().st_size > 0 and _png_size(tmp_path / rel) == (800, 450)
    assert dict((rel, c) for c, rel in made)["plots/cnn-cpu-sweep-memory.png"] == \
        "cnn (cpu): peak memory vs batch size per runner"


def test_terminal_prints_the_scenario_tables() -> None:
    from fwbench.cli.console import print_run_tables

    buf = io.StringIO()
    print_run_tables(scenario_doc(), Console(file=buf, width=400))
    out = buf.getvalue()
    for what in ("latency at batch 1", "p50", "p99", "throughput across batch sizes", "out of memory",
                 "best batch", "cold start", "93.75% CI", "energy: not available (no RAPL / NVML)"):
        assert what in out, what
    assert "cnn@cold-start — cpu" not in out.split("Summary", 1)[-1]  # no empty summary block for cold start


def test_hostile_names_render_inert(tmp_path) -> None:
    from fwbench.cli.console import print_run_tables
    from test_hostile_text import MD, active

    doc = scenario_doc()
    evil = {"torch": "[/x]<img src=x onerror=alert(1)>", "onnxruntime": "`a`|b [l](javascript:x) \x1b[2J"}
    for c in doc["cells"]:
        c["runner"] = evil.get(c["runner"], c["runner"])
        c["base_workload"] = "# cnn *x* $y$"
        c["id"] = f"{c['workload']}/{c['runner']}/cpu/{c['repeat']}"
    md = render(build_report([("run.json", doc)]))
    html = MD.render(md)
    assert not [t for t in active(html) if t in ("a", "img", "script")], html
    assert "<img src=x" not in md and "\x1b" not in md and "\\# cnn \\*x\\* \\$y\\$" in md
    assert "[l](javascript" not in md
    buf = io.StringIO()
    print_run_tables(doc, Console(file=buf, force_terminal=True, width=400))
    out = buf.getvalue()
    assert "[/x]<img src=x onerror=alert(1)>" in out and "\x1b[2J" not in out
    made = plots.make_plots(corpus(doc), tmp_path, "en")  # `$y$` in a title or legend must not start mathtext
    assert all(re.fullmatch(r"plots/[A-Za-z0-9_-]+\.png", rel) for _, rel in made)


def test_scenarios_csv_holds_the_raw_figures(tmp_path) -> None:
    import csv
    import json

    from fwbench.report.write import write_report

    path = tmp_path / "run.json"
    path.write_text(json.dumps(scenario_doc()), encoding="utf-8")
    write_report([path], tmp_path / "rep", fmt="csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rep" / "scenarios.csv").read_text(encoding="utf-8"))))
    p99 = next(r for r in rows if r["scenario"] == "latency" and r["runner"] == "tflite" and r["stat"] == "p99")
    assert p99["attained"] == "False" and 0 < float(p99["coverage"]) < 0.95 and p99["n"] == "50"
    oom = next(r for r in rows if r["runner"] == "torch" and r["batch_size"] == "256" and r["stat"] == "samples_per_s")
    assert oom["status"] == "oom" and oom["value"] == ""
    total = next(r for r in rows if r["scenario"] == "cold-start" and r["runner"] == "torch" and r["stat"] == "total_s")
    assert float(total["value"]) == 2.1 and float(total["coverage"]) == pytest.approx(0.9375)
    write_report([path], tmp_path / "html", fmt="html")
    page = (tmp_path / "html" / "report.html").read_text(encoding="utf-8")
    assert "Inference scenarios" in page and page.count("data:image/png;base64,") >= 2
    write_report([path], tmp_path / "json", fmt="json")
    rep = json.loads((tmp_path / "json" / "report.json").read_text(encoding="utf-8"))
    assert {t["kind"] for t in rep["scenarios"]} == {"latency", "throughput", "memory", "cold-start"}


def test_show_prints_the_scenario_tables(cli, tmp_path) -> None:
    import json

    from conftest import invoke

    path = tmp_path / "run.json"
    path.write_text(json.dumps(scenario_doc()), encoding="utf-8")
    r = invoke(cli, "show", str(path))
    assert r.exit_code == 0, r.output
    for what in ("cnn — cpu, latency at batch 1", "cnn — cpu, throughput across batch sizes", "best batch",
                 "64 (within noise of 16)", "cnn — cpu, cold start", "(latency: per request"):
        assert what in r.output, what
    (sweep,) = scenarios.sweeps(corpus())
    assert plots.sweep_title(sweep, "sweep-throughput", "zh") == "cnn (cpu): 各运行器吞吐量随批大小变化(样本/秒,95% 置信区间)"
