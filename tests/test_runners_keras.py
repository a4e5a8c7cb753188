"""Keras 3 runners (keras, keras-torch, keras-jax): registry metadata and end to end through `fwbench run`."""

from __future__ import annotations

import importlib.util
import json
import tomllib

import numpy as np
import pytest

from fwbench.job import Job
from fwbench.pipeline import precheck
from fwbench.runners.registry import RUNNERS, select
from fwbench.weights import init_params
from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_CNN, TINY_GRAPH, invoke
from tests.test_runners_tf import write_workloads

KERAS_RUNNERS = ("keras", "keras-torch", "keras-jax")


def test_keras_family_and_backends():
    assert [r.name for r in select(["keras"], [])] == list(KERAS_RUNNERS)
    assert [r.name for r in select(["tensorflow"], [])] == ["tf-eager", "tf-graph", "tf-xla"]
    backends = {name: dict(RUNNERS[name].env)["KERAS_BACKEND"] for name in KERAS_RUNNERS}
    assert backends == {"keras": "tensorflow", "keras-torch": "torch", "keras-jax": "jax"}


def test_missing_jax_skips_the_cell_with_that_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "jax" else real(m, *a))
    job = Job(workload={"name": "w", "mode": "train", "batch_size": 1}, runner="keras-jax", device="cpu")
    assert precheck(job, {"cpu": True}) == "jax not installed (pip install jax)"
    assert "keras-jax" not in [r.name for r in select(["all"], [])]  # `all` means every installed runner


@pytest.mark.slow
def test_keras_runners_end_to_end(workload_dir, cli, tmp_path):
    """SGD-with-momentum training and inference on all three backends, against torch, in one run."""
    pytest.importorskip("keras")
    write_workloads(workload_dir)
    out = tmp_path / "keras.json"
    r = invoke(cli, "run", "-f", "keras", "-r", "torch", "-w", "tinysgd", "-w", "tinyinfer", "-o", str(out))
    doc = json.loads(out.read_text())
    cells = {c["id"]: c for c in doc["cells"]}
    assert len(cells) == 8, r.output
    for cid, c in cells.items():
        if c["runner"] == "keras-jax" and importlib.util.find_spec("jax") is None:
            assert c["status"] == "skipped" and "jax not installed" in c["reason"]
            continue
        assert c["status"] == "ok", (cid, c.get("reason"))
        assert c["parity"]["status"] in ("ok", "reference"), (cid, c["parity"])
        if c["runner"] == "torch":
            continue
        st = c["settings"]
        assert st["keras_backend"] == dict(RUNNERS[c["runner"]].env)["KERAS_BACKEND"]
        assert st["layout"] == "NHWC" and st["keras_api"] == "train_on_batch / test_on_batch"
        assert st["jit_compile"] is (c["runner"] == "keras-jax") and st["tf32"] is False
        assert c["summary"]["n"] >= 3 and c["first_step_s"] > 0
    assert cells["tinyinfer/keras-torch/cpu/0"]["mode"] == "infer"
    assert doc["parity"]["ok"] is True
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("text,sequential", [(TINY_CNN, True), (TINY_GRAPH, False)], ids=["chain", "graph"])
def test_compiled_model_keeps_the_signature_tf_rank_calls(text, sequential):
    """``compiled_model(keras, spec, params, jit_compile=False)`` (fwbench.distributed.tf_rank): a compiled model
    with the shared weights; a chain of nodes stays a ``keras.Sequential``, a graph is a functional model."""
    keras = pytest.importorskip("keras")
    from fwbench.runners.keras_runner import compiled_graph, compiled_model

    spec = parse_workload(tomllib.loads(text))
    params = init_params(spec)
    model = compiled_model(keras, spec, params, jit_compile=False)
    assert model.compiled and isinstance(model, keras.Sequential) is sequential
    assert type(model.optimizer).__name__ == "Adam" and model.jit_compile is False
    graph = compiled_graph(keras, spec, params, jit_compile=False)
    assert len(graph.layers) == len(spec.layers) and graph.model.layers[-1] is graph.layers[-1]
    first_kernel = np.asarray(graph.layers[0].get_weights()[0])
    np.testing.assert_array_equal(first_kernel, params[0]["kernel"])
