"""The NumPy reference of the sequence kinds: properties that pin their semantics down independently of any
framework (the runners' converter tests then hold every framework to this reference)."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import numpy as np
import pytest

from tests.conftest import TINY_LM, TINY_SEQ
from fwbench import reference
from fwbench.data import DataSource
from fwbench.layers import Layer
from fwbench.weights import init_params, orthogonal
from fwbench.workload_spec import parse_workload


def _spec(text: str):
    return parse_workload(tomllib.loads(text))


def test_the_language_model_is_causal_and_per_token():
    spec = _spec(TINY_LM)
    params = init_params(spec)
    x, y = DataSource(spec).batch(0)
    assert x.dtype == np.int64 and x.shape == (8, 6) and y.shape == (8, 6)
    logits = reference.forward(spec, params, x)
    assert logits.shape == (8, 6, 11)
    changed = x.copy()
    changed[:, 4] = (changed[:, 4] + 1) % 11
    after = reference.forward(spec, params, changed)
    np.testing.assert_array_equal(after[:, :4], logits[:, :4])  # no position sees a later token
    assert not np.allclose(after[:, 4:], logits[:, 4:])


def test_non_causal_attention_sees_the_whole_sequence():
    spec = _spec(TINY_SEQ)
    params = init_params(spec)
    x = DataSource(spec).batch(0)[0]
    out: dict = {}
    reference.forward(spec, params, x, outputs=out)
    changed = x.copy()
    changed[:, -1] = (changed[:, -1] + 1) % 9
    out2: dict = {}
    reference.forward(spec, params, changed, outputs=out2)
    attention = spec.layers[2].name
    assert not np.allclose(out[attention][:, 0], out2[attention][:, 0])


def test_lstm_matches_its_equations_written_out_for_one_step():
    rng = np.random.default_rng(0)
    layer = Layer(kind="lstm", units=2, return_sequences=True)
    p = {"kernel": rng.standard_normal((3, 8)), "recurrent_kernel": rng.standard_normal((2, 8)),
         "bias": rng.standard_normal(8)}
    x = rng.standard_normal((1, 2, 3))
    out = reference.layer_forward(layer, p, [x])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = x[0, 0] @ p["kernel"] + p["bias"]  # h0 = c0 = 0
    c1 = sig(z[0:2]) * np.tanh(z[4:6])  # i * g (the forget gate multiplies c0 = 0)
    h1 = sig(z[6:8]) * np.tanh(c1)
    np.testing.assert_allclose(out[0, 0], h1)
    z = x[0, 1] @ p["kernel"] + h1 @ p["recurrent_kernel"] + p["bias"]
    c2 = sig(z[2:4]) * c1 + sig(z[0:2]) * np.tanh(z[4:6])
    np.testing.assert_allclose(out[0, 1], sig(z[6:8]) * np.tanh(c2))
    last = reference.layer_forward(dataclasses.replace(layer, return_sequences=False), p, [x])
    np.testing.assert_allclose(last, out[:, -1])


def test_gru_is_the_reset_after_form():
    rng = np.random.default_rng(1)
    layer = Layer(kind="gru", units=2, return_sequences=True)
    p = {"kernel": rng.standard_normal((3, 6)), "recurrent_kernel": rng.standard_normal((2, 6)),
         "bias": rng.standard_normal((2, 6))}
    x = rng.standard_normal((1, 2, 3))
    out = reference.layer_forward(layer, p, [x])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h0 = out[0, 0]
    xi = x[0, 1] @ p["kernel"] + p["bias"][0]
    hi = h0 @ p["recurrent_kernel"] + p["bias"][1]
    z, r = sig(xi[0:2] + hi[0:2]), sig(xi[2:4] + hi[2:4])
    n = np.tanh(xi[4:6] + r * hi[4:6])  # reset applied after the recurrent matmul, its bias inside
    np.testing.assert_allclose(out[0, 1], z * h0 + (1 - z) * n)


def test_attention_with_one_head_is_softmax_of_scaled_scores():
    rng = np.random.default_rng(2)
    layer = Layer(kind="multi_head_attention", heads=1, key_dim=2, causal=False)
    d = 3
    p = {"query_kernel": rng.standard_normal((d, 1, 2)), "query_bias": rng.standard_normal((1, 2)),
         "key_kernel": rng.standard_normal((d, 1, 2)), "key_bias": rng.standard_normal((1, 2)),
         "value_kernel": rng.standard_normal((d, 1, 2)), "value_bias": rng.standard_normal((1, 2)),
         "output_kernel": rng.standard_normal((1, 2, d)), "output_bias": rng.standard_normal(d)}
    x = rng.standard_normal((1, 4, d))
    q = x[0] @ p["query_kernel"][:, 0] + p["query_bias"][0]
    k = x[0] @ p["key_kernel"][:, 0] + p["key_bias"][0]
    v = x[0] @ p["value_kernel"][:, 0] + p["value_bias"][0]
    s = q @ k.T / math.sqrt(2)
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    expected = (a @ v) @ p["output_kernel"][0] + p["output_bias"]
    np.testing.assert_allclose(reference.layer_forward(layer, p, [x])[0], expected)


def test_layernorm_position_embedding_and_pooling():
    x = np.arange(12, dtype=np.float64).reshape(1, 3, 4)
    ln = reference.layer_forward(Layer(kind="layernorm", epsilon=1e-5), {"gamma": np.ones(4), "beta": np.zeros(4)}, [x])
    np.testing.assert_allclose(ln.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(ln.var(-1), 1.25 / (1.25 + 1e-5))
    table = np.full((5, 4), 2.0)
    np.testing.assert_allclose(reference.layer_forward(Layer(kind="position_embedding", max_length=5),
                                                       {"embeddings": table}, [x]), x + 2)
    np.testing.assert_allclose(reference.layer_forward(Layer(kind="sequence_pool", pool="last"), {}, [x]), x[:, -1])
    np.testing.assert_allclose(reference.layer_forward(Layer(kind="sequence_pool", pool="mean"), {}, [x]), x.mean(1))


def test_token_cross_entropy_averages_over_batch_and_time():
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    each = [reference.cross_entropy(logits[i, t][None], labels[i, t][None]) for i in range(2) for t in range(3)]
    assert reference.cross_entropy(logits, labels) == pytest.approx(np.mean(each))


def test_initial_weights_of_the_sequence_kinds():
    spec = _spec(TINY_LM)
    params = init_params(spec)
    by_kind = {l.kind: p for l, p in zip(spec.layers, params)}
    assert np.abs(by_kind["embedding"]["embeddings"]).max() <= 0.05
    lstm = by_kind["lstm"]
    np.testing.assert_array_equal(lstm["bias"], np.r_[np.zeros(6), np.ones(6), np.zeros(12)])  # unit_forget_bias
    u = lstm["recurrent_kernel"]  # [6, 24]: orthonormal rows
    np.testing.assert_allclose(u @ u.T, np.eye(6), atol=1e-5)
    q = orthogonal(np.random.default_rng(0), (7, 3))
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-5)
    assert by_kind["gru"]["bias"].shape == (2, 15) and not by_kind["gru"]["bias"].any()
