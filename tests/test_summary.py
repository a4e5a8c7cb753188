"""The summary, repeats combined and precision you can trust (issue 17, items 1, 3, 4 and 7's `fwbench show`).

``tests/golden/repeats.json`` (see tests/golden/README.md): tinymlp on cpu with torch, tf-graph and keras
three worker processes each (``--repeats 3``), keras-jax one noisy process whose parity mismatched, and
tf-eager failed. Set FWBENCH_UPDATE_GOLDEN=1 to rewrite the expected summaries, then review the diff.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from conftest import invoke
from fwbench import export, results
from fwbench.cli.console import print_run_tables
from fwbench.estimate import Ratio, cell_estimate, group
from fwbench.report.build import build_report
from fwbench.report.combined import combine_doc, ratio_words, speedup_text, step_text
from fwbench.report.markdown import render
from fwbench.report.summary import markdown, summarise, terminal
from fwbench.report.tabular import performance_csv
from fwbench.tables import run_rows

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("FWBENCH_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def doc() -> dict:
    return results.read(GOLDEN / "repeats.json")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_golden_summary(doc, lang) -> None:
    text = "\n".join(markdown(summarise(combine_doc(doc, "repeats.json")), lang)) + "\n"
    expected = GOLDEN / f"summary.{lang}.md"
    if UPDATE:
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def test_summary_names_fastest_real_and_noise_parity_noisy_and_failed(doc) -> None:
    (block,) = summarise(combine_doc(doc)).blocks
    by = {line.runner: line for line in block.lines}
    assert block.fastest.runner == "keras" and by["keras"].estimate.processes == 3
    assert not by["tf-graph"].real and by["torch"].real  # 1.00× (0.95–1.05) is noise; 2.5× (2.4–2.6) is real
    assert by["keras-jax"].noisy and by["keras-jax"].ratio.uncertain
    assert by["tf-eager"].status == "failed" and "\n" not in by["tf-eager"].reason
    assert block.mismatched == ["keras-jax"]
    assert [line.runner for line in block.lines] == ["keras", "tf-graph", "keras-jax", "torch", "tf-eager"]


def test_one_centre_and_ci_everywhere(doc) -> None:
    """A cell of 3 processes (torch) and one of a single process (keras-jax): the report (table and CSV),
    export's CSV and the terminal table show the same centre and CI, cell_estimate's."""
    groups = group(results.cells(doc))
    expected = {r: cell_estimate(groups[("tinymlp", r, "cpu")]) for r in ("torch", "keras-jax")}
    assert expected["torch"].method == "processes" and expected["keras-jax"].method == "steps"
    report = build_report([("repeats.json", doc)])
    perf = {row["runner"]: row for row in csv.DictReader(io.StringIO(performance_csv(report)))}
    exported = {row["runner"]: row for row in csv.DictReader(io.StringIO(export.to_csv(doc)))}
    terminal_rows = {row["runner"]: row for row in run_rows(doc)["tinymlp"]}
    table_rows = {r.text["runner"]: r.text for t in report.performance for r in t.rows}
    for runner, e in expected.items():
        assert [float(perf[runner][k]) for k in ("median_s", "ci_low_s", "ci_high_s")] == pytest.approx(
            [e.centre_s, e.low_s, e.high_s], rel=1e-12)
        assert [float(exported[runner][k]) / 1e3 for k in ("median_ms", "ci_low_ms", "ci_high_ms")] == pytest.approx(
            [e.centre_s, e.low_s, e.high_s], rel=1e-5)  # export keeps six significant digits
        assert int(perf[runner]["processes"]) == int(exported[runner]["processes"]) == e.processes
        assert terminal_rows[runner]["step (95% CI)"] == table_rows[runner]["step"] == step_text(e)
        assert terminal_rows[runner]["processes"] == table_rows[runner]["processes"] == str(e.processes)
    assert len(report.performance[0].rows) == 5 and "torch #1" not in render(report)  # one row per runner


def test_noisy_cells_are_marked_and_speedups_against_them_uncertain(doc) -> None:
    report = build_report([("repeats.json", doc)])
    rows = {r.text["runner"]: r.text for r in report.performance[0].rows}
    assert "noisy: ±35%" in rows["keras-jax"]["status"] and rows["keras-jax"]["speedup"].startswith("~")
    assert rows["tf-graph"]["speedup"] == "2.50× faster (2.42–2.59)" and "noisy" not in rows["tf-graph"]["status"]
    assert rows["torch"]["speedup"] == "ref"
    assert report.performance[0].legend and "~" in report.performance[0].legend[0]
    term = {row["runner"]: row for row in run_rows(doc)["tinymlp"]}
    assert term["keras-jax"]["status"] == "ok · noisy ±35%" and term["torch"]["status"] == "ok"


def test_ratios_are_rounded_to_their_ci() -> None:
    assert speedup_text(Ratio(1 / 17.05, 1 / 24, 1 / 12, "steps", True)) == "~17× faster (12–24)"
    assert speedup_text(Ratio(1.234, 1.22, 1.25, "processes", False)) == "1.23× slower (1.22–1.25)"
    wide = ratio_words(Ratio(25.0, 0.08, 84.0, "steps", True))
    assert (wide.x, wide.low, wide.high) == ("25", "0.08", "84")  # a bound never prints as 0


def test_disagreeing_peaks_get_a_note(doc) -> None:
    report = build_report([("repeats.json", doc)])
    (note,) = report.utilisation_notes
    assert "134 GFLOP/s–302 GFLOP/s" in note and "2.25× apart" in note and "not comparable" in note
    same = copy.deepcopy(doc)
    for c in same["cells"]:
        if c.get("peak_flops"):
            c["peak_flops"] = 2.0e11 * (1.2 if c["runner"] == "torch" else 1.0)  # within 1.25×: no note
    assert build_report([("r.json", same)]).utilisation_notes == []
    assert "实测峰值不一致" not in render(build_report([("r.json", same)], lang="zh"))
    assert "实测峰值不一致" in render(build_report([("r.json", doc)], lang="zh"))


def test_terminal_prints_tables_then_summary(doc) -> None:
    buf = io.StringIO()
    print_run_tables(doc, Console(file=buf, width=200))
    out = buf.getvalue()
    summary = out[out.index("\nSummary\n"):]
    assert "tinymlp — cpu: parity ✗ mismatch: keras-jax" in summary
    assert "keras      fastest, 3.92 ms (3.68–4.18 ms), 3 processes" in summary
    assert "torch      2.5× slower (95% CI 2.3–2.7), real difference" in summary
    assert "tf-graph   1.00× slower (95% CI 0.95–1.05), within noise" in summary
    assert "~2.2× slower" in summary and "noisy: ±35%" in summary
    assert "#1" not in out
    assert [t.plain for t in terminal(summarise([]))] == []


def _ab(doc: dict) -> dict:
    ab = copy.deepcopy(doc)
    env = ab["environment"]
    ab["ab"] = {"rounds": 1, "order": "AB", "sides": {s: {"label": f"py-{s}", "python": "/usr/bin/python3", "env": {},
                                                          "environment": env} for s in "AB"}}
    ab["cells"] = [{**c, "id": f"{s}:{c['id']}", "side": s} for s in "AB" for c in doc["cells"]]
    return ab


def test_show(cli, doc, tmp_path) -> None:
    r = invoke(cli, "show", str(GOLDEN / "repeats.json"))
    assert r.exit_code == 0, r.output
    assert "fwbench run -r torch" in r.output and "step (95% CI)" in r.output and "\nSummary\n" in r.output
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(_ab(doc)), encoding="utf-8")
    both = invoke(cli, "show", str(path))
    assert both.exit_code == 0, both.output
    assert both.output.count("\nSummary\n") == 2 and "(side A: py-A)" in both.output and "(side B: py-B)" in both.output
    one = invoke(cli, "show", str(path), "--side", "B")
    assert one.exit_code == 0 and one.output.count("\nSummary\n") == 1 and "side A" not in one.output
    assert invoke(cli, "show", str(path), "--side", "C").exit_code == 2
    assert invoke(cli, "show", str(tmp_path / "nope.json")).exit_code == 2


def test_processes_are_combined_within_a_file_never_across_files(doc) -> None:
    other = copy.deepcopy(doc)
    other["run_id"] = "second"
    report = build_report([("a.json", doc), ("b.json", other)])
    (table,) = report.performance  # one machine: one table, a row per runner and file
    names = [r.text["runner"] for r in table.rows]
    assert "torch [a.json]" in names and "torch [b.json]" in names and len(names) == 10
    assert {r.values["processes"] for r in table.rows if r.values["runner"] == "torch"} == {3}
    lines = [line.runner for line in report.summary.blocks[0].lines]
    assert lines[:2] in (["keras [a.json]", "keras [b.json]"], ["keras [b.json]", "keras [a.json]"])


def test_ratio_bounds_are_rounded_outward_so_the_printed_interval_holds_the_computed_one():
    from fwbench.estimate import Ratio
    from fwbench.report.combined import ratio_words

    t = ratio_words(Ratio(1.4, 0.98, 1.91, "processes", False))  # 1.4× slower, CI straddles 1
    assert (t.x, t.low, t.high, t.apart) == ("1.4", "0.9", "2.0", False)
    t = ratio_words(Ratio(1 / 2.5, 1 / 2.58, 1 / 2.42, "processes", False))  # 2.5× faster
    assert float(t.low) <= 2.42 and float(t.high) >= 2.58 and t.x == "2.50"


def test_a_real_difference_never_prints_a_bound_of_one():
    from fwbench.estimate import Ratio
    from fwbench.report.combined import ratio_words

    t = ratio_words(Ratio(1.12, 1.02, 1.3, "processes", False))
    assert t.apart and (t.x, t.low, t.high) == ("1.1", "1.02", "1.30")
    t = ratio_words(Ratio(1 / 1.12, 1 / 1.3, 1 / 1.02, "processes", False))  # the same, read as faster
    assert not t.slower and float(t.low) > 1.0
