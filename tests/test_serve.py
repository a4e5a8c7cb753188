"""The inference protocol (``host_input`` / ``serve``) of every framework runner against the NumPy reference.

Each installed runner builds a tiny workload in ``infer`` mode at batch 3 and serves one request; the logits
must be float32 NumPy of shape ``(3, *label_shape, classes)`` and equal :func:`fwbench.reference.forward`
(inference mode) within :func:`fwbench.parity.output_difference`'s fp32 tolerance. A batch-norm workload has
moving statistics far from a batch's own, so a server that normalised with batch statistics fails; a token
workload (attention, GRU, LSTM, per-token logits) covers sequences. The Keras runners run in one subprocess
per back end, since Keras picks its back end once per process.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from fwbench import reference
from fwbench.config import RunnerOptions
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.parity import output_difference
from fwbench.runners.registry import RUNNERS
from fwbench.weights import init_params
from fwbench.workload_spec import WorkloadSpec, parse_workload
from tests.conftest import TINY_CNN, TINY_LM

BATCH = 3

# A conv with uneven "same" padding at stride 2, batch norm after it and after a flatten, dropout (off when serving).
TINY_BN = textwrap.dedent("""
    name = "tinybn"
    input_shape = [7, 7, 2]
    classes = 4
    batch_size = 6
    seed = 5
    layers = [
      { type = "conv2d", filters = 3, kernel_size = 3, strides = 2, padding = "same" },
      { type = "batchnorm", momentum = 0.9, epsilon = 0.001 },
      { type = "activation", activation = "relu" },
      { type = "flatten" },
      { type = "dropout", rate = 0.5 },
      { type = "dense", units = 5 },
      { type = "batchnorm" },
      { type = "dense", units = 4 },
    ]
""")

WORKLOADS = {"cnn": TINY_CNN, "bn": TINY_BN, "lm": TINY_LM}
IN_PROCESS = ("torch", "torch-compile", "tf-eager", "tf-graph", "tf-xla")
KERAS = ("keras", "keras-torch", "keras-jax")


def infer_spec(kind: str) -> WorkloadSpec:
    spec = parse_workload(tomllib.loads(WORKLOADS[kind]))
    return dataclasses.replace(spec, mode="infer", batch_size=BATCH)


def served_params(spec: WorkloadSpec) -> list[dict[str, np.ndarray]]:
    """The shared initial weights, with batch norm's moving statistics moved far from any batch's own."""
    params = init_params(spec)
    for layer, p in zip(spec.layers, params):
        if layer.kind == "batchnorm":
            c = len(p["moving_mean"])
            p["moving_mean"] = np.linspace(0.5, -0.5, c).astype(np.float32)
            p["moving_variance"] = np.linspace(2.0, 4.0, c).astype(np.float32)
    return params


def request(spec: WorkloadSpec) -> np.ndarray:
    """One batch of canonical inputs: channels-last float32, or int32 token ids (as the contract passes them)."""
    x, _ = DataSource(spec).batch(0)
    return x.astype(np.int32) if spec.tokens else x


def missing(runner: str) -> list[str]:
    return RUNNERS[runner].missing()


def session_for(runner: str, spec: WorkloadSpec):
    module, _, cls = RUNNERS[runner].impl.partition(":")
    s = getattr(importlib.import_module(module), cls)(
        Job(workload=spec.to_dict(), runner=runner, device="cpu", options=RunnerOptions(threads=1)))
    s.setup()
    return s


def check_served(spec: WorkloadSpec, params, x: np.ndarray, logits) -> None:
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
    assert logits.shape == (BATCH, *spec.label_shape, spec.classes)
    want = reference.forward(spec, params, x, training=False)
    worst, tol, problem = output_difference(want, logits, "fp32")
    assert problem == "", problem
    if any(layer.kind == "batchnorm" for layer in spec.layers):  # the check can tell batch from moving statistics
        batch_stats = reference.forward(spec.without_dropout(), params, x, training=True)
        assert output_difference(batch_stats, logits, "fp32")[2] != ""


@pytest.mark.parametrize("kind", ["cnn", "bn", "lm"])
@pytest.mark.parametrize("runner", IN_PROCESS)
def test_serve_equals_the_reference_in_inference_mode(runner, kind):
    if missing(runner):
        pytest.skip(f"{runner}: {', '.join(missing(runner))} not installed")
    if runner == "torch-compile" and kind != "bn":
        pytest.skip("torch-compile: one workload keeps the file fast (the eager module is the same)")
    spec = infer_spec(kind)
    params = served_params(spec)
    x = request(spec)
    s = session_for(runner, spec)
    s.build(spec, params)
    payload = s.host_input(x)
    for _ in range(2):  # the first call may trace or compile; the second is what a server repeats
        check_served(spec, params, x, s.serve(payload))
    assert s.retraces() in (0, None)


def test_torch_payload_is_nchw_host_memory_and_the_model_serves_in_eval_mode():
    if missing("torch"):
        pytest.skip("torch not installed")
    import torch

    spec = infer_spec("bn")
    s = session_for("torch", spec)
    s.build(spec, served_params(spec))
    assert not s.model.training  # an "infer" build is in eval mode from the start
    x = request(spec)
    payload = s.host_input(x)
    assert isinstance(payload, torch.Tensor) and payload.device.type == "cpu"
    assert payload.shape == (BATCH, 2, 7, 7) and payload.is_contiguous()
    np.testing.assert_array_equal(payload.numpy(), x.transpose(0, 3, 1, 2))
    tokens = infer_spec("lm")
    s.build(tokens, init_params(tokens))
    assert s.host_input(request(tokens)).dtype == torch.int64

    job = Job(workload=spec.to_dict(), runner="torch", device="cpu",
              options=RunnerOptions(threads=1, channels_last=True))
    from fwbench.runners.torch_runner import TorchSession

    cl = TorchSession(job)
    cl.setup()
    params = served_params(spec)
    cl.build(spec, params)
    p = cl.host_input(x)
    assert p.shape == (BATCH, 2, 7, 7) and p.is_contiguous(memory_format=torch.channels_last)
    check_served(spec, params, x, cl.serve(p))

    train = dataclasses.replace(spec, mode="train")
    s.build(train, params)
    assert s.model.training
    check_served(spec, params, x, s.serve(s.host_input(x)))  # a train build serves in eval mode too ...
    assert s.model.training  # ... and trains on afterwards


def test_tf_graph_traces_serve_once_per_input_shape():
    if missing("tf-graph"):
        pytest.skip("tensorflow not installed")
    spec = infer_spec("cnn")
    s = session_for("tf-graph", spec)
    s.build(spec, init_params(spec))
    x, _ = DataSource(dataclasses.replace(spec, batch_size=5)).batch(0)
    for batch in (x[:3], x[:3], x[:3], x, x, x[:3]):
        assert s.serve(s.host_input(batch)).shape == (len(batch), spec.classes)
    assert s.traces["serve"] == 2  # batch 3 and batch 5, each traced once
    assert s.retraces() == 1


_KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tests import test_serve as t

    out = {}
    for kind in t.KERAS_WORKLOADS[sys.argv[1]]:
        spec = t.infer_spec(kind)
        params = t.served_params(spec)
        x = t.request(spec)
        s = t.session_for(sys.argv[1], spec)
        s.build(spec, params)
        payload = s.host_input(x)
        try:
            for _ in range(3):
                t.check_served(spec, params, x, s.serve(payload))
            out[kind] = {"ok": True, "retraces": s.retraces(), "payload": type(payload).__name__,
                         "dtype": str(payload.dtype), "jit_compile": s.model.jit_compile}
        except AssertionError as exc:
            out[kind] = {"ok": False, "error": str(exc) or repr(exc)}
    print("RESULT " + json.dumps(out))
""")
# Kept small, each process pays a framework import: the batch-norm network (conv, stride-2 uneven "same" padding,
# flatten, dense, dropout) covers the plain CNN's layers; jax compiles the token workload's scans and attention
# for ~15 s on a small CPU, and its token path is the other back ends' (int32 ids into predict_on_batch).
KERAS_WORKLOADS = {"keras": ("bn", "lm"), "keras-torch": ("bn", "lm"), "keras-jax": ("bn",)}


@pytest.fixture(scope="module")
def keras_results() -> dict[str, dict]:
    """Each installed Keras back end serves its workloads in its own process; the processes run together."""
    root = Path(__file__).resolve().parents[1]
    procs = {}
    for runner in KERAS:
        if missing(runner):
            continue
        env = {**os.environ, **dict(RUNNERS[runner].env), "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""}
        procs[runner] = subprocess.Popen([sys.executable, "-c", _KERAS_SCRIPT, runner], cwd=root, env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    try:
        for runner, p in procs.items():
            stdout, stderr = p.communicate(timeout=300)
            line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
            out[runner] = json.loads(line[7:]) if line else {"crash": stderr[-3000:]}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


@pytest.mark.slow  # three framework processes: ~40 CPU-seconds, mostly imports and jax's compilation
@pytest.mark.parametrize("runner", KERAS)
def test_keras_predict_on_batch_serves_the_reference(runner, keras_results):
    if missing(runner):
        pytest.skip(f"{runner}: {', '.join(missing(runner))} not installed")
    got = keras_results[runner]
    assert "crash" not in got, got.get("crash")
    assert list(got) == list(KERAS_WORKLOADS[runner])
    for kind, r in got.items():
        assert r["ok"], (kind, r.get("error"))
        assert r["payload"] == "ndarray"  # predict_on_batch takes NumPy
        assert r["dtype"] == ("int32" if kind == "lm" else "float32")  # the model's Input dtypes
        assert r["retraces"] in (0, None), (kind, r)
    assert got["bn"]["jit_compile"] is (runner == "keras-jax")


def test_fake_runner_serves_zero_logits_and_holds_sample_bytes(monkeypatch):
    from fwbench.runners.fake_runner import FakeSession

    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "1")
    monkeypatch.delenv("FWBENCH_FAKE", raising=False)
    spec = infer_spec("lm")
    s = FakeSession(Job(workload=spec.to_dict(), runner="fake", device="cpu"))
    s.setup()
    monkeypatch.delenv("FWBENCH_FAKE_SAMPLE_BYTES", raising=False)
    s.build(spec, [])
    assert s.hoard is None and "held_bytes" not in s.settings()
    logits = s.serve(s.host_input(request(spec)))
    assert logits.shape == (BATCH, 6, 11) and logits.dtype == np.float32 and not logits.any()

    monkeypatch.setenv("FWBENCH_FAKE_SAMPLE_BYTES", "4096")
    s.build(dataclasses.replace(spec, batch_size=16), [])
    assert s.hoard.nbytes == 16 * 4096 and s.hoard.all()  # allocated and written
    assert s.settings()["held_bytes"] == 16 * 4096
    s.build(spec, [])
    assert s.hoard.nbytes == BATCH * 4096
