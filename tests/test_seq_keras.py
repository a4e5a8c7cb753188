"""Sequence workloads on the Keras 3 runners (keras, keras-torch, keras-jax): Keras's own Embedding,
LayerNormalization, per-token Dense, MultiHeadAttention, LSTM, GRU and pooling against the NumPy reference,
the per-token loss, one session at several sequence lengths (and the retraces it counts), the worker's
parity run on ``tinylm``, and checks that break each weight conversion and see the mismatch.

Keras fixes its back end at import, so each back end runs in its own subprocess (the worker's environment,
:func:`fwbench.launch.worker_env`), all three at once, each writing one JSON document
(``python -m tests.test_seq_keras RUNNER OUT``, :func:`backend_checks`); the tests read those documents.
keras-torch checks TINY_LM only; keras-jax compiles every new shape, so it runs the fewest models. The
converter-breaking checks need a per-node forward pass, which is cheap in tensorflow's eager mode and slow
on jax (each op compiles), so they run in the ``keras`` (tensorflow) process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from fwbench import parity, reference
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.weights import Params, init_params
from fwbench.workload_spec import WorkloadSpec, parameter_count, parse_workload
from tests.conftest import REPO, TINY_LM, TINY_SEQ

pytestmark = pytest.mark.slow

RUNNERS = ("keras", "keras-torch", "keras-jax")
WORKLOADS = {"keras": ("tinylm", "tinyseq"), "keras-jax": ("tinylm", "tinyseq"), "keras-torch": ("tinylm",)}
REL = 1e-5  # forward logits: max |keras - reference| <= REL * max |reference| (float32 against float64)
NODE_TOL = 1e-4  # per node in the break checks (as tests/test_graph_keras.py)
LENGTHS = (6, 4)  # one TINY_LM session: its own length, then a shorter one
WORKER_RUNNERS = ("keras", "keras-torch")  # the worker's parity run (keras-jax: two more compilations)
ADAM_RUNNERS = ("keras", "keras-torch")  # keras-jax computes dense Adam too (checked by hand: one more compile)
SPARSE_ADAM_REASON = (
    "Keras 3.15 tensorflow back end: an Embedding's gradient is a tf.IndexedSlices with one slice per token "
    "occurrence (duplicates not summed), and Adam.update_step's ops.square maps over the slices "
    "(keras/src/backend/tensorflow/sparse.py, elementwise_unary) before the scatter_add sums them, so a token "
    "seen k times in a batch gets v += (1 - beta_2) * sum(g_i^2) instead of (1 - beta_2) * (sum g_i)^2 (the first "
    "moment is right). The jax and torch back ends compute dense Adam. Measured on the bundled transformer "
    "(parity lr 1e-3, 5 steps): keras 3.95666 vs keras-torch/keras-jax 3.97354; with the gradient densified "
    "(tf.convert_to_tensor) keras gives 3.97354 too")


def load_spec(name: str) -> WorkloadSpec:
    return parse_workload(tomllib.loads({"tinylm": TINY_LM, "tinyseq": TINY_SEQ}[name]))


def varied_params(spec: WorkloadSpec, seed: int = 7) -> Params:
    """The shared initial weights with every bias, gamma and beta made non-trivial (init_params has zeros and
    ones there, which would hide swapped biases, a GRU's swapped bias rows or a swapped gamma/beta)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in init_params(spec):
        q = dict(p)
        for k, v in p.items():
            if k.endswith("bias") or k == "beta":
                q[k] = rng.normal(0.0, 0.3, v.shape).astype(np.float32)
            elif k == "gamma":
                q[k] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        out.append(q)
    return out


# ------------------------------------------------------------------------ checks (in one Keras process)
def session_checks(runner: str, name: str) -> dict[str, Any]:
    """The runner's own session on varied weights: predict() against reference.forward (inference mode), the
    first train_step loss against reference.cross_entropy, then (TINY_LM) train steps at other lengths in the
    same session with retraces() after each."""
    from fwbench.runners.keras_runner import KerasSession

    spec = load_spec(name)
    params = varied_params(spec)
    session = KerasSession(Job(workload=spec.to_dict(), runner=runner, device="cpu"))
    session.setup()
    session.build(spec, params)
    x, y = DataSource(spec).batch(0)
    logits = session.predict(x)
    want = reference.forward(spec, params, x)
    out: dict[str, Any] = {"shape": list(logits.shape), "want_shape": list(want.shape),
                           "rel_error": float(np.max(np.abs(logits - want)) / np.max(np.abs(want))),
                           "model": type(session.model).__name__, "settings": session.settings(),
                           "input_dtype": session.keras.backend.standardize_dtype(session.put((x, y))[0].dtype)}
    logits_train = reference.forward(spec, params, x, training=True)
    out["loss"] = session.value(session.train_step(session.put((x, y))))
    out["reference_loss"] = reference.cross_entropy(logits_train, y)
    if spec.per_token:  # the reductions a wrong loss could use instead of the mean over batch and time
        z = logits_train - logits_train.max(axis=-1, keepdims=True)
        nll = -np.take_along_axis(z - np.log(np.exp(z).sum(-1, keepdims=True)), y[..., None], -1)[..., 0]
        out["sum_over_time_loss"] = float(nll.sum(axis=1).mean())
        out["last_step_loss"] = float(nll[:, -1].mean())
    out["retraces"] = [session.retraces()]
    if name == "tinylm":
        out["length_losses"] = []
        for t in LENGTHS[1:]:
            out["length_losses"].append(session.value(session.train_step(session.put((x[:, :t], y[:, :t])))))
            out["retraces"].append(session.retraces())
    return out


def worker_parity(runner: str, out_dir: Path) -> dict[str, Any]:
    """The worker's parity phase on tinylm (``fwbench.worker``, as ``fwbench run`` starts it)."""
    from fwbench import worker

    spec = load_spec("tinylm")
    job = Job(workload=spec.to_dict(), runner=runner, device="cpu", phases=("parity",))
    (out_dir / "job.json").write_text(json.dumps(job.to_dict()))
    worker.main([str(out_dir / "job.json"), str(out_dir / "result.json")])
    return json.loads((out_dir / "result.json").read_text())


def node_problems(keras: Any, spec: WorkloadSpec, params: Params, x: np.ndarray) -> list[str]:
    """Build the model, compare every node's output (inference mode) with the reference and the trainable
    parameter count with the workload's; the first mismatching node, [] when all agree."""
    from fwbench.runners import keras_model

    graph = keras_model.build_graph(keras, spec, params)
    n = sum(math.prod(w.shape) for w in graph.model.trainable_weights)
    problems = [] if n == parameter_count(spec) else [f"{n} trainable parameters, not {parameter_count(spec)}"]
    probe = keras.Model(graph.model.inputs[0], [layer.output for layer in graph.layers])
    ref: dict[str, np.ndarray] = {}
    reference.forward(spec, params, x, outputs=ref)
    for node, got in zip(spec.layers, probe(x.astype(np.int32), training=False)):
        want = ref[node.name]
        err = float(np.max(np.abs(keras.ops.convert_to_numpy(got).astype(np.float64) - want)))
        if not err <= NODE_TOL * (1.0 + float(np.max(np.abs(want)))):
            return [*problems, f"node {node.name} ({node.kind}) max error {err:.3g}"]
    return problems


def _blocks(a: np.ndarray, n: int, order: tuple[int, ...]) -> np.ndarray:
    """``a``'s last axis cut into ``n`` gate blocks and put back in ``order``."""
    parts = np.split(a, n, axis=-1)
    return np.concatenate([parts[i] for i in order], axis=-1)


def _gates(order: tuple[int, ...]) -> Callable:
    def mutate(node, p):  # every gate-blocked array of an lstm/gru reordered alike
        n = 4 if node.kind == "lstm" else 3
        return [_blocks(p[k], n, order) for k in ("kernel", "recurrent_kernel", "bias")]
    return mutate


def _mha(order: tuple[str, ...]) -> Callable:
    def mutate(node, p):  # the eight arrays loaded in another order (shapes permitting)
        return [p[k] for k in order]
    return mutate


QKV = ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias", "output_kernel",
       "output_bias")
# name -> (workload, node kind, mutation of that node's set_weights arrays, the node that must mismatch)
BREAKS: dict[str, tuple[str, str, Callable, str]] = {
    "mha_query_key_swapped": ("tinylm", "multi_head_attention",
                              _mha(("key_kernel", "key_bias", "query_kernel", "query_bias", *QKV[4:])), "attention"),
    "mha_key_value_swapped": ("tinyseq", "multi_head_attention",
                              _mha((*QKV[:2], "value_kernel", "value_bias", "key_kernel", "key_bias", *QKV[6:])), "#2"),
    "mha_biases_swapped": ("tinylm", "multi_head_attention",
                           _mha(("query_kernel", "key_bias", "key_kernel", "query_bias", *QKV[4:])), "attention"),
    "lstm_input_forget_swapped": ("tinylm", "lstm", _gates((1, 0, 2, 3)), "#10"),
    "lstm_cell_output_swapped": ("tinyseq", "lstm", _gates((0, 1, 3, 2)), "l"),
    "gru_z_r_swapped": ("tinylm", "gru", _gates((1, 0, 2)), "#9"),  # PyTorch's r, z, n order
    "gru_bias_rows_swapped": ("tinylm", "gru", lambda node, p: [p["kernel"], p["recurrent_kernel"],
                                                                np.ascontiguousarray(p["bias"][::-1])], "#9"),
    "embedding_rows_shifted": ("tinyseq", "embedding", lambda node, p: [np.roll(p["embeddings"], 1, axis=0)], "emb"),
    "position_rows_reversed": ("tinylm", "position_embedding",
                               lambda node, p: [np.ascontiguousarray(p["embeddings"][::-1])],
                               "embedded"),
    "layernorm_gamma_beta_swapped": ("tinylm", "layernorm", lambda node, p: [p["beta"], p["gamma"]], "#2"),
}


def break_checks(keras: Any) -> dict[str, Any]:
    """Each converter broken in turn (:data:`BREAKS`, by patching ``keras_model.layer_weights``), then a
    reordered :data:`~fwbench.runners.keras_model.WEIGHT_ORDER` (``load_weights`` must refuse it); also the
    unbroken baselines and each kind's variable order as Keras holds it."""
    from fwbench.runners import keras_model

    out: dict[str, Any] = {"baseline": {}, "broken": {}, "names": {}}
    inputs = {name: DataSource(load_spec(name)).batch(0)[0][:2] for name in ("tinylm", "tinyseq")}
    for name in ("tinylm", "tinyseq"):
        spec = load_spec(name)
        out["baseline"][name] = node_problems(keras, spec, varied_params(spec), inputs[name])
        graph = keras_model.build_graph(keras, spec, init_params(spec))
        for layer, node in zip(graph.layers, spec.layers):
            if node.kind in keras_model.WEIGHT_ORDER and node.kind not in out["names"]:
                out["names"][node.kind] = {"names": keras_model.weight_names(layer, node),
                                           "paths": [v.path.split("/", 1)[1] for v in layer.weights],
                                           "shapes": [list(w.shape) for w in layer.get_weights()]}
    original = keras_model.layer_weights
    for label, (name, kind, mutate, _) in BREAKS.items():
        spec = load_spec(name)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(keras_model, "layer_weights",
                       lambda node, p, kind=kind, mutate=mutate: mutate(node, p) if node.kind == kind
                       else original(node, p))
            out["broken"][label] = node_problems(keras, spec, varied_params(spec), inputs[name])
    out["reordered"] = {}
    for kind, order in (("multi_head_attention", ("key_kernel", "key_bias", "query_kernel", "query_bias", *QKV[4:])),
                        ("gru", ("recurrent_kernel", "kernel", "bias"))):
        spec = load_spec("tinylm")
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(keras_model.WEIGHT_ORDER, kind, order)
            try:
                keras_model.build_graph(keras, spec, init_params(spec))
                out["reordered"][kind] = "loaded"
            except ValueError as exc:
                out["reordered"][kind] = str(exc)
    return out


def embedding_adam_check(keras: Any, adam: Any = None) -> dict[str, float]:
    """One Adam step (train_on_batch) of Embedding(5, 3) -> Dense(2) on one sequence that repeats token 1:
    Adam's second moment of that row against dense Adam's, ``(1 - beta_2) * (sum of the row's gradients)^2``,
    and against ``(1 - beta_2) * sum of their squares`` (what an unsummed sparse gradient would give)."""
    vocab, width = 5, 3
    x = np.array([[1, 1, 2, 1]], np.int32)
    y = np.zeros((1, 4, 2), np.float32)
    table = np.random.default_rng(0).normal(size=(vocab, width)).astype(np.float32)
    kernel = np.random.default_rng(1).normal(size=(width, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(vocab, width),
                              keras.layers.Dense(2, use_bias=False)])
    model.set_weights([table, kernel])
    model.compile(optimizer=(adam or keras.optimizers.Adam)(0.1), loss="mse")
    model.train_on_batch(x, y)
    velocity = next(v for v in model.optimizer.variables if v.path.endswith("embeddings_velocity"))
    got = keras.ops.convert_to_numpy(velocity)[1].astype(np.float64)
    out = table[x[0]].astype(np.float64) @ kernel
    per_occurrence = (2.0 * (out - y[0]) / out.size) @ kernel.T  # d(mse)/d(row) of each token occurrence
    summed, squares = np.zeros((vocab, width)), np.zeros((vocab, width))
    np.add.at(summed, x[0], per_occurrence)
    np.add.at(squares, x[0], per_occurrence ** 2)
    dense, unsummed = 0.001 * summed[1] ** 2, 0.001 * squares[1]
    return {"vs_dense": float(np.max(np.abs(got - dense) / dense)),
            "vs_unsummed": float(np.max(np.abs(got - unsummed) / unsummed))}


def backend_checks(runner: str, out_dir: Path) -> dict[str, Any]:
    """Everything one back end checks, in this (fresh) process."""
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"seconds": {}}
    if runner in WORKER_RUNNERS:
        doc["worker"] = worker_parity(runner, out_dir)  # imports keras (KERAS_BACKEND)
        doc["seconds"]["worker"] = round(time.perf_counter() - t0, 1)
    import keras

    doc["backend"] = keras.backend.backend()
    doc["sessions"] = {}
    for name in WORKLOADS[runner]:
        doc["sessions"][name] = session_checks(runner, name)
        doc["seconds"][name] = round(time.perf_counter() - t0, 1)
    if runner in ADAM_RUNNERS:
        doc["embedding_adam"] = embedding_adam_check(keras)
    if runner == "keras":
        from fwbench.runners.keras_runner import dense_gradient_adam

        doc["embedding_adam_runner"] = embedding_adam_check(keras, dense_gradient_adam(keras))
        doc["breaks"] = break_checks(keras)
        doc["seconds"]["breaks"] = round(time.perf_counter() - t0, 1)
    return doc


# ------------------------------------------------------------------------------ the per-back-end processes
@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """runner -> its :func:`backend_checks` document (or ``{"error": ...}``); the three run concurrently."""
    if importlib.util.find_spec("keras") is None:  # not imported here: this process stays framework-free
        pytest.skip("keras not installed")
    from fwbench.launch import worker_env

    procs = {}
    for runner in RUNNERS:
        if runner == "keras-jax" and importlib.util.find_spec("jax") is None:
            continue
        d = tmp_path_factory.mktemp(runner)
        env = worker_env(Job(workload={}, runner=runner, device="cpu"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        log = open(d / "log.txt", "w")
        procs[runner] = (d, log, subprocess.Popen([sys.executable, "-m", "tests.test_seq_keras", runner, str(d)],
                                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    docs = {}
    for runner, (d, log, proc) in procs.items():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=400)
        if proc.poll() is None:
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


CASES = [(r, w) for r in RUNNERS for w in WORKLOADS[r]]


@pytest.mark.parametrize("runner,workload", CASES)
def test_forward_logits_match_reference(backends, runner, workload):
    doc = _doc(backends, runner)
    assert doc["backend"] == {"keras": "tensorflow", "keras-torch": "torch", "keras-jax": "jax"}[runner]
    s = doc["sessions"][workload]
    assert s["shape"] == s["want_shape"] == ([8, 6, 11] if workload == "tinylm" else [8, 3])
    assert s["rel_error"] <= REL, s
    assert s["model"] == "Functional"  # attention needs query and value: never a Sequential
    assert s["input_dtype"] == "int32"  # token ids stay integers


@pytest.mark.parametrize("runner,workload", CASES)
def test_first_loss_is_the_mean_over_batch_and_time(backends, runner, workload):
    """SparseCategoricalCrossentropy's sum_over_batch_size divides by every element of the [b, T] loss."""
    s = _doc(backends, runner)["sessions"][workload]
    assert parity.close(s["loss"], s["reference_loss"], 1e-5), s
    if workload == "tinylm":  # not the sum over time, nor one position
        assert not parity.close(s["loss"], s["sum_over_time_loss"], 1e-2)
        assert not parity.close(s["loss"], s["last_step_loss"], 1e-3)


@pytest.mark.parametrize("runner", RUNNERS)
def test_one_session_trains_at_several_lengths(backends, runner):
    """TINY_LM at T = 6 (its length), then 4: a finite loss, and the new length counted as a retrace where the
    step is traced (tensorflow's tf.function, jax's jit; the torch back end runs eagerly: None).

    Measured with T = 6, 4, 5: jax's jit compiles every new length (0, 1, 2 retraces), the tensorflow back
    end's ``reduce_retracing=True`` retraces once with the time axis relaxed to None, then reuses it (0, 1, 1)."""
    s = _doc(backends, runner)["sessions"]["tinylm"]
    assert len(s["length_losses"]) == 1 and all(math.isfinite(v) for v in s["length_losses"])
    assert s["retraces"] == ([None, None] if runner == "keras-torch" else [0, 1])


def test_settings_record_the_sequence_implementations(backends):
    lm = {r: _doc(backends, r)["sessions"]["tinylm"]["settings"] for r in backends}
    for runner, st in lm.items():
        assert st["layout"] == "NTC"
        assert st["lstm_impl"].startswith("keras.layers.LSTM (cuDNN: no, CPU)"), st
        assert st["gru_impl"].startswith("keras.layers.GRU(reset_after=True) (cuDNN: no, CPU)"), st
        attention = st["attention_impl"]
        assert attention.startswith("keras.layers.MultiHeadAttention") and "; causal)" in attention
    assert "tf.while_loop" in lm["keras"]["lstm_impl"] and "no flash" in lm["keras"]["attention_impl"]
    assert "F.scaled_dot_product_attention" in lm["keras-torch"]["attention_impl"]
    if "keras-jax" in lm:
        assert "lax.scan" in lm["keras-jax"]["gru_impl"] and 'implementation="xla"' in lm["keras-jax"]["attention_impl"]
    seq = _doc(backends, "keras")["sessions"]["tinyseq"]["settings"]
    assert "not causal" in seq["attention_impl"] and "gru_impl" in seq


def test_worker_parity_on_tinylm(backends):
    """The worker's parity phase on tinylm (keras, keras-torch): the initial loss is the reference's, and the
    parity check (fwbench.parity.evaluate, with keras as the reference runner) passes every cell."""
    spec = load_spec("tinylm")
    x, y = DataSource(spec).batch(0)
    expected = reference.cross_entropy(reference.forward(spec, init_params(spec), x, training=True), y)
    cells = []
    runners = [r for r in WORKER_RUNNERS if r in backends]
    for runner in runners:
        res = _doc(backends, runner)["worker"]
        assert res["status"] == "ok", (runner, res.get("reason"))
        p = res["parity"]
        assert len(p["losses"]) == spec.parity_steps and all(math.isfinite(v) for v in p["losses"]), p
        assert parity.close(p["initial_loss"], expected, 1e-5), (runner, p["initial_loss"], expected)
        assert res["settings"]["keras_backend"] == _doc(backends, runner)["backend"]
        cells.append({"id": f"tinylm/{runner}/cpu/0", "workload": "tinylm", "device": "cpu", "runner": runner,
                      "family": "keras", "parity": p})
    summary = parity.evaluate(cells, reference="keras")
    assert summary["ok"] and len(summary["groups"]) == 1, summary
    assert {c["runner"]: c["parity"]["status"] for c in cells} == {
        r: "reference" if r == "keras" else "ok" for r in runners}


def test_keras_weights_are_the_canonical_layout(backends):
    """Keras's own variable order and shapes are WEIGHT_ORDER's and the canonical ones (TINY_LM's first node of
    each kind): the attention's query/key/value kernels [d, h, k], biases [h, k], output kernel [h, k, d]."""
    names = _doc(backends, "keras")["breaks"]["names"]
    from fwbench.runners.keras_model import WEIGHT_ORDER

    for kind, got in names.items():
        assert got["names"] == list(WEIGHT_ORDER[kind]), (kind, got)
    assert names["multi_head_attention"]["paths"] == [
        "query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias",
        "attention_output/kernel", "attention_output/bias"]
    assert names["multi_head_attention"]["shapes"] == [[8, 2, 3], [2, 3]] * 3 + [[2, 3, 8], [8]]
    assert names["lstm"]["paths"] == ["lstm_cell/kernel", "lstm_cell/recurrent_kernel", "lstm_cell/bias"]
    assert names["lstm"]["shapes"] == [[5, 24], [6, 24], [24]]
    assert names["gru"]["shapes"] == [[8, 15], [5, 15], [2, 15]]
    assert names["position_embedding"]["shapes"] == [[8, 8]] and names["embedding"]["shapes"] == [[11, 8]]


def test_unbroken_converters_match_every_node(backends):
    assert _doc(backends, "keras")["breaks"]["baseline"] == {"tinylm": [], "tinyseq": []}


@pytest.mark.parametrize("label", list(BREAKS))
def test_breaking_a_converter_is_caught(backends, label):
    """Each conversion loaded wrongly (same shapes, so set_weights accepts it) mismatches at its own node."""
    problems = _doc(backends, "keras")["breaks"]["broken"][label]
    node = BREAKS[label][3]
    assert problems and f"node {node} (" in problems[-1], problems


@pytest.mark.parametrize("runner", [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=SPARSE_ADAM_REASON))
                                    if r == "keras" else r for r in ADAM_RUNNERS])
def test_adam_on_an_embedding_with_repeated_tokens_is_dense_adam(backends, runner):
    """A finding, not worked around (the runner measures Keras as it is): see SPARSE_ADAM_REASON."""
    check = _doc(backends, runner)["embedding_adam"]
    assert check["vs_dense"] < 1e-5, check


def test_tensorflow_adam_squares_each_occurrence(backends):
    """The other side of the finding: on the tensorflow back end the velocity is the unsummed one, exactly."""
    check = _doc(backends, "keras")["embedding_adam"]
    assert check["vs_unsummed"] < 1e-5 and check["vs_dense"] > 0.1, check


def test_the_keras_runner_trains_embeddings_with_dense_adam_on_tensorflow(backends):
    """The runner's answer to the finding: its Adam densifies the gradient first, so the velocity is Adam's."""
    check = _doc(backends, "keras")["embedding_adam_runner"]
    assert check["vs_dense"] < 1e-5 and check["vs_unsummed"] > 0.1, check


@pytest.mark.parametrize("kind", ["multi_head_attention", "gru"])
def test_loading_in_another_order_than_keras_holds_is_refused(backends, kind):
    message = _doc(backends, "keras")["breaks"]["reordered"][kind]
    assert message != "loaded" and "not in the order" in message, message


if __name__ == "__main__":  # one back end's checks, in the worker's environment (see the backends fixture)
    out = Path(sys.argv[2])
    result = backend_checks(sys.argv[1], out)
    (out / "checks.json").write_text(json.dumps(result, default=str))
