"""The NumPy reference forward pass of the graph kinds, against independent hand computations (no framework)."""

from __future__ import annotations

import math
import tomllib

import numpy as np

from fwbench.layers import Layer
from fwbench.reference import forward, layer_forward
from fwbench.weights import init_params
from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_GRAPH

RNG = np.random.default_rng(0)


def conv_direct(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """A valid, stride-1 convolution by loops: the definition, nothing vectorised."""
    n, h, w, _ = x.shape
    k = kernel.shape[0]
    out = np.zeros((n, h - k + 1, w - k + 1, kernel.shape[-1]))
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            out[:, i, j] = np.einsum("nabc,abco->no", x[:, i:i + k, j:j + k], kernel)
    return out


def test_a_grouped_convolution_is_a_convolution_with_a_block_diagonal_kernel():
    x = RNG.normal(size=(2, 5, 5, 4))
    kernel = RNG.normal(size=(3, 3, 2, 6))  # groups = 2: in 4 -> 2 per group, out 6 -> 3 per group
    full = np.zeros((3, 3, 4, 6))
    full[:, :, :2, :3], full[:, :, 2:, 3:] = kernel[..., :3], kernel[..., 3:]
    layer = Layer("conv2d", filters=6, kernel_size=3, groups=2, use_bias=False)
    np.testing.assert_allclose(layer_forward(layer, {"kernel": kernel}, x), conv_direct(x, full), atol=1e-12)


def test_a_depthwise_convolution_orders_output_channels_channel_major():
    x = RNG.normal(size=(2, 5, 5, 3))
    kernel = RNG.normal(size=(3, 3, 3, 2))  # multiplier 2: output channel c*2 + m
    bias = RNG.normal(size=6)
    layer = Layer("depthwise_conv2d", kernel_size=3, depth_multiplier=2)
    y = layer_forward(layer, {"kernel": kernel, "bias": bias}, x)
    for c in range(3):
        for m in range(2):
            one = conv_direct(x[..., c:c + 1], kernel[:, :, c:c + 1, m:m + 1])[..., 0] + bias[c * 2 + m]
            np.testing.assert_allclose(y[..., c * 2 + m], one, atol=1e-12)


def test_same_padding_puts_the_extra_pixel_after_and_avgpool_ignores_it():
    x = np.arange(1, 6, dtype=np.float64).reshape(1, 1, 5, 1)  # one row: 1 2 3 4 5
    # stride 2, window 2 on width 5: ceil(5/2) = 3 outputs, total padding 1, all of it on the right
    avg = layer_forward(Layer("avgpool2d", pool_size=2, strides=2, padding="same"), {}, x)
    np.testing.assert_allclose(avg.reshape(-1), [1.5, 3.5, 5.0])  # the last window holds only the 5
    mx = layer_forward(Layer("maxpool2d", pool_size=2, strides=2, padding="same"), {}, -x)
    np.testing.assert_allclose(mx.reshape(-1), [-1, -3, -5])  # the padding is -inf, never the max
    pad = layer_forward(Layer("zero_padding2d", pad=(1, 0, 0, 2)), {}, x)
    assert pad.shape == (1, 2, 7, 1) and pad[0, 0].sum() == 0 and list(pad[0, 1, :, 0]) == [1, 2, 3, 4, 5, 0, 0]


def test_activations_have_their_exact_definitions():
    def act(name: str, v: list[float]) -> np.ndarray:
        return layer_forward(Layer("activation", activation=name), {}, np.array([v]))[0]

    np.testing.assert_allclose(act("relu6", [-1, 3, 7]), [0, 3, 6])
    np.testing.assert_allclose(act("gelu", [1.0]), [0.5 * (1 + math.erf(1 / math.sqrt(2)))])  # 0.8413447, not tanh's
    np.testing.assert_allclose(act("swish", [2.0]), [2 / (1 + math.exp(-2))])
    soft = act("softmax", [1.0, 2.0, 3.0])
    np.testing.assert_allclose(soft, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


def test_merges_and_global_pooling():
    a, b = RNG.normal(size=(2, 3, 3, 2)), RNG.normal(size=(2, 3, 3, 4))
    np.testing.assert_allclose(layer_forward(Layer("concat"), {}, [a, b]), np.concatenate([a, b], -1))
    np.testing.assert_allclose(layer_forward(Layer("add"), {}, [a, a, a]), 3 * a)
    np.testing.assert_allclose(layer_forward(Layer("global_avgpool2d"), {}, a), a.mean(axis=(1, 2)))


def test_a_graph_runs_each_node_on_the_outputs_it_names():
    spec = parse_workload(tomllib.loads(TINY_GRAPH))
    params = init_params(spec)
    x = RNG.normal(size=(4, *spec.input_shape))
    outputs: dict[str, np.ndarray] = {}
    logits = forward(spec, params, x, training=True, outputs=outputs)
    assert logits.shape == (4, 3) and set(outputs) == {"input", *(l.name for l in spec.layers)}
    # the residual block's add is its input plus its activation
    np.testing.assert_allclose(outputs["r.1/#3"], outputs["#2"] + outputs["r.1/a"])
    np.testing.assert_allclose(outputs["#13"], np.concatenate([outputs["dw"], outputs["grouped"]], -1))
    np.testing.assert_allclose(outputs["#22"], outputs["d1"] + outputs["d2"])
