"""Reports: golden markdown (en and zh) from fixed result fixtures, traceable evidence, CSV/JSON, plots, CLI.

The fixtures in tests/golden/ are results files written by real fwbench runs on this project's tiny
workloads (see tests/golden/README.md). Set FWBENCH_UPDATE_GOLDEN=1 to rewrite the expected markdown after
an intended change, then review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
from pathlib import Path

import pytest

from conftest import invoke
from fwbench import results
from fwbench.errors import ResultsError
from fwbench.report.build import build_report
from fwbench.report.derived import break_even_steps
from fwbench.report.labels import ROWS
from fwbench.report.markdown import render
from fwbench.report.plots import DPI, FIG_SIZE_IN
from fwbench.report.write import write_report

GOLDEN = Path(__file__).resolve().parent / "golden"
FIXTURES = {"full": ["tiny_all.json"], "partial": ["tiny_partial.json"], "repeats": ["repeats.json"]}
UPDATE = os.environ.get("FWBENCH_UPDATE_GOLDEN") == "1"


def docs(name: str) -> list[tuple[str, dict]]:
    return [(f, results.read(GOLDEN / f)) for f in FIXTURES[name]]


@pytest.mark.parametrize("name", sorted(FIXTURES))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_golden_markdown(name: str, lang: str) -> None:
    text = render(build_report(docs(name), lang=lang))
    expected = GOLDEN / f"{name}.{lang}.md"
    if UPDATE:
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def test_zh_uses_the_documents_own_labels() -> None:
    text = render(build_report(docs("full"), lang="zh"))
    for label in ("计算图", "易用性", "调试和可视化", "社区和支持", "硬件加速", "API 风格", "部署支持", "分布式训练",
                  "功能定位", "API级别", "底层框架支持", "静态图 (Static)", "动态图 (Dynamic)", "计算图构建", "灵活性",
                  "性能优化", "调试", "适用场景"):
        assert f"| {label} |" in text or f"| {label}" in text, label
    # the document's own claims, quoted
    assert "动态计算图(Dynamic Computation Graph),运行时构建计算图,灵活且易于调试" in text
    assert "未测量" in text


def test_rows_without_a_measurement_show_the_claim_marked_not_measured() -> None:
    report = build_report(docs("full"))
    table = {t.key: t for t in report.seed_tables}
    for table_key, row_key in (("pytorch_tensorflow", "ease"), ("pytorch_tensorflow", "community"),
                               ("pytorch_tensorflow", "api"), ("keras_tensorflow", "role"),
                               ("static_dynamic", "scenarios")):
        row = next(r for r in table[table_key].rows if r.key == row_key)
        assert all(e.status == "not_measured" for e in row.evidence.values())
        assert all(row.claims.values())
    # every row of the document is present, in its order
    for key, rows in ROWS.items():
        assert [r.key for r in table[key].rows] == [r[0] for r in rows]


def _resolve(record: dict, path: str) -> object:
    """``summary.median`` or ``findings.shapes[1]`` inside a record; raises KeyError/IndexError if absent."""
    value: object = record
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        assert m, part
        value = value[m.group(1)]  # type: ignore[index]
        if m.group(2) is not None:
            value = value[int(m.group(2))]  # type: ignore[index]
    return value


def test_every_measured_cell_traces_back_to_a_results_field() -> None:
    d = docs("full")
    by_file = {label: doc for label, doc in d}
    report = build_report(d)
    measured = 0
    for table in report.seed_tables:
        for row in table.rows:
            for ev in row.evidence.values():
                if ev.status != "measured":
                    continue
                measured += 1
                assert ev.sources
                for src in ev.sources:
                    file, _, rest = src.partition("#")
                    record_id, _, fields = rest.partition(": ")
                    doc = by_file[file]
                    if record_id == "environment":
                        record = doc["environment"]
                        assert all(f in record for f in fields.split(", "))
                        continue
                    records = doc["cells"] + doc.get("probes", [])
                    if record_id.endswith("/*"):  # all repeats of one cell, combined
                        found = [r for r in records if r["id"].rsplit("/", 1)[0] == record_id[:-2]]
                    else:
                        found = [next(r for r in records if r["id"] == record_id)]
                    assert found, src
                    for record in found:
                        for field in fields.split(", "):
                            _resolve(record, field)
    assert measured >= 15  # the full fixture backs most measurable cells
    for table in report.performance:
        for row in table.rows:
            file, _, cell_id = row.source.partition("#")
            assert any(c["id"] == cell_id for c in by_file[file]["cells"])


def test_missing_evidence_names_the_run_that_would_fill_it() -> None:
    text = render(build_report(docs("partial")))
    assert "run `fwbench run -r tf-eager -r tf-graph -r tf-xla -w tinymlp`" in text
    assert "run `fwbench probe -r torch -p export-torch -p export-onnx -p export-torchscript`" in text
    assert "timeout" in text  # the cell that did not finish is shown with its status, not dropped


def test_speedup_is_relative_to_the_reference_runner() -> None:
    report = build_report(docs("full"), reference="tf-graph")
    for table in report.performance:
        ref = next(r for r in table.rows if r.values["runner"] == "tf-graph")
        assert ref.values["speedup"] == pytest.approx(1.0)
        for r in table.rows:
            if r.values["speedup"] is not None:
                assert r.values["speedup"] == pytest.approx(ref.values["median_s"] / r.values["median_s"])


def test_break_even() -> None:
    assert break_even_steps(0.1, 0.010, 1.1, 0.005) == 201  # 1 s extra / 5 ms saved per step, +1 first step
    assert break_even_steps(0.1, 0.010, 0.1, 0.005) == 1
    assert break_even_steps(0.1, 0.010, 2.0, 0.010) is None  # never faster per step: never pays back
    n = break_even_steps(0.2, 0.012, 3.0, 0.004)
    assert 0.2 + (n - 1) * 0.012 >= 3.0 + (n - 1) * 0.004
    assert 0.2 + (n - 2) * 0.012 < 3.0 + (n - 2) * 0.004


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_markdown_report_with_plots(tmp_path: Path) -> None:
    written = write_report([GOLDEN / "tiny_all.json"], tmp_path, fmt="markdown", lang="en")
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 6  # throughput, memory and first step, step times: for tinycnn and tinymlp
    for png in pngs:
        assert png.stat().st_size > 5000  # drawn, not blank
        assert _png_size(png) == (int(FIG_SIZE_IN[0] * DPI), int(FIG_SIZE_IN[1] * DPI))
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    for png in pngs:
        assert f"]({png.relative_to(tmp_path).as_posix()})" in md


def test_csv_and_json(tmp_path: Path) -> None:
    write_report([GOLDEN / "tiny_all.json"], tmp_path, fmt="csv", plots=False)
    doc = results.read(GOLDEN / "tiny_all.json")
    perf = list(csv.DictReader(io.StringIO((tmp_path / "performance.csv").read_text(encoding="utf-8"))))
    assert len(perf) == len(doc["cells"])
    ok = next(r for r in perf if r["status"] == "ok")
    cell = next(c for c in doc["cells"] if c["id"] == ok["source"].split("#")[1])
    assert float(ok["median_s"]) == cell["summary"]["median"]
    seed = list(csv.DictReader(io.StringIO((tmp_path / "seed_tables.csv").read_text(encoding="utf-8"))))
    assert len(seed) == 2 * sum(len(rows) for rows in ROWS.values())
    assert {r["status"] for r in seed} <= {"measured", "failed", "missing", "not_measured"}
    probes = list(csv.DictReader(io.StringIO((tmp_path / "probes.csv").read_text(encoding="utf-8"))))
    assert len(probes) == len(doc["probes"])
    write_report([GOLDEN / "tiny_all.json"], tmp_path, fmt="json", lang="zh")
    rep = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert rep["lang"] == "zh" and len(rep["seed_tables"]) == 3
    assert rep["seed_tables"][0]["rows"][0]["label"] == "计算图"


def test_cli_report(cli, tmp_path: Path) -> None:
    r = invoke(cli, "report", str(GOLDEN / "tiny_all.json"), str(GOLDEN / "tiny_partial.json"), "--lang", "zh",
               "--no-plots", "-o", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    text = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "tiny_all.json#" in text and "tiny_partial.json#" in text
    r = invoke(cli, "report", str(GOLDEN / "tiny_all.json"), "--format", "pdf", "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "unknown format" in r.output
    r = invoke(cli, "report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "no such file" in r.output


def test_results_check_probes() -> None:
    doc = results.read(GOLDEN / "tiny_partial.json")
    assert "probes" not in doc  # documents without probes still load
    bad = json.loads((GOLDEN / "tiny_all.json").read_text(encoding="utf-8"))
    bad["probes"][0]["status"] = "maybe"
    with pytest.raises(ResultsError, match="probes\\[0\\]"):
        results.check(bad)
    bad["probes"] = {"not": "a list"}
    with pytest.raises(ResultsError, match="probes"):
        results.check(bad)


def test_distributed_rows_from_data_parallel_cells() -> None:
    """A real 2-worker run (`fwbench run --workload ddp -f torch -f tensorflow`) backs the distributed rows."""
    doc = results.read(GOLDEN / "ddp_cpu.json")
    report = build_report([("ddp_cpu.json", doc)])
    row = next(r for r in report.seed_tables[0].rows if r.key == "distributed")
    for column in ("pytorch", "tensorflow"):
        ev = row.evidence[column]
        assert ev.status == "measured" and "2 workers" in ev.parts[0]
        for src in ev.sources:
            record_id, _, fields = src.partition("#")[2].partition(": ")
            cell = next(c for c in doc["cells"] if c["id"] == record_id)
            for field in fields.split(", "):
                _resolve(cell, field)
    keras = next(r for r in report.seed_tables[1].rows if r.key == "distributed").evidence["keras"]
    assert keras.status == "missing" and keras.hints == ["fwbench run -r keras -w ddp"]


def test_hardware_row_speedup_over_cpu() -> None:
    """Pure rendering: a runner that ran on cpu and cuda gets its speedup over CPU (made-up test input)."""
    def cell(device: str, median: float) -> dict:
        return {"id": f"w/torch/{device}/0", "workload": "w", "runner": "torch", "family": "torch",
                "device": device, "repeat": 0, "status": "ok", "first_step_s": 1.0,
                "summary": {"median": median, "ci_low": median, "ci_high": median, "n": 5}}

    doc = {"schema_version": 1, "run_id": "t", "config": {}, "workloads": {},
           "environment": {"gpus": [{"name": "GPU"}], "tpu": False},
           "cells": [cell("cpu", 0.008), cell("cuda", 0.002)]}
    row = next(r for r in build_report([("t.json", results.check(doc))]).seed_tables[0].rows if r.key == "hardware")
    ev = row.evidence["pytorch"]
    assert "ran on cpu, cuda" in ev.parts[0] and any("cuda vs CPU: 4.00× faster, uncertain" in p for p in ev.parts)
    assert "t.json#w/torch/cuda/0: step_s" in ev.sources
    assert ev.verdict == "mixed"  # no step samples, no CI: the difference is not shown beyond noise
