"""The report's reader's context: runner guide, workload definitions, the commands that made the files."""

from __future__ import annotations

import copy
import html
import re
import shlex
from pathlib import Path

from markdown_it import MarkdownIt

from fwbench import flops, results
from fwbench.report.build import build_report
from fwbench.report.context import RUNNER_GUIDE, commands, layers_text
from fwbench.report.markdown import render
from fwbench.workload_spec import WorkloadSpec
from test_compare import cell, doc
from test_hostile_text import active, hostile_results

GOLDEN = Path(__file__).resolve().parent / "golden"
MD = MarkdownIt("commonmark").enable("table")


def section(md: str, title: str) -> str:
    """The markdown of one ``## title`` section."""
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_runner_guide_names_only_the_runners_present() -> None:
    d = doc([cell(runner="keras-jax"), cell(runner="torch"), cell(runner="torch", repeat=1)])
    report = build_report([("run.json", d)])
    assert [name for name, _ in report.context.runners] == ["torch", "keras-jax"]  # the guide's order
    md = render(report)
    ctx = section(md, "Reader's context")
    assert "PyTorch, eager" in ctx and "Keras 3 on JAX" in ctx and "tf-xla" not in ctx
    assert md.index("## Environment") < md.index("## Reader's context") < md.index("## Parity")
    zh = render(build_report([("run.json", d)], lang="zh"))
    assert RUNNER_GUIDE["keras-jax"][1].replace("_", "\\_") in section(zh, "读者须知")


def test_workload_definitions_come_from_the_document() -> None:
    d = results.read(GOLDEN / "tiny_all.json")
    report = build_report([("tiny_all.json", d)])
    tinycnn = next(w for w in report.context.workloads if w.name == "tinycnn")
    assert tinycnn.layers == "conv 3×3×3 → relu → maxpool 2 → flatten → dense 4"
    assert tinycnn.parameters == 3 * 3 * 1 * 3 + 3 + 27 * 4 + 4  # 142
    assert (tinycnn.mode, tinycnn.batch, tinycnn.input_shape) == ("train", 4, "8×8×1")
    recorded = next(c["flops_per_step"] for c in d["cells"] if c["workload"] == "tinycnn")
    assert tinycnn.flops_per_step == recorded == flops.flops_per_step(WorkloadSpec.from_dict(d["workloads"]["tinycnn"]))
    ctx = section(render(report), "Reader's context")
    assert "| tinycnn | train | 4 | 8×8×1 | 142 | 18.1 kFLOP | conv 3×3×3 → relu → maxpool 2 → flatten → dense 4 |" in ctx
    # a stored definition is used even where the installed workload of that name differs ...
    cnn = copy.deepcopy(d["workloads"]["tinymlp"]) | {"name": "cnn"}
    mine = build_report([("r.json", doc([cell(workload="cnn")], workloads={"cnn": cnn}))]).context.workloads
    assert mine[0].layers == "dense 5 → relu → dense 3" and mine[0].parameters == 53
    assert mine[0].flops_per_step == flops.flops_per_step(WorkloadSpec.from_dict(cnn))  # computed: not recorded
    # ... and one that is absent or does not parse still gives a row
    broken = {"cnn": {"name": "cnn", "layers": [{"kind": "dense", "units": 3, "bogus": 1}]}}
    (row,) = build_report([("r.json", doc([cell(workload="cnn")], workloads=broken))]).context.workloads
    assert row.parameters is None and row.layers == "dense 3"
    (row,) = build_report([("r.json", doc([cell(workload="w")]))]).context.workloads
    assert (row.name, row.parameters, row.layers) == ("w", None, "")


def test_long_networks_are_cut_in_the_middle() -> None:
    text = layers_text([{"kind": "dense", "units": n, "activation": "linear"} for n in range(1, 21)], "en")
    assert text.startswith("dense 1 → dense 2") and text.endswith("dense 18 → dense 19 → dense 20")
    assert "… 9 more …" in text and text.count("→") == 11


def test_the_command_of_each_file_is_shell_quoted() -> None:
    argv = ["run", "-w", "a b; rm -rf ~", "-w", "$(id)", "-o", "out.json"]
    d = doc([cell()])
    d["config"] = {"argv": argv}
    ((label, cmd),) = commands([("run.json", d)])
    assert label == "run.json" and shlex.split(cmd) == ["fwbench", *argv]
    md = section(render(build_report([("run.json", d), ("old.json", doc([cell()]))])), "Reader's context")
    assert f"- run.json: `{cmd}`" in md and "- old.json: *not recorded*" in md
    # the two sides of an `fwbench ab` file share one line
    ab = {"run_id": "r", "config": {"argv": ["ab", "--a-python", "/x/py"]}}
    sides = [(f"ab.json [{s}]", ab | {"run_id": f"r:{s}"}) for s in "AB"]
    assert commands(sides) == [("ab.json", "fwbench ab --a-python /x/py")]


def test_hostile_names_are_inert(tmp_path: Path) -> None:
    d = results.read(hostile_results(tmp_path))
    d["config"]["argv"] = ["run", "-w", "x`<img src=x onerror=alert(1)>`[a](javascript:alert(1))"]
    d["cells"][0]["runner"] = "[a](javascript:alert(1))<b>"
    md = section(render(build_report([("run `[x](y)` <b>.json", d)])), "Reader's context")
    out = MD.render(md)
    assert not [t for t in active(out) if t not in ("h3", "li", "em")], out
    assert "<img" not in md and "<b>" not in md and not re.search(r"(?<!\\)\]\(", md)  # inert raw, too
    assert "not a runner this fwbench knows" in md
    line = next(x for x in md.splitlines() if "fwbench run" in x)
    text = html.unescape(re.sub(r"</?(p|code)>", "", MD.render(line.split(": ", 1)[1]))).strip()
    assert shlex.split(text) == ["fwbench", *d["config"]["argv"]]  # the rendered command pastes back as is
