"""Graph workloads on the raw TensorFlow runners (tf-eager, tf-graph, tf-xla): the network equals the NumPy
reference, the worker's parity phase agrees across the three wrappings, the moving batch-norm statistics follow
Keras's rule, and breaking any one op choice or the wiring of :mod:`fwbench.runners.tf_net` is caught."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from fwbench import parity, reference
from fwbench.config import RunnerOptions
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.weights import init_params
from fwbench.worker import parity_phase
from fwbench.workload import load_workload
from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_GRAPH

tf = pytest.importorskip("tensorflow")
from fwbench.runners import tf_net, tf_runner  # noqa: E402  (needs tensorflow)

SESSIONS = {"tf-eager": tf_runner.TFEagerSession, "tf-graph": tf_runner.TFGraphSession,
            "tf-xla": tf_runner.TFXLASession}


@pytest.fixture(scope="module")
def graph():
    return parse_workload(tomllib.loads(TINY_GRAPH))


def session(runner: str, precision: str = "fp32"):
    s = SESSIONS[runner](Job(workload={}, runner=runner, device="cpu",
                             options=RunnerOptions(threads=1, precision=precision)))
    s.setup()
    return s


def with_moving_stats(spec, params, x):
    """``params`` with moving statistics near (not at) each batch norm's batch moments on ``x``, so that
    inference mode is neither the trivial initial statistics nor the training-mode result."""
    outputs: dict[str, np.ndarray] = {}
    reference.forward(spec, params, x, training=True, outputs=outputs)
    rng = np.random.default_rng(5)
    out = [dict(p) for p in params]
    for layer, p in zip(spec.layers, out):
        if layer.kind == "batchnorm":
            h = outputs[layer.inputs[0]]
            axes = tuple(range(h.ndim - 1))
            p["moving_mean"] = (h.mean(axis=axes) + 0.1 * rng.standard_normal(h.shape[-1])).astype(np.float32)
            p["moving_variance"] = (h.var(axis=axes) * rng.uniform(0.5, 1.5, h.shape[-1])).astype(np.float32)
    return out


def mismatch(spec, params, x, training: bool) -> float:
    """The largest difference between :class:`Net` (eager) and the reference, relative to the reference's scale."""
    want = reference.forward(spec, params, x, training=training)
    got = tf_runner.Net(spec, params)(tf.constant(x), training=training).numpy()
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("name", ["tinygraph", "resnet20", "mobilenet"])
def test_forward_equals_the_reference(graph, name):
    spec = graph if name == "tinygraph" else load_workload(name)
    x = DataSource(spec).batch(0)[0][:2]
    params = with_moving_stats(spec, init_params(spec), x[::-1] * 1.5)
    assert mismatch(spec, params, x, training=True) < 1e-4  # float32 vs float64, 30+ layers deep
    assert mismatch(spec, params, x, training=False) < 1e-4


def test_parity_phase_agrees_across_eager_graph_and_xla(graph):
    """The worker's parity phase (3 steps) through each session: finite losses that agree within parity's
    tolerances, and the same moving statistics; every mode names how it ran the grouped conv (XLA)."""
    params, data = init_params(graph), DataSource(graph)
    got, stats = {}, {}
    for runner in SESSIONS:
        s = session(runner)
        got[runner] = parity_phase(s, graph, params, data)
        stats[runner] = s.batchnorm_stats()
        assert all(np.isfinite(got[runner]["losses"])), runner
        assert "XLA" in s.settings()["grouped_conv"] and s.settings()["grouped_conv"].startswith("tf.nn.conv2d")
    t_init, t_k = parity.TOLERANCES["fp32"]
    ref = got["tf-eager"]
    for runner in ("tf-graph", "tf-xla"):
        assert parity.close(got[runner]["initial_loss"], ref["initial_loss"], t_init), runner
        assert parity.close(got[runner]["kstep_loss"], ref["kstep_loss"], t_k), runner
        for a, b in zip(stats[runner], stats["tf-eager"], strict=True):
            np.testing.assert_allclose(a, b, rtol=t_k, atol=t_k, err_msg=runner)
    assert ref["kstep_loss"] != ref["initial_loss"]  # it trained


def keras_moving_stats(spec, params, x, before):
    """The Keras rule for one training step: ``m * moving + (1 - m) * batch moments`` of each BN's input."""
    outputs: dict[str, np.ndarray] = {}
    reference.forward(spec, params, x, training=True, outputs=outputs)
    out = []
    for layer, stats in zip([l for l in spec.layers if l.kind == "batchnorm"], before):
        h = outputs[layer.inputs[0]]
        axes = tuple(range(h.ndim - 1))
        m = layer.momentum
        out.append(m * stats + (1 - m) * np.stack([h.mean(axis=axes), h.var(axis=axes)]))
    return out


def test_batchnorm_stats_follow_the_keras_rule(graph):
    """tf-graph after K = 1 and K = 2 steps (the second from the session's own updated weights, read back);
    the parity test holds tf-eager and tf-xla to the same statistics."""
    params, data = init_params(graph), DataSource(graph)
    s = session("tf-graph")
    s.build(graph, params)
    stats = [np.stack([p["moving_mean"], p["moving_variance"]]).astype(np.float64)
             for layer, p in zip(graph.layers, params) if layer.kind == "batchnorm"]
    assert [a.shape for a in stats] == [(2, 4)] * 3 + [(2, 72)]  # after the flatten: HWC features
    for k in range(2):
        now = [{key: var.numpy() for key, var in v.items()} for v in s.net.vars]  # weights before step k
        x, y = data.batch(k)
        stats = keras_moving_stats(graph, now, x, stats)
        s.value(s.train_step(s.put((x, y))))
        got = s.batchnorm_stats()
        assert all(g.dtype == np.float64 for g in got)
        for g, want in zip(got, stats):
            np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5, err_msg=f"after {k + 1} step(s)")


def test_mixed_precision_step(graph):
    """bf16/fp16 casts reach the depthwise kernel and the nested grouped conv; each first loss is fp32's
    within the precision's tolerance (tf-eager: the cast code is the one Net all modes share)."""
    params, batch = init_params(graph), DataSource(graph).batch(0)
    losses = {}
    for p in ("fp32", "bf16", "fp16"):
        s = session("tf-eager", p)
        s.build(graph, params)
        losses[p] = s.value(s.train_step(s.put(batch)))
        assert all(v.dtype == tf.float32 for v in s.net.trainable)
    for p in ("bf16", "fp16"):
        assert parity.close(losses[p], losses["fp32"], parity.TOLERANCES[p][0]) and losses[p] != losses["fp32"], p


# ------------------------------------------------------------------ breaking a converter is caught
def _depthwise_channels_multiplier_major(layer, x, kernel):  # output channel m * in + c instead of c * mult + m
    y = tf_net.tf.nn.depthwise_conv2d(x, kernel, [1, layer.strides, layer.strides, 1], layer.padding.upper())
    c, mult = kernel.shape[2], kernel.shape[3]
    return tf.reshape(tf.transpose(tf.reshape(y, [*y.shape[:3], c, mult]), [0, 1, 2, 4, 3]), tf.shape(y))


def _pool_same_extra_pixel_first(layer, x):  # "same" padding with the extra pixel top/left, padding counted
    if layer.kind != "avgpool2d" or layer.padding != "same":
        return ORIGINAL["pool2d"](layer, x)
    from fwbench.layers import same_padding

    (t, b), (l, r) = (same_padding(n, layer.pool_size, layer.strides) for n in x.shape[1:3])
    x = tf.pad(x, [[0, 0], [b, t], [r, l], [0, 0]])
    return tf.nn.avg_pool2d(x, layer.pool_size, layer.strides, "VALID")


def _pad_axes_swapped(layer, x):  # [left, right] on the rows, [top, bottom] on the columns
    top, bottom, left, right = layer.pad
    return tf.pad(x, [[0, 0], [left, right], [top, bottom], [0, 0]])


def _add_without_shortcut(layer, values):  # an add reads its last input twice: the shortcut is lost
    inputs = ORIGINAL["node_inputs"](layer, values)
    return [inputs[-1]] * len(inputs) if layer.kind == "add" else inputs


def _grouped_slices_swapped(layer, x, kernel):  # the groups' output slices in reverse order
    g = layer.groups
    kernel = tf.concat(tf.split(kernel, g, axis=-1)[::-1], axis=-1) if g > 1 else kernel
    return ORIGINAL["conv2d"](layer, x, kernel)


ORIGINAL = {name: getattr(tf_net, name) for name in ("depthwise_conv2d", "pool2d", "zero_padding2d", "node_inputs",
                                                      "conv2d")}
BREAKS = {"depthwise_conv2d": _depthwise_channels_multiplier_major, "pool2d": _pool_same_extra_pixel_first,
          "zero_padding2d": _pad_axes_swapped, "node_inputs": _add_without_shortcut,
          "conv2d": _grouped_slices_swapped}


@pytest.mark.parametrize("name", list(BREAKS))
def test_a_broken_converter_no_longer_matches_the_reference(graph, monkeypatch, name):
    x = DataSource(graph).batch(0)[0][:4]
    params = init_params(graph)
    assert mismatch(graph, params, x, training=True) < 1e-5
    monkeypatch.setattr(tf_net, name, BREAKS[name])
    assert mismatch(graph, params, x, training=True) > 1e-3
