"""Graph workloads on the Keras 3 runners (keras, keras-torch, keras-jax): the functional model against the
NumPy reference, end to end through the worker, batch-norm statistics, and converter-breaking checks.

Keras fixes its back end at import, so each back end runs once, in one subprocess per runner started with
the worker's own environment (:func:`fwbench.launch.worker_env`: ``KERAS_BACKEND``); the three start
together and report one JSON document each (:func:`backend_checks`, run as ``python -m
tests.test_graph_keras RUNNER OUT``). The converter-breaking tests monkeypatch
:mod:`fwbench.runners.keras_model` in this process, on whatever back end ``import keras`` picks here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fwbench import parity, reference
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.workload import load_file
from fwbench.workload_spec import WorkloadSpec, parameter_count, parse_workload
from fwbench.weights import Params, init_params
from tests.conftest import REPO, TINY_GRAPH

KERAS_RUNNERS = ("keras", "keras-torch", "keras-jax")
BUNDLED = ("resnet20", "mobilenet")
# Back ends that also run the bundled workloads and the batch-norm check. Not keras-jax: its eager forward
# compiles op by op (about a minute for both bundled workloads on 2 cores); TINY_GRAPH has every kind.
FULL_RUNNERS = ("keras", "keras-torch")
K_STEPS = 3  # optimizer steps before batchnorm_stats is read
TOL = 1e-4  # per node: max |keras - reference| <= TOL * (1 + max |reference|)

# AveragePooling2D "same" with an odd total padding (pool 3, stride 2 on 6 columns: 0 left, 1 right).
ASYMMETRIC_AVGPOOL = textwrap.dedent("""
    name = "asymavg"
    input_shape = [6, 6, 2]
    classes = 3
    batch_size = 2
    layers = [
      { type = "avgpool2d", pool_size = 3, strides = 2, padding = "same" },
      { type = "flatten" },
      { type = "dense", units = 3 },
    ]
""")
TORCH_AVGPOOL_REASON = (
    "Keras 3.15 torch back end: AveragePooling2D(padding='same') with an odd total padding (asymmetric, extra "
    "pixel bottom/right) pads the input with mode='replicate' and then averages the full window, so the "
    "replicated edge pixels are counted (keras/src/backend/torch/nn.py, _apply_same_padding); the tensorflow "
    "and jax back ends average only the real pixels, as fwbench.layers specifies. Upstream: "
    "keras-team/keras#18452, #19721; fix merged in keras-team/keras#23233 (zero padding, divide by the count "
    "of real pixels), not in the installed release")


def load_spec(name: str) -> WorkloadSpec:
    if name == "tinygraph":
        return parse_workload(tomllib.loads(TINY_GRAPH))
    if name == "asymavg":
        return parse_workload(tomllib.loads(ASYMMETRIC_AVGPOOL))
    return load_file(REPO / "fwbench" / "workloads" / f"{name}.toml")


def varied_params(spec: WorkloadSpec, seed: int = 7) -> Params:
    """The shared initial weights with every bias and batch-norm array made non-trivial (init_params gives
    zeros and ones, which would hide a swapped gamma/beta or a misplaced bias)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in init_params(spec):
        q = dict(p)
        for k, v in p.items():
            if k in ("bias", "beta", "moving_mean"):
                q[k] = rng.normal(0.0, 0.3, v.shape).astype(np.float32)
            elif k in ("gamma", "moving_variance"):
                q[k] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        out.append(q)
    return out


def inputs(spec: WorkloadSpec, batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)


# -------------------------------------------------------------------------- checks (in any Keras process)
def forward_problems(keras: Any, spec: WorkloadSpec, params: Params, x: np.ndarray) -> list[str]:
    """Build the Keras model of ``spec`` and compare every node's output with the reference, inference mode
    then training mode, and its trainable parameter count with the workload's; [] when all agree."""
    from fwbench.runners import keras_model

    graph = keras_model.build_graph(keras, spec, params)
    problems = []
    n_trainable = sum(math.prod(w.shape) for w in graph.model.trainable_weights)
    if n_trainable != parameter_count(spec):
        problems.append(f"{n_trainable} trainable parameters, the workload has {parameter_count(spec)}")
    probe = keras.Model(graph.model.inputs[0], [layer.output for layer in graph.layers])
    for training in (False, True):  # inference first: a training call updates the moving statistics
        ref: dict[str, np.ndarray] = {}
        reference.forward(spec, params, x, training=training, outputs=ref)
        got = probe(x, training=training)
        for node, y in zip(spec.layers, got):
            want = ref[node.name]
            err = float(np.max(np.abs(keras.ops.convert_to_numpy(y).astype(np.float64) - want)))
            if not err <= TOL * (1.0 + float(np.max(np.abs(want)))):
                mode = "train" if training else "eval"
                problems.append(f"{mode}: node {node.name} ({node.kind}) max error {err:.3g}")
                break  # later nodes inherit the error
    return problems


def canonical_weights(graph: Any, spec: WorkloadSpec) -> Params:
    """The model's current weights back in the canonical layout (the same as Keras's)."""
    from fwbench.runners.keras_model import WEIGHT_ORDER

    out = []
    for layer, node in zip(graph.layers, spec.layers):
        ws = layer.get_weights() if node.kind in WEIGHT_ORDER else []
        keys = [k for k in WEIGHT_ORDER.get(node.kind, ()) if k != "bias" or node.use_bias]
        out.append({k: np.asarray(w) for k, w in zip(keys, ws)})
    return out


def batchnorm_check(runner: str, spec: WorkloadSpec, k: int) -> dict[str, Any]:
    """``batchnorm_stats()`` after ``k`` train steps of the runner's session, against NumPy's Keras rule:
    ``moving = momentum * moving + (1 - momentum) * batch`` with the batch's mean and biased variance,
    computed by the reference from the weights before each step."""
    from fwbench.runners.keras_runner import KerasSession

    session = KerasSession(Job(workload=spec.to_dict(), runner=runner, device="cpu"))
    session.setup()
    params = init_params(spec)
    session.build(spec, params)
    data = DataSource(spec)
    bn = [i for i, node in enumerate(spec.layers) if node.kind == "batchnorm"]
    moving = [np.stack([params[i]["moving_mean"], params[i]["moving_variance"]]).astype(np.float64) for i in bn]
    for step in range(k):
        before = canonical_weights(session.graph, spec)
        x, y = data.batch(step)
        outs: dict[str, np.ndarray] = {}
        reference.forward(spec, before, x, training=True, outputs=outs)
        for j, i in enumerate(bn):
            h = outs[spec.layers[i].inputs[0]]
            axes = tuple(range(h.ndim - 1))
            m = spec.layers[i].momentum
            moving[j] = m * moving[j] + (1 - m) * np.stack([h.mean(axis=axes), h.var(axis=axes)])
        session.value(session.train_step(session.put((x, y))))
    got = session.batchnorm_stats()
    return {"nodes": len(got), "expected_nodes": len(bn), "shapes_ok": all(g.shape == e.shape and g.dtype == np.float64
                                                                          for g, e in zip(got, moving)),
            "max_error": max(float(np.max(np.abs(g - e))) for g, e in zip(got, moving))}


def backend_checks(runner: str, out_dir: Path) -> dict[str, Any]:
    """Everything one back end checks, in this (fresh) process: the worker's parity run on TINY_GRAPH, the
    forward passes against the reference (TINY_GRAPH, the asymmetric avgpool case, and on
    :data:`FULL_RUNNERS` resnet20 and mobilenet), and there batchnorm_stats after K steps."""
    from fwbench import worker

    spec = load_spec("tinygraph")
    job = Job(workload=spec.to_dict(), runner=runner, device="cpu", phases=("parity",))
    (out_dir / "job.json").write_text(json.dumps(job.to_dict()))
    worker.main([str(out_dir / "job.json"), str(out_dir / "result.json")])  # imports keras (KERAS_BACKEND)
    result = json.loads((out_dir / "result.json").read_text())
    import keras

    out: dict[str, Any] = {"backend": keras.backend.backend(), "worker": result, "forward": {}}
    full = runner in FULL_RUNNERS
    for name in ("tinygraph", "asymavg", *(BUNDLED if full else ())):
        s = load_spec(name)
        out["forward"][name] = forward_problems(keras, s, varied_params(s), inputs(s, 2))
    out["batchnorm"] = batchnorm_check(runner, spec, K_STEPS) if full else None
    return out


# ------------------------------------------------------------------------------ the per-back-end processes
@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """runner -> its :func:`backend_checks` document (or ``{"error": ...}``); the three run concurrently."""
    pytest.importorskip("keras")
    from fwbench.launch import worker_env

    procs = {}
    for runner in KERAS_RUNNERS:
        if runner == "keras-jax" and importlib.util.find_spec("jax") is None:
            continue
        d = tmp_path_factory.mktemp(runner)
        env = worker_env(Job(workload={}, runner=runner, device="cpu"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        log = open(d / "log.txt", "w")
        procs[runner] = (d, log, subprocess.Popen([sys.executable, "-m", "tests.test_graph_keras", runner, str(d)],
                                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    docs = {}
    for runner, (d, log, proc) in procs.items():
        try:
            proc.wait(timeout=400)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        path = d / "checks.json"
        docs[runner] = (json.loads(path.read_text()) if path.exists()
                        else {"error": (d / "log.txt").read_text()[-3000:]})
    return docs


def _doc(backends: dict[str, Any], runner: str) -> dict[str, Any]:
    if runner not in backends:
        pytest.skip(f"{runner}: jax not installed")
    doc = backends[runner]
    assert "error" not in doc, doc.get("error")
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("runner", KERAS_RUNNERS)
def test_tiny_graph_forward_matches_reference(backends, runner):
    doc = _doc(backends, runner)
    assert doc["backend"] == {"keras": "tensorflow", "keras-torch": "torch", "keras-jax": "jax"}[runner]
    assert doc["forward"]["tinygraph"] == []


@pytest.mark.slow
@pytest.mark.parametrize("runner", FULL_RUNNERS)
@pytest.mark.parametrize("workload", BUNDLED)
def test_bundled_forward_matches_reference(backends, runner, workload):
    """resnet20 and mobilenet at batch 2 (mobilenet's stem: stride-2 "same" with the extra pixel bottom/right)."""
    assert _doc(backends, runner)["forward"][workload] == []


@pytest.mark.slow
@pytest.mark.parametrize("runner", [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=TORCH_AVGPOOL_REASON))
                                    if r == "keras-torch" else r for r in KERAS_RUNNERS])
def test_asymmetric_same_avgpool_matches_reference(backends, runner):
    assert _doc(backends, runner)["forward"]["asymavg"] == []


@pytest.mark.slow
def test_tiny_graph_end_to_end_through_the_worker(backends):
    """The worker's parity phase on TINY_GRAPH: finite losses, the initial loss equal to the reference's, and
    the three back ends' losses within the parity tolerances of each other."""
    spec = load_spec("tinygraph")
    x, y = DataSource(spec).batch(0)
    expected = reference.cross_entropy(reference.forward(spec, init_params(spec), x, training=True), y)
    t_init, t_k = parity.TOLERANCES["fp32"]
    results = {r: _doc(backends, r)["worker"] for r in backends}
    for runner, res in results.items():
        assert res["status"] == "ok", (runner, res.get("reason"))
        p = res["parity"]
        assert len(p["losses"]) == spec.parity_steps and all(math.isfinite(v) for v in p["losses"]), p
        assert parity.close(p["initial_loss"], expected, t_init), (runner, p["initial_loss"], expected)
        assert res["settings"]["keras_backend"] == _doc(backends, runner)["backend"]
    first = results["keras"]["parity"]
    for runner, res in results.items():
        assert parity.close(res["parity"]["initial_loss"], first["initial_loss"], t_init), runner
        assert parity.close(res["parity"]["kstep_loss"], first["kstep_loss"], t_k), (runner, res["parity"], first)


@pytest.mark.slow
@pytest.mark.parametrize("runner", FULL_RUNNERS)
def test_batchnorm_stats_follow_keras_momentum(backends, runner):
    bn = _doc(backends, runner)["batchnorm"]
    assert bn["nodes"] == bn["expected_nodes"] == 4 and bn["shapes_ok"]
    assert bn["max_error"] < 1e-5, bn


# ------------------------------------------------------------------ in this process: names, mapping, breaks
def test_keras_names_are_unique_and_legal():
    from fwbench.runners.keras_model import keras_names

    spec = load_spec("tinygraph")
    names = keras_names(spec)
    assert list(names) == [n.name for n in spec.layers]
    assert len(set(names.values())) == len(names) and "input" not in names.values()
    assert all(not set(v) & set("/#.") for v in names.values())
    assert names["r.1/c1"] == "r_1__c1" and names["stem"] == "stem"
    renamed = ["a.b", "a/b", "a_b", *[n.name for n in spec.layers[3:]]]
    twins = dataclasses.replace(spec, layers=tuple(dataclasses.replace(n, name=m)
                                                   for n, m in zip(spec.layers, renamed)))
    assert [keras_names(twins)[n] for n in ("a.b", "a/b", "a_b")] == ["a_b", "a__b", "a_b_2"]


@pytest.fixture(scope="module")
def keras_here():
    return pytest.importorskip("keras")


def test_functional_model_maps_nodes_to_layers(keras_here):
    """A graph is a functional model (layers[0] is the InputLayer); a chain stays a Sequential."""
    from fwbench.runners import keras_model

    spec = load_spec("tinygraph")
    graph = keras_model.build_graph(keras_here, spec, init_params(spec))
    assert type(graph.model.layers[0]).__name__ == "InputLayer"
    assert [layer.name for layer in graph.layers] == [graph.names[n.name] for n in spec.layers]
    dw = [n.name for n in spec.layers].index("dw")
    assert graph.model.get_layer(graph.names["dw"]) is graph.layers[dw]
    chain = load_spec("asymavg")
    seq = keras_model.build_graph(keras_here, chain, init_params(chain))
    assert isinstance(seq.model, keras_here.Sequential) and list(seq.model.layers) == seq.layers


def _depthwise_transposed(node, p):
    k = p["kernel"]  # [k, k, in, mult] read as if it were [k, k, mult, in]
    wrong = k.reshape(*k.shape[:2], k.shape[3], k.shape[2]).transpose(0, 1, 3, 2)
    return [np.ascontiguousarray(wrong), *[p[b] for b in ("bias",) if b in p]]


def _groups_swapped(node, p):
    k = p["kernel"]  # the two groups' output slices exchanged
    half = k.shape[-1] // node.groups
    return [np.concatenate([k[..., half:], k[..., :half]], axis=-1), *[p[b] for b in ("bias",) if b in p]]


@pytest.mark.parametrize("kind,mutate", [("depthwise_conv2d", _depthwise_transposed), ("conv2d", _groups_swapped)])
def test_breaking_a_kernel_conversion_is_caught(keras_here, monkeypatch, kind, mutate):
    from fwbench.runners import keras_model

    spec = load_spec("tinygraph")
    params, x = varied_params(spec), inputs(spec, 2)
    assert forward_problems(keras_here, spec, params, x) == []
    original = keras_model.layer_weights
    monkeypatch.setattr(keras_model, "layer_weights", lambda node, p: mutate(node, p) if node.kind == kind and (
        node.kind != "conv2d" or node.groups > 1) else original(node, p))
    problems = forward_problems(keras_here, spec, params, x)
    assert problems and ("dw" if kind == "depthwise_conv2d" else "grouped") in problems[0], problems


def test_wiring_an_add_to_the_wrong_node_is_caught(keras_here, monkeypatch):
    """The residual add of block r.1 reads the block's conv (before batch norm and swish), not its input."""
    from fwbench.runners import keras_model

    spec = load_spec("tinygraph")
    params, x = varied_params(spec), inputs(spec, 2)
    original = keras_model.wire

    def miswired(keras, s, names):
        layers = tuple(dataclasses.replace(n, inputs=("r.1/c1", "r.1/a")) if n.name == "r.1/#3" else n
                       for n in s.layers)
        return original(keras, dataclasses.replace(s, layers=layers), names)

    monkeypatch.setattr(keras_model, "wire", miswired)
    problems = forward_problems(keras_here, spec, params, x)
    assert problems and "r.1/#3 (add)" in problems[0], problems


@pytest.mark.parametrize("fill", [False, True])
def test_dropping_use_bias_false_is_caught(keras_here, monkeypatch, fill):
    """A layer built with a bias where the node has none: loading refuses the weights (one array short), and
    where the missing bias is filled with zeros (the forward pass is then unchanged) the parameter count
    differs."""
    from fwbench.runners import keras_model

    spec = load_spec("tinygraph")
    params, x = varied_params(spec), inputs(spec, 2)
    original_layer, original_weights = keras_model.keras_layer, keras_model.layer_weights
    monkeypatch.setattr(keras_model, "keras_layer", lambda keras, node, name=None: original_layer(
        keras, dataclasses.replace(node, use_bias=True), name))
    if fill:
        def zero_bias(node, p):
            w = original_weights(node, p)
            if node.kind not in ("conv2d", "dense", "depthwise_conv2d") or "bias" in p:
                return w
            k = w[0].shape
            return [*w, np.zeros(k[-2] * k[-1] if node.kind == "depthwise_conv2d" else k[-1], np.float32)]
        monkeypatch.setattr(keras_model, "layer_weights", zero_bias)
        problems = forward_problems(keras_here, spec, params, x)
        assert problems and "trainable parameters" in problems[0], problems
    else:
        with pytest.raises(ValueError):
            forward_problems(keras_here, spec, params, x)


if __name__ == "__main__":  # one back end's checks, in the worker's environment (see the backends fixture)
    out = Path(sys.argv[2])
    doc = backend_checks(sys.argv[1], out)
    (out / "checks.json").write_text(json.dumps(doc, default=str))
