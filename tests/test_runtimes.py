"""Deployed runtimes (onnxruntime, tflite, torch-export, openvino): output parity with the NumPy reference,
a runtime that is not installed, a broken converter caught by output parity, and no training.

Exports are the slow part (a child process importing torch or TensorFlow), so the runners share one artifact
cache for the module (ONNX Runtime and OpenVINO serve the same ONNX file); a broken converter writes into a
cache of its own. One AOTInductor compile (a C++ build, ~35 s) on the smallest network, marked slow.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from fwbench import parity, reference
from fwbench.config import RunnerOptions
from fwbench.data import DataSource
from fwbench.errors import CellSkipped
from fwbench.job import Job
from fwbench.pipeline import precheck
from fwbench.runners import artifacts
from fwbench.runners.registry import RUNNERS
from fwbench.weights import init_params
from fwbench.workload_spec import WorkloadSpec, parse_workload
from tests.conftest import REPO, TINY_CNN

TINY_MLP = """
name = "tinymlp"
input_shape = [6]
classes = 3
batch_size = 2
seed = 4
[[layers]]
type = "dense"
units = 5
activation = "relu"
[[layers]]
type = "dropout"
rate = 0.5
[[layers]]
type = "dense"
units = 3
"""


def infer_spec(text: str) -> WorkloadSpec:
    return dataclasses.replace(parse_workload(tomllib.loads(text)), mode="infer")


def session(runner: str, spec: WorkloadSpec, device: str = "cpu", **options):
    missing = RUNNERS[runner].missing()  # checked without importing: the serving session imports what it needs
    if missing:
        pytest.skip(f"{runner}: {', '.join(missing)} not installed")
    from fwbench.worker import load_session

    s = load_session(Job(workload=spec.to_dict(), runner=runner, device=device, options=RunnerOptions(**options)))
    s.setup()
    return s


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One artifact folder for the module's exports ($FWBENCH_ARTIFACTS, as a run sets it)."""
    path = tmp_path_factory.mktemp("artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FWBENCH_ARTIFACTS", str(path))
        yield path


@pytest.fixture(scope="module")
def cnn():
    spec = infer_spec(TINY_CNN)
    params = init_params(spec)
    x, y = DataSource(spec).batch(0)
    return spec, params, x, y, reference.forward(spec, params, x, training=False)


@pytest.mark.parametrize("runner", ["onnxruntime", "openvino", "tflite"])
def test_runtime_logits_match_the_reference_forward(runner, cache, cnn):
    spec, params, x, y, ref = cnn
    s = session(runner, spec)
    s.build(spec, params)
    logits = s.serve(s.host_input(x))
    assert logits.dtype == np.float32 and logits.shape == ref.shape
    diff, tol, problem = parity.output_difference(ref, logits)
    assert problem == "" and diff <= tol, (runner, diff, tol)
    # predict pads a smaller batch to the static one and keeps its rows
    np.testing.assert_allclose(s.predict(x[:3]), logits[:3], rtol=0, atol=1e-6)
    assert s.value(s.infer_step(s.put((x, y)))) == pytest.approx(reference.cross_entropy(ref, y), rel=1e-5)
    rt = s.settings()["runtime"]
    assert rt["format"] == s.fmt and rt["artifact_bytes"] > 0 and rt["export_s"] >= 0 and rt["exporter"]
    assert rt["runtime"].split()[0] in ("onnxruntime", "openvino", "ai-edge-litert", "tensorflow")
    assert rt["provider"]


def test_layouts_follow_the_exported_graph(cache, cnn):
    spec, params, x, _, _ = cnn
    onnx, tfl = session("onnxruntime", spec), session("tflite", spec)
    onnx.spec = tfl.spec = spec
    assert onnx.host_input(x).shape == (4, 1, 8, 8) and onnx.host_input(x).flags.c_contiguous
    assert tfl.host_input(x).shape == x.shape
    tokens = dataclasses.replace(spec, vocabulary=10)
    onnx.spec = tfl.spec = tokens
    ids = np.zeros((2, 5), np.int32)
    assert onnx.host_input(ids).dtype == np.int64 and tfl.host_input(ids).dtype == np.int32


def test_serving_process_imports_no_exporting_framework(cache, cnn):
    """ONNX Runtime and LiteRT serve without torch or TensorFlow in the process (the export ran elsewhere)."""
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert not installed: tflite falls back to tf.lite")
    spec, params, x, _, ref = cnn
    code = f"""
import json, sys, dataclasses, tomllib
from fwbench.workload_spec import parse_workload
from fwbench.weights import init_params
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.worker import load_session
spec = dataclasses.replace(parse_workload(tomllib.loads({TINY_CNN!r})), mode="infer")
out = {{}}
for r in ("onnxruntime", "tflite"):
    s = load_session(Job(workload=spec.to_dict(), runner=r, device="cpu"))
    s.setup(); s.build(spec, init_params(spec))
    out[r] = [s.serve(s.host_input(DataSource(spec).batch(0)[0])).tolist(), s.settings()["runtime"]["artifact_cached"]]
out["imported"] = sorted(m for m in ("torch", "tensorflow") if m in sys.modules)
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FWBENCH_ARTIFACTS": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["imported"] == []
    for r in ("onnxruntime", "tflite"):
        assert parity.output_difference(ref, out[r][0])[2] == ""


def test_same_network_hits_the_cache_and_another_batch_does_not(cache, cnn):
    spec, params, _, _, _ = cnn
    key = artifacts.artifact_key(spec, "onnx", "fp32", "cpu", params)
    renamed = dataclasses.replace(spec, name="tinycnn@latency", timing=dataclasses.replace(spec.timing, warmup=9))
    assert artifacts.artifact_key(renamed, "onnx", "fp32", "cpu", params) == key
    assert artifacts.artifact_key(dataclasses.replace(spec, batch_size=8), "onnx", "fp32", "cpu", params) != key
    other = [{k: v + 1 for k, v in p.items()} for p in params]
    assert artifacts.artifact_key(spec, "onnx", "fp32", "cpu", other) != key
    # aoti packages are compiled per device; ONNX files are not
    assert artifacts.artifact_key(spec, "aoti", "fp32", "cpu", params) != \
        artifacts.artifact_key(spec, "aoti", "fp32", "cuda", params)
    assert artifacts.artifact_key(spec, "onnx", "fp32", "cuda", params) == key


def test_export_failure_is_one_line_with_the_childs_reason(tmp_path, monkeypatch, cnn):
    monkeypatch.setenv("FWBENCH_ARTIFACTS", str(tmp_path))
    spec, params, _, _, _ = cnn
    with pytest.raises(artifacts.ArtifactError) as err:
        artifacts.ensure(spec, params, "onnx", "cpu", {"precision": "bf16"})
    assert str(err.value) == "onnx export failed: ValueError: only fp32 artifacts are exported, not bf16"


def test_runtime_cannot_train_and_runs_fp32_only(cnn):
    spec = cnn[0]
    s = session("onnxruntime", spec)
    with pytest.raises(CellSkipped, match="onnxruntime cannot train"):
        s.train_step(None)
    with pytest.raises(CellSkipped, match="runs fp32 exports only"):
        session("onnxruntime", spec, precision="bf16")
    assert "cannot train" in RUNNERS["tflite"].scenario_problem("train")


def test_a_device_the_runtime_cannot_use_is_a_clear_skip(monkeypatch, cnn):
    spec = cnn[0]
    with pytest.raises(CellSkipped, match="tflite supports cpu, not cuda"):
        session("tflite", spec, device="cuda")
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(CellSkipped, match="no CUDAExecutionProvider .* install onnxruntime-gpu"):
        session("onnxruntime", spec, device="cuda")


def test_runtime_not_installed_names_the_pip_package(monkeypatch):
    real = importlib.util.find_spec
    gone = {"onnxruntime", "openvino", "ai_edge_litert"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))
    assert RUNNERS["onnxruntime"].missing() == ["onnxruntime"]
    job = Job(workload={"name": "cnn@latency", "scenario": "latency"}, runner="onnxruntime", device="cpu")
    assert precheck(job, {"cpu": True}) == "onnxruntime not installed (pip install onnxruntime)"
    job = Job(workload={"name": "cnn@latency", "scenario": "latency"}, runner="openvino", device="cpu")
    assert "pip install openvino" in precheck(job, {"cpu": True})
    # tflite without ai-edge-litert falls back to TensorFlow's interpreter, and says so
    pytest.importorskip("tensorflow")
    from fwbench.runners.tflite_runtime import interpreter_class

    cls, name = interpreter_class()
    assert name.startswith("tf.lite.Interpreter") and "ai-edge-litert not installed" in name


# ------------------------------------------------------------------------------------ broken converters
def _broken_artifact(fmt, spec, params, export) -> None:
    """Export in this process with a broken conversion, into the cache path the session will load."""
    path = artifacts.artifact_path(spec, fmt, "fp32", "cpu", params)
    tmp = path.with_name("broken" + path.suffix)
    export(tmp)
    artifacts.write(tmp, path, {"format": fmt, "exporter": "broken on purpose", "export_s": 0.0,
                                "artifact_bytes": tmp.stat().st_size})


def test_broken_onnx_converter_is_an_output_mismatch(tmp_path, monkeypatch, cnn):
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("FWBENCH_ARTIFACTS", str(tmp_path))
    spec, params, x, _, ref = cnn
    original = artifacts.torch_model

    def flipped(*args):  # the classic converter bug: convolution vs correlation (kernel not flipped back)
        model, dev = original(*args)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.weight.data = conv.weight.data.flip(-1, -2)
        return model, dev

    monkeypatch.setattr(artifacts, "torch_model", flipped)
    _broken_artifact("onnx", spec, params, lambda p: artifacts.export_onnx(spec, params, p, {}))
    s = session("onnxruntime", spec)
    s.build(spec, params)
    assert s.settings()["runtime"]["exporter"] == "broken on purpose"
    diff, tol, problem = parity.output_difference(ref[:8].tolist(), s.predict(x)[:8].tolist())
    assert diff > tol and problem.startswith("max |Δ logits|")


def test_broken_tflite_converter_is_an_output_mismatch(tmp_path, monkeypatch, cnn):
    tf = pytest.importorskip("tensorflow")
    monkeypatch.setenv("FWBENCH_ARTIFACTS", str(tmp_path))
    spec, params, x, _, ref = cnn
    original = artifacts._session

    def transposed(*args):  # HWIO kernel with height and width swapped
        s = original(*args)
        build = s.build

        def broken_build(spec, params):
            build(spec, params)
            kernel = next(v for v in s.net.trainable if len(v.shape) == 4)
            kernel.assign(tf.transpose(kernel, [1, 0, 2, 3]))
        s.build = broken_build
        return s

    monkeypatch.setattr(artifacts, "_session", transposed)
    _broken_artifact("tflite", spec, params, lambda p: artifacts.export_tflite(spec, params, p, {}))
    s = session("tflite", spec)
    s.build(spec, params)
    diff, tol, problem = parity.output_difference(ref, s.serve(s.host_input(x)))
    assert diff > tol and "tolerance" in problem


# ------------------------------------------------------------------------------------ AOTInductor (slow)
@pytest.mark.slow
def test_torch_export_aot_package_matches_the_reference(cache):
    spec = infer_spec(TINY_MLP)
    params = init_params(spec)
    x = DataSource(spec).batch(0)[0]
    s = session("torch-export", spec)
    s.build(spec, params)
    logits = s.serve(s.host_input(x))
    ref = reference.forward(spec, params, x, training=False)
    diff, tol, problem = parity.output_difference(ref, logits)
    assert logits.dtype == np.float32 and problem == "", (diff, tol)
    rt = s.settings()["runtime"]
    assert rt["format"] == "aoti" and rt["package"].endswith(".pt2") and rt["artifact_bytes"] > 0
    assert "aoti_compile_and_package" in rt["exporter"]
    with pytest.raises(CellSkipped, match="torch-export cannot train"):
        s.train_step(None)


def test_two_exports_of_one_artifact_run_once(tmp_path, monkeypatch, cnn):
    """The lock: a second ``ensure`` waits for the first export and takes its file instead of exporting again."""
    import threading
    import time

    monkeypatch.setenv("FWBENCH_ARTIFACTS", str(tmp_path))
    spec, params, _, _, _ = cnn
    calls = []

    def fake_child(cmd, **kwargs):  # stands in for the exporting child process
        request = json.loads(open(cmd[-1]).read())
        calls.append(request["path"])
        time.sleep(0.3)
        path = artifacts.Path(request["path"])
        tmp = path.with_name("x.onnx")
        tmp.write_bytes(b"onnx")
        artifacts.write(tmp, path, {"format": "onnx", "export_s": 0.3, "artifact_bytes": 4})
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_child)
    got = []
    threads = [threading.Thread(target=lambda: got.append(artifacts.ensure(spec, params, "onnx", "cpu", {})))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2 and got[0].path == got[1].path
    assert sorted(a.meta["cached"] for a in got) == [False, True]


def test_a_run_can_warm_the_cache_from_a_job(tmp_path, monkeypatch, cnn):
    """``python -m fwbench.runners.artifacts --job JOB.json``: the cell's artifact, same path as the worker's."""
    monkeypatch.setenv("FWBENCH_ARTIFACTS", str(tmp_path))
    spec, params, _, _, _ = cnn
    requests = []

    def fake_child(cmd, **kwargs):
        requests.append(json.loads(open(cmd[-1]).read()))
        path = artifacts.Path(requests[-1]["path"])
        (tmp_path / "x").write_bytes(b"tfl")
        artifacts.write(tmp_path / "x", path, {"format": "tflite", "export_s": 0.0, "artifact_bytes": 3})
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_child)
    job = tmp_path / "job.json"
    job.write_text(json.dumps(Job(workload=spec.to_dict(), runner="tflite", device="cpu").to_dict()))
    assert artifacts.main(["--job", str(job)]) == 0
    assert requests[0]["format"] == "tflite" and requests[0]["path"] == str(
        artifacts.artifact_path(spec, "tflite", "fp32", "cpu", params))
    assert artifacts.main(["--job", str(job)]) == 0 and len(requests) == 1  # cached now
