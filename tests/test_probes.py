"""Capability probes: the framework-free parts fast; every probe for real in workers (tiny shapes, slow)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke
from fwbench.config import RunnerOptions
from fwbench.probes.catalog import PROBES, select
from fwbench.probes.context import compare_outputs
from fwbench.probes.shapes import bad_input, clean, error_tail, mismatch, names_layer, names_shapes, shape_error
from fwbench.workload import load_workload


def test_bad_input_breaks_the_first_dense_layer(workload_dir: Path) -> None:
    cnn = load_workload("tinycnn")
    x = np.zeros((4, 8, 8, 1), np.float32)
    bad, case = bad_input(cnn, x)
    assert bad.shape == (4, 12, 12, 1) and "8x8" in case
    assert mismatch(cnn, bad.shape[1:]) == (3, 27, 75)  # conv 3x3 -> pool 2 -> flatten -> dense: 3*3*3 vs 5*5*3
    mlp = load_workload("tinymlp")
    bad, _ = bad_input(mlp, np.zeros((4, 6), np.float32))
    assert mismatch(mlp, bad.shape[1:]) == (0, 6, 7)


def test_reading_error_messages(workload_dir: Path) -> None:
    dense = load_workload("tinycnn").layers[3]
    assert names_shapes("mat1 and mat2 shapes cannot be multiplied (4x75 and 27x4)", 27, 75)
    assert not names_shapes("shapes cannot be multiplied", 27, 75)
    assert names_layer("Input 0 of layer 'dense' is incompatible", dense, ["Dense"], ("dense",))
    assert not names_layer("Matrix size-incompatible: In[0]: [4,75] [Op:MatMul]", dense, [])
    assert clean("{{function_node __wrapped__MatMul_device_/CPU:0}} Matrix\n size \x1b[1mbad\x1b[0m") == "Matrix size bad"


def test_one_shape_error_probe_for_every_framework(workload_dir: Path) -> None:
    """The probe logic is shared; a framework passes its forward pass and the names its layers go by."""
    cnn = load_workload("tinycnn")
    x = np.zeros((4, 8, 8, 1), np.float32)
    seen = []

    def forward(bad: np.ndarray) -> None:
        seen.append(bad.shape)
        raise ValueError("Input 0 of layer \x1b[1m'dense_7'\x1b[0m is incompatible: expected 27,\n found 75")

    out = shape_error(cnn, x, forward, lambda i: (["Dense"], [f"dense_{i + 4}"]))
    assert seen == [(4, 12, 12, 1)]
    assert out["raised"] and out["error_type"] == "ValueError" and out["case"] == "image 8x8 → 12x12"
    assert out["offending_layer"] == "3: dense (dense_7)" and (out["expected"], out["got"]) == (27, 75)
    assert out["names_layer"] and out["names_shapes"] and "\n" not in out["message"]
    plain = shape_error(cnn, x, forward)  # no layer objects (plain tf.nn ops): nothing to name
    assert plain["offending_layer"] == "3: dense" and not plain["names_layer"]
    quiet = shape_error(cnn, x, lambda bad: None)
    assert quiet == {"raised": False, "case": "image 8x8 → 12x12", "names_layer": False, "names_shapes": False,
                     "message": ""}
    assert error_tail("in user code: File x.py ValueError: bad shape", 5) == "bad s"


def test_compare_outputs() -> None:
    ref = np.array([[1.0, -2.0]], np.float32)
    assert compare_outputs(ref, ref + 1e-6)["reproduces"]
    out = compare_outputs(ref, ref + 1e-2)
    assert not out["reproduces"] and out["max_abs_diff"] == pytest.approx(1e-2, rel=1e-3)
    assert not compare_outputs(ref, ref[:, :1])["reproduces"]


def test_catalog_selection() -> None:
    pairs = select(["export-onnx"], [])
    assert [(p.name, r) for p, r in pairs] == [("export-onnx", "torch")]
    assert all(r in ("tf-eager", "tf-graph", "tf-xla") for _, r in select(["shape-change"], ["tf-graph", "tf-eager", "tf-xla"]))
    assert {p.kind for p in PROBES.values()} == {"debugging", "flexibility", "deployment"}


def _probes(path: Path) -> dict[str, dict]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {f"{p['probe']}/{p['runner']}": p for p in doc["probes"]}


@pytest.mark.slow
def test_torch_probes_through_run(cli, workload_dir: Path, tmp_path: Path) -> None:
    """`fwbench run --probes`: the run's cells, then every torch probe, into one results file, and a report."""
    out = tmp_path / "run.json"
    r = invoke(cli, "run", "-r", "torch", "-r", "torch-compile", "-w", "tinycnn", "--probes", "-o", str(out))
    assert r.exit_code == 0, r.output
    p = _probes(out)
    assert set(p) == {"debug-value/torch", "debug-value/torch-compile", "shape-error/torch", "shape-change/torch",
                      "shape-change/torch-compile", "export-torch/torch", "export-onnx/torch",
                      "export-torchscript/torch"}
    assert all(x["status"] == "ok" for x in p.values()), {k: x.get("reason") for k, x in p.items()}
    assert p["debug-value/torch"]["findings"]["concrete_value"] is True
    assert p["debug-value/torch-compile"]["findings"]["graph_breaks"] >= 1  # .item() splits the compiled graph
    err = p["shape-error/torch"]["findings"]
    assert err["raised"] and err["names_shapes"] and not err["names_layer"]
    assert p["shape-change/torch"]["findings"]["retraces_total"] == 0
    assert p["shape-change/torch-compile"]["findings"]["shapes"][1]["retraces"] >= 1  # new batch size: recompile
    for name in ("export-torch", "export-onnx", "export-torchscript"):  # round trips: outputs compared
        f = p[f"{name}/torch"]["findings"]
        assert f["reproduces"] and f["artifact_bytes"] > 0 and f["max_abs_diff"] <= f["tolerance"]
    r = invoke(cli, "report", str(out), "--no-plots", "-o", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    assert "torch.export ✓" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_tensorflow_and_keras_probes(cli, workload_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "probes.json"
    r = invoke(cli, "probe", "-f", "tensorflow", "-f", "keras", "-w", "tinymlp", "-o", str(out))
    assert r.exit_code == 0, r.output
    p = _probes(out)
    assert p["debug-value/tf-eager"]["findings"]["concrete_value"] is True
    graph = p["debug-value/tf-graph"]["findings"]
    assert graph["concrete_value"] is False and "numpy" in graph["error"]  # symbolic tensor under tf.function
    assert p["debug-value/keras"]["findings"]["concrete_value"] is False  # train_on_batch is compiled
    assert p["shape-error/tf-eager"]["findings"]["names_shapes"]
    assert p["shape-error/keras"]["findings"]["names_layer"]  # Keras names the layer (dense)
    assert p["shape-change/tf-graph"]["findings"]["shapes"][1]["retraces"] == 1  # a new shape retraces
    assert p["shape-change/tf-eager"]["findings"]["retraces_total"] == 0
    for name in ("export-savedmodel", "export-tflite"):  # round trips: outputs compared
        f = p[f"{name}/tf-graph"]["findings"]
        assert p[f"{name}/tf-graph"]["status"] == "ok" and f["reproduces"] and f["artifact_bytes"] > 0
    onnx = p["export-tf2onnx/tf-graph"]
    assert onnx["status"] in ("ok", "skipped")
    if onnx["status"] == "skipped":
        assert "tf2onnx not installed" in onnx["reason"]


def test_a_globally_pooled_network_gets_an_extra_channel_that_its_first_conv_refuses() -> None:
    from fwbench.workload import load_workload

    for name in ("resnet20", "mobilenet"):
        spec = load_workload(name)
        bad, case = bad_input(spec, np.zeros((2, *spec.input_shape), np.float32))
        assert case == "channels 3 → 4" and bad.shape == (2, *spec.input_shape[:2], 4)
        assert mismatch(spec, bad.shape[1:]) == (0, 3, 4)


def test_seq_length_probe_trains_one_session_at_three_lengths() -> None:
    """The probe's mechanics on the fake runner (no graph: nothing to count); real runners: tests/test_e2e_sequence.py."""
    from fwbench.job import Job
    from fwbench.probes.context import ProbeContext
    from fwbench.probes.session_probes import sequence_length, sequence_lengths
    from fwbench.workload_spec import parse_workload
    from conftest import TINY_LM

    assert sequence_lengths(64) == [32, 48, 64] and sequence_lengths(6) == [3, 4, 6] and sequence_lengths(1) == [1]
    spec = parse_workload(tomllib.loads(TINY_LM))
    ctx = ProbeContext.from_job(Job(workload=spec.to_dict(), runner="fake", device="cpu", probe="seq-length"))
    f = sequence_length(ctx)
    assert [l["length"] for l in f["lengths"]] == [3, 4, 6] and not f["counted"] and f["retraces_total"] == 0
    assert all(l["first_call_s"] > 0 and l["steady_s"] > 0 for l in f["lengths"])


def test_seq_length_probe_is_planned_for_token_workloads_only(cli, workload_dir: Path, tmp_path: Path) -> None:
    from fwbench.probes.run import plan_probes

    pairs = select(["seq-length", "shape-change"], ["torch"])
    jobs = plan_probes(pairs, [load_workload(w).to_dict() for w in ("tinycnn", "tinylm")], ["cpu"], RunnerOptions())
    assert sorted(j.cell_id for j in jobs) == ["tinycnn/shape-change/torch/cpu", "tinylm/seq-length/torch/cpu",
                                               "tinylm/shape-change/torch/cpu"]
    r = invoke(cli, "probe", "-p", "seq-length", "-r", "torch", "-w", "tinycnn", "-o", str(tmp_path / "p.json"))
    assert r.exit_code == 2 and "token ids" in r.output


def test_shape_error_input_of_a_token_workload() -> None:
    lm = load_workload("transformer")
    x = np.zeros((2, 64), np.int64)
    bad, case = bad_input(lm, x)
    assert bad.shape == (2, 65) and "position table 64" in case
    assert mismatch(lm, bad.shape[1:]) == (1, 64, 65)
    clf = load_workload("lstm")
    bad, case = bad_input(clf, np.zeros((2, 16), np.int64))
    assert bad.shape == (2, 16) and bad[0, 0] == 32 and "vocabulary 32" in case
    assert mismatch(clf, bad.shape[1:]) == (0, 32, 33)


@pytest.mark.slow
def test_seq_length_probe_through_the_cli_counts_tf_graph_retraces(cli, workload_dir: Path, tmp_path: Path) -> None:
    """`fwbench probe -p seq-length` on a token workload: tf.function retraces for a new length (counted),
    eager torch has no graph (0, not counted); the report's flexibility row cites the probe."""
    out = tmp_path / "p.json"
    r = invoke(cli, "probe", "-p", "seq-length", "-r", "tf-graph", "-r", "torch", "-w", "tinylm", "--threads", "1",
               "-o", str(out))
    assert r.exit_code == 0, r.output
    p = _probes(out)
    graph, eager = p["seq-length/tf-graph"]["findings"], p["seq-length/torch"]["findings"]
    assert [l["length"] for l in graph["lengths"]] == [3, 4, 6]
    assert graph["counted"] and graph["lengths"][0]["retraces"] == 0 and graph["retraces_total"] >= 1
    assert not eager["counted"] and eager["retraces_total"] == 0
    rep = invoke(cli, "report", str(out), "--out-dir", str(tmp_path / "rep"), "--no-plots")
    assert rep.exit_code == 0, rep.output
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "sequence lengths 3 → 4 → 6 in one session" in md
