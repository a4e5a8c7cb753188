"""Sequence workloads on the raw TensorFlow runners (tf-eager, tf-graph, tf-xla): the network equals the NumPy
reference on TINY_LM and TINY_SEQ, the Keras recurrent layers hold the shared weights exactly, one tf.function
session trains at two sequence lengths and counts the retrace, token ids stay integer under mixed precision,
breaking any conversion or op choice of :mod:`fwbench.runners.tf_net` is caught, and a worker run of tinylm
passes the parity check."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import numpy as np
import pytest

from fwbench import parity, reference
from fwbench.config import RunnerOptions
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.weights import init_params
from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_LM, TINY_SEQ, invoke

tf = pytest.importorskip("tensorflow")
from fwbench.runners import tf_net, tf_runner  # noqa: E402  (needs tensorflow)

SESSIONS = {"tf-eager": tf_runner.TFEagerSession, "tf-graph": tf_runner.TFGraphSession,
            "tf-xla": tf_runner.TFXLASession}


@pytest.fixture(scope="module")
def lm():
    return parse_workload(tomllib.loads(TINY_LM))


@pytest.fixture(scope="module")
def seq():
    return parse_workload(tomllib.loads(TINY_SEQ))


def session(runner: str, precision: str = "fp32"):
    s = SESSIONS[runner](Job(workload={}, runner=runner, device="cpu",
                             options=RunnerOptions(threads=1, precision=precision)))
    s.setup()
    return s


def perturbed(params, seed: int = 7):
    """Every parameter moved by uniform noise: non-zero biases (both GRU bias rows, every LSTM gate's),
    layer-norm gains away from 1, so that any misplaced block or row changes the output."""
    rng = np.random.default_rng(seed)
    return [{k: (v + rng.uniform(-0.3, 0.3, v.shape)).astype(np.float32) for k, v in p.items()} for p in params]


def mismatch(spec, params, x) -> float:
    """The largest difference between :class:`Net` (eager, inference) and the reference, relative to its scale."""
    want = reference.forward(spec, params, x)
    got = tf_net.Net(spec, params)(tf.constant(x), training=False).numpy()
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


def weights_now(s) -> list[dict[str, np.ndarray]]:
    """A session's current weights, canonical layout (the Keras recurrent variables included)."""
    return [{k: v.numpy() for k, v in d.items()} for d in s.net.vars]


@pytest.mark.parametrize("name", ["lm", "seq"])
def test_net_equals_the_reference_and_holds_the_shared_weights_exactly(request, name):
    spec = request.getfixturevalue(name)
    params = perturbed(init_params(spec))
    x = DataSource(spec).batch(0)[0]
    assert mismatch(spec, params, x) < 1e-5
    net = tf_net.Net(spec, params)
    for layer, p, held in zip(spec.layers, params, net.vars, strict=True):
        assert held.keys() == p.keys(), layer.name
        for k in p:  # bit-exact: the canonical layout is Keras's, nothing is rearranged
            assert np.array_equal(held[k].numpy(), p[k]), (layer.name, k)
        if layer.kind in ("lstm", "gru"):  # and the Keras cell reads exactly those variables
            cell = net.recurrent[layer.name].cell
            assert [w.value for w in (cell.kernel, cell.recurrent_kernel, cell.bias)] == list(held.values())
            assert np.array_equal(cell.bias.numpy(), p["bias"])
    assert sorted(map(id, net.trainable)) == sorted(id(v) for d in net.vars for v in d.values())


@pytest.mark.parametrize("runner,name", [("tf-eager", "lm"), ("tf-eager", "seq"), ("tf-graph", "seq"),
                                         ("tf-xla", "seq")])
def test_session_logits_and_first_loss_equal_the_reference(request, runner, name):
    """predict() gives [n, T, C] (per token) or [n, C]; the first training loss is the reference's cross-entropy
    (mean over batch and time). tf-graph on tinylm is the two-length test below."""
    spec = request.getfixturevalue(name)
    params = init_params(spec)
    x, y = DataSource(spec).batch(0)
    want = reference.forward(spec, params, x)
    s = session(runner)
    s.build(spec, params)
    if runner != "tf-xla":  # XLA compiles the forward pass separately: its loss is checked, not its logits
        got = s.predict(x)
        assert got.shape == want.shape == ((8, 6, 11) if name == "lm" else (8, 3))
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-5
    batch = s.put((x, y))
    assert batch[0].dtype == tf.int64 and batch[1].dtype == tf.int64
    assert abs(s.value(s.train_step(batch)) - reference.cross_entropy(want, y)) < 1e-5
    settings = s.settings()
    for kind in ("lstm", "gru"):
        impl = settings[f"{kind}_impl"]
        assert ("use_cudnn=False" in impl and "XLA" in impl) if runner == "tf-xla" else "use_cudnn='auto'" in impl
        assert "generic (" in impl  # on a CPU Keras never picks cuDNN
        if runner == "tf-graph":
            assert "read from the traced graph" in impl
    assert settings["attention_impl"].startswith("tf.einsum")


def test_graph_session_trains_at_two_lengths_and_counts_the_retrace(lm):
    """tf-graph on tinylm: T = 6 (the spec's), then 4, then 6 again. The first step's loss and logits are the
    reference's; the T = 4 step retraces once and its loss is the reference's at the weights after step 1."""
    params = init_params(lm)
    data = DataSource(lm)
    s = session("tf-graph")
    s.build(lm, params)
    x, y = data.batch(0)
    want = reference.forward(lm, params, x)
    assert abs(s.value(s.train_step(s.put((x, y)))) - reference.cross_entropy(want, y)) < 1e-5
    assert s.retraces() == 0
    x4, y4 = (a[:, :4] for a in data.batch(1))
    now = weights_now(s)
    assert not np.array_equal(now[0]["embeddings"], params[0]["embeddings"])  # it trained
    loss4 = s.value(s.train_step(s.put((x4, y4))))
    assert abs(loss4 - reference.cross_entropy(reference.forward(lm, now, x4), y4)) < 1e-5
    assert s.retraces() == 1
    s.value(s.train_step(s.put(data.batch(2))))  # the T = 6 graph is reused
    assert s.retraces() == 1
    assert s.predict(x4).shape == (8, 4, 11)


def test_token_ids_stay_integer_under_mixed_precision(lm):
    """bf16: ids reach tf.gather as int64, the recurrent layers take Keras's mixed policy, the variables stay
    float32, and the first loss is fp32's within the bf16 tolerance."""
    params, batch = init_params(lm), DataSource(lm).batch(0)
    losses = {}
    for p in ("fp32", "bf16"):
        s = session("tf-eager", p)
        s.build(lm, params)
        x, y = s.put(batch)
        assert x.dtype == tf.int64
        losses[p] = s.value(s.train_step((x, y)))
        assert all(v.dtype == tf.float32 for v in s.net.trainable)
        rnn = next(iter(s.net.recurrent.values()))
        assert rnn.dtype_policy.name == ("float32" if p == "fp32" else "mixed_bfloat16")
    assert parity.close(losses["bf16"], losses["fp32"], parity.TOLERANCES["bf16"][0])
    assert losses["bf16"] != losses["fp32"]


# ------------------------------------------------------------------ breaking a conversion is caught
def _blocks(a: np.ndarray, n: int, order: tuple[int, ...]) -> np.ndarray:
    """``a``'s last axis split into ``n`` gate blocks, reassembled in ``order``."""
    parts = np.split(a, n, axis=-1)
    return np.concatenate([parts[i] for i in order], axis=-1)


def _recurrent_broken(how: str):
    def convert(layer, p):
        w = dict(ORIGINAL["recurrent_weights"](layer, p))
        if layer.kind == "lstm" and how == "lstm gates c,o swapped":  # i, f, o, c: an MIOpen-style order
            w = {k: _blocks(v, 4, (0, 1, 3, 2)) for k, v in w.items()}
        if layer.kind == "lstm" and how == "lstm gates as torch's i,f,g,o read as i,g,f,o":
            w = {k: _blocks(v, 4, (0, 2, 1, 3)) for k, v in w.items()}
        if layer.kind == "gru" and how == "gru gates z,r swapped":  # torch's r, z, n order
            w = {k: _blocks(v, 3, (1, 0, 2)) for k, v in w.items()}
        if layer.kind == "gru" and how == "gru bias rows swapped":  # recurrent bias read as the input bias
            w["bias"] = w["bias"][::-1].copy()
        return w
    return convert


def _attention_broken(how: str):
    def run(layer, v, x):
        v = dict(v)
        if how == "attention q,k swapped":
            v["query_kernel"], v["key_kernel"] = v["key_kernel"], v["query_kernel"]
        if how == "attention k,v swapped":
            v["key_kernel"], v["value_kernel"] = v["value_kernel"], v["key_kernel"]
        if how == "attention kernel [d,h,k] read as [d,k,h]":
            d, h, k = v["query_kernel"].shape
            v["query_kernel"] = tf.reshape(tf.transpose(tf.reshape(v["query_kernel"], [d, k, h]), [0, 2, 1]),
                                           [d, h, k])
        if how == "attention output kernel heads, key_dim transposed":
            h, k, d = v["output_kernel"].shape
            v["output_kernel"] = tf.reshape(tf.transpose(tf.reshape(v["output_kernel"], [k, h, d]), [1, 0, 2]),
                                            [h, k, d])
        if how == "attention output bias dropped":
            v["output_bias"] = tf.zeros_like(v["output_bias"])
        return ORIGINAL["attention"](layer, v, x)
    return run


BREAKS = {
    **{how: ("recurrent_weights", _recurrent_broken(how)) for how in
       ("lstm gates c,o swapped", "lstm gates as torch's i,f,g,o read as i,g,f,o", "gru gates z,r swapped",
        "gru bias rows swapped")},
    **{how: ("attention", _attention_broken(how)) for how in
       ("attention q,k swapped", "attention k,v swapped", "attention kernel [d,h,k] read as [d,k,h]",
        "attention output kernel heads, key_dim transposed", "attention output bias dropped")},
    "no causal mask": ("causal_mask", lambda t: tf.ones([t, t], tf.bool)),
    "position table read from row 1": ("position_embedding",
                                       lambda layer, x, table: x + table[1:tf.shape(x)[1] + 1]),
    "embedding rows off by one": ("embedding", lambda layer, ids, table: tf.gather(table, (ids + 1) % table.shape[0])),
    "layernorm over time": ("layernorm", lambda layer, v, x: tf.nn.batch_normalization(
        x, *tf.nn.moments(x, axes=[1], keepdims=True), v["beta"], v["gamma"], layer.epsilon)),
    "layernorm epsilon 1e-3 everywhere": ("layernorm", lambda layer, v, x: ORIGINAL["layernorm"](
        dataclasses.replace(layer, epsilon=1e-3), v, x)),
    "per-token dense with positions reversed": ("dense", lambda layer, x, kernel: tf.tensordot(
        tf.reverse(x, [1]), kernel, axes=1)),
    "first step pooled as last": ("sequence_pool", lambda layer, x: x[:, 0] if layer.pool == "last"
                                  else tf.reduce_mean(x, axis=1)),
    "mean pool as a sum": ("sequence_pool", lambda layer, x: x[:, -1] if layer.pool == "last"
                           else tf.reduce_sum(x, axis=1)),
}
ORIGINAL = {name: getattr(tf_net, name) for name, _ in BREAKS.values()}
# which tiny workload shows each break: TINY_SEQ has the pools and one head of non-causal attention,
# TINY_LM every other kind (two heads of three: the head/key_dim order matters)
ON_SEQ = ("first step pooled as last", "mean pool as a sum")


@pytest.mark.parametrize("how", list(BREAKS))
def test_a_broken_conversion_no_longer_matches_the_reference(lm, seq, monkeypatch, how):
    spec = seq if how in ON_SEQ else lm
    params = perturbed(init_params(spec))
    x = DataSource(spec).batch(0)[0]
    assert mismatch(spec, params, x) < 1e-5
    name, broken = BREAKS[how]
    monkeypatch.setattr(tf_net, name, broken)
    assert mismatch(spec, params, x) > 1e-3


def test_a_loss_averaged_over_the_batch_only_is_caught(lm, monkeypatch):
    """Per-token cross-entropy is the mean over batch AND time; a sum over time would differ by T."""
    params = init_params(lm)
    x, y = DataSource(lm).batch(0)
    want = reference.cross_entropy(reference.forward(lm, params, x), y)
    monkeypatch.setattr(tf_runner, "loss_fn", lambda logits, y: tf.reduce_mean(tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), axis=-1)))
    s = session("tf-eager")
    s.build(lm, params)
    assert abs(s.value(s.infer_step(s.put((x, y)))) - want) > 1.0


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_worker_run_of_tinylm_passes_the_parity_check(workload_dir, tmp_path, cli):
    """tf-eager and tf-graph in worker processes on tinylm: parity ok, tf-eager's initial loss is the NumPy
    reference's, and the cells record how they ran the recurrent layers and the attention."""
    out = tmp_path / "lm.json"
    res = invoke(cli, "run", "-r", "tf-eager", "-r", "tf-graph", "-w", "tinylm", "--quick", "--threads", "1",
                 "--strict", "-o", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    cells = {c["runner"]: c for c in doc["cells"]}
    assert {r: c["status"] for r, c in cells.items()} == {"tf-eager": "ok", "tf-graph": "ok"}
    assert doc["parity"]["ok"] and cells["tf-graph"]["parity"]["status"] == "ok"
    spec = parse_workload(tomllib.loads(TINY_LM))
    x, y = DataSource(spec).batch(0)
    want = reference.cross_entropy(reference.forward(spec, init_params(spec), x), y)
    for cell in cells.values():
        assert abs(cell["parity"]["initial_loss"] - want) < 1e-5
        assert cell["parity"]["kstep_loss"] != cell["parity"]["initial_loss"]  # it trained (batch 2: another loss)
        assert "keras.layers.LSTM" in cell["settings"]["lstm_impl"]
        assert "keras.layers.GRU(reset_after=True)" in cell["settings"]["gru_impl"]
        assert cell["settings"]["attention_impl"].startswith("tf.einsum")
    assert cells["tf-graph"]["retraces"] == 0
