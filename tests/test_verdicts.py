"""Verdicts on the source document's claims: the rules of docs/report.md ("Verdict rules") on fixture data.

Small made-up results documents in the shape of real cells (``step_s`` per process, ``first_step_s``) give the
speed rule each outcome: graph mode faster everywhere (supported), slower everywhere (contradicted), both
(mixed), and a difference inside the noise. The recorded fixture tests/golden/tiny_all.json gives the
probe-based rules theirs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from fwbench import results
from fwbench.report.build import build_report
from fwbench.report.labels import PHRASES, ROWS
from fwbench.report.markdown import render
from fwbench.report.model import VERDICTS, Evidence
from fwbench.report.seed import EVIDENCE
from fwbench.report.tabular import seed_csv, to_json
from fwbench.report.verdicts import RULES

GOLDEN = Path(__file__).resolve().parent / "golden"
PAIRS = (("torch", "torch-compile"), ("tf-eager", "tf-graph"))


def cell(workload: str, runner: str, median: float, repeat: int = 0, first: float = 0.5, spread: float = 0.02,
         status: str = "ok", reason: str = "") -> dict:
    """A timing cell as a worker writes it: 20 steps spread ±``spread`` around ``median``."""
    steps = [median * (1 + spread * ((i * 7 + repeat) % 11 - 5) / 5) for i in range(20)]
    c = {"id": f"{workload}/{runner}/cpu/{repeat}", "workload": workload, "runner": runner, "device": "cpu",
         "repeat": repeat, "status": status}
    if status != "ok":
        return {**c, "reason": reason}
    return {**c, "step_s": steps, "first_step_s": first,
            "summary": {"median": median, "ci_low": median * 0.99, "ci_high": median * 1.01, "n": 20}}


def doc(cells: list[dict], probes: list[dict] | None = None) -> dict:
    d = {"schema_version": 1, "run_id": "t", "config": {}, "workloads": {}, "environment": {"gpus": [], "tpu": False},
         "cells": cells}
    if probes is not None:
        d["probes"] = probes
    return results.check(d)


def speeds(graph_over_eager: dict[str, float], repeats: int = 1) -> dict:
    """Eager runners at 10 ms; each graph runner at 10 ms / ``graph_over_eager[workload]``."""
    cells = []
    for w, x in graph_over_eager.items():
        for eager, graph in PAIRS:
            for r in range(repeats):
                cells += [cell(w, eager, 0.010, r, first=0.2), cell(w, graph, 0.010 / x, r, first=2.0)]
    return doc(cells)


def evidence(d: dict, table: str, row: str, lang: str = "en") -> dict[str, Evidence]:
    report = build_report([("run.json", d)], lang=lang)
    t = next(t for t in report.seed_tables if t.key == table)
    return next(r for r in t.rows if r.key == row).evidence


def test_graph_mode_faster_on_every_workload_is_supported() -> None:
    ev = evidence(speeds({"cnn": 2.5, "mlp": 4.0}), "static_dynamic", "optimisation")
    assert ev["static"].verdict == "supported" and ev["dynamic"].verdict == "supported"
    assert ev["static"].why == "graph mode faster beyond noise on every workload (2.5–4.0×)"
    assert "cnn: torch-compile vs torch: 2.50× faster — 4 ms vs 10 ms" in ev["static"].parts


def test_graph_mode_slower_on_every_workload_is_contradicted() -> None:
    ev = evidence(speeds({"cnn": 0.5, "mlp": 0.8}), "static_dynamic", "optimisation")
    assert ev["static"].verdict == "contradicted" and ev["dynamic"].verdict == "contradicted"
    assert ev["static"].why == "graph mode slower beyond noise on every workload"
    assert any("2.00× slower" in p for p in ev["static"].parts)


def test_faster_on_one_workload_slower_on_another_is_mixed() -> None:
    ev = evidence(speeds({"cnn": 3.0, "mlp": 0.5}), "static_dynamic", "optimisation")
    assert ev["static"].verdict == "mixed"
    assert ev["static"].why == ("graph mode faster beyond noise in 2 of 4 comparisons, slower in 2, "
                                "same within noise in 0")


def test_a_difference_inside_the_noise_is_not_counted() -> None:
    d = doc([c for eager, graph in PAIRS
             for c in (cell("cnn", eager, 0.010, spread=0.3), cell("cnn", graph, 0.0099, spread=0.3))])
    ev = evidence(d, "static_dynamic", "optimisation")
    assert ev["static"].verdict == "mixed" and "same within noise in 2" in ev["static"].why
    assert all("same within noise" in p for p in ev["static"].parts)


def test_repeats_are_combined_and_cited_as_one_source() -> None:
    ev = evidence(speeds({"cnn": 2.0}, repeats=3), "static_dynamic", "optimisation")["static"]
    assert ev.verdict == "supported"
    assert len([c for c in ev.values["graph_vs_eager"]]) == 2  # one comparison per pair, not per process
    assert "run.json#cnn/torch/cpu/*: step_s" in ev.sources and "run.json#cnn/torch-compile/cpu/*: step_s" in ev.sources


def test_probe_rules_on_the_recorded_fixture() -> None:
    """tiny_all.json: keras cannot read a value in its step (contradicted), eager runners can (supported),
    torch-compile can but tf-graph cannot (mixed); three Keras back ends ran, none of them Theano or CNTK."""
    d = results.read(GOLDEN / "tiny_all.json")
    assert evidence(d, "keras_tensorflow", "debugging")["keras"].verdict == "contradicted"
    debugging = evidence(d, "static_dynamic", "debugging")
    assert debugging["dynamic"].verdict == "supported" and debugging["static"].verdict == "mixed"
    assert debugging["static"].why == "torch-compile: value readable inside the training step; tf-graph: not readable"
    backends = evidence(d, "keras_tensorflow", "backends")
    assert backends["keras"].verdict == "mixed"
    assert "Theano and CNTK are not Keras 3 back ends" in backends["keras"].why
    assert "tensorflow, torch, jax" in backends["keras"].why
    assert evidence(d, "static_dynamic", "flexibility")["dynamic"].verdict == "supported"
    ease = evidence(d, "pytorch_tensorflow", "ease")
    assert {e.verdict for e in ease.values()} == {"not_measured"}
    zh = evidence(d, "keras_tensorflow", "backends", lang="zh")["keras"]
    assert zh.verdict == "mixed" and "Theano 和 CNTK 不是 Keras 3 的后端" in zh.why


def test_only_one_keras_back_end_contradicts_the_claim() -> None:
    d = doc([cell("cnn", "keras", 0.01)])
    assert evidence(d, "keras_tensorflow", "backends")["keras"].verdict == "contradicted"


def test_failed_cells_are_not_measured_with_a_short_reason() -> None:
    d = doc([cell("cnn", "torch", 0.01),
             cell("cnn", "torch-compile", 0, status="failed",
                  reason="AttributeError: 'SymbolicTensor' object has no attribute 'numpy'\nmore lines")])
    ev = evidence(d, "static_dynamic", "optimisation")["static"]
    assert ev.verdict == "not_measured"
    assert "cnn torch-compile failed: AttributeError" in ev.parts
    assert ev.findings[0].detail.startswith("AttributeError: 'SymbolicTensor'")
    text = render(build_report([("run.json", d)]))
    assert "## Failures in full" in text
    assert "run.json · cnn/torch-compile/cpu/0 · status, reason: AttributeError: 'SymbolicTensor'" in text


def test_every_verdict_is_known_and_rendered_in_both_languages() -> None:
    d = results.read(GOLDEN / "tiny_all.json")
    for lang, words in (("en", ("supported", "contradicted", "mixed", "not measured")),
                        ("zh", ("支持", "与测量相反", "部分支持", "未测量"))):
        report = build_report([("tiny_all.json", d)], lang=lang)
        verdicts = {e.verdict for t in report.seed_tables for r in t.rows for e in r.evidence.values()}
        assert verdicts == set(VERDICTS)
        text = render(report)
        for w in words:
            assert f"**{w}** — " in text
        assert all(e.why for t in report.seed_tables for r in t.rows for e in r.evidence.values())
    assert all(f"verdict_{v}" in PHRASES["zh"] for v in VERDICTS)


def test_csv_and_json_carry_verdict_and_why() -> None:
    report = build_report([("tiny_all.json", results.read(GOLDEN / "tiny_all.json"))])
    rows = list(csv.DictReader(io.StringIO(seed_csv(report))))
    assert {r["verdict"] for r in rows} == set(VERDICTS) and all(r["why"] for r in rows)
    keras = next(r for r in rows if (r["table"], r["row"], r["column"]) == ("keras_tensorflow", "debugging", "keras"))
    assert keras["verdict"] == "contradicted"
    ev = json.loads(to_json(report))["seed_tables"][1]["rows"][5]["evidence"]["keras"]
    assert ev["verdict"] == "contradicted" and ev["why"] and ev["findings"][0]["sources"]


def test_rules_cover_exactly_the_measured_rows_and_are_documented() -> None:
    assert set(RULES) == set(EVIDENCE)
    for key, cols in RULES.items():
        assert set(cols) == set(EVIDENCE[key])
    docs = (Path(__file__).resolve().parents[1] / "docs" / "report.md").read_text(encoding="utf-8")
    rules = docs[docs.index("### Verdict rules"):]
    for table, rows in ROWS.items():
        for row_key, label_en, _, _ in rows:
            if (table, row_key) in RULES:
                assert label_en.lower() in rules.lower(), label_en


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_why_phrases_exist_in_both_languages(lang: str) -> None:
    assert {k for k in PHRASES["en"] if k.startswith("why_")} == {k for k in PHRASES[lang] if k.startswith("why_")}


def test_dynamic_graph_needs_the_eager_runner_and_a_readable_value() -> None:
    d = results.read(GOLDEN / "tiny_all.json")
    assert evidence(d, "pytorch_tensorflow", "graph")["pytorch"].verdict == "supported"
    d["cells"] = [c for c in d["cells"] if c["runner"] != "torch"]
    ev = evidence(d, "pytorch_tensorflow", "graph")["pytorch"]
    assert ev.verdict == "not_measured" and "(torch)" in ev.why
