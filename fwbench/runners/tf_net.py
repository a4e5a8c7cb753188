"""The network of the TensorFlow runners: a workload's graph as ``tf.Variable`` s and ``tf.nn`` ops (no Keras).

:class:`Net` runs the nodes of ``spec.layers`` in their (topological) order, each on the outputs of the
nodes it names in ``inputs`` (``"input"`` is the network's input); the last node's output is the logits.
Data runs NHWC and the shared weights' canonical layout *is* TensorFlow's (HWIO conv kernels, grouped
``[k, k, in/groups, out]``, depthwise ``[k, k, in, multiplier]``, ``[in, out]`` dense, HWC flatten), so
nothing is converted. Every kind is one TensorFlow op with Keras's semantics (:mod:`fwbench.layers`):

- ``conv2d``: ``tf.nn.conv2d``; ``same`` padding is TensorFlow's own (extra pixel bottom/right). A grouped
  kernel (``in/groups`` input channels) makes ``tf.nn.conv2d`` a grouped convolution. TensorFlow's CPU
  kernels run its forward pass but not its gradients (``Conv2DBackpropInput``: "Gradients for grouped
  convolutions are not supported on CPU"), so, as Keras's TensorFlow backend does (``keras.src.backend.
  tensorflow.nn.conv``), a grouped convolution runs in a nested ``tf.function(jit_compile=True)``, which XLA
  compiles, forward and backward, where the rest of the step runs as it is (``xla_grouped_conv``; off on
  CUDA, where cuDNN has grouped convolutions);
- ``depthwise_conv2d``: ``tf.nn.depthwise_conv2d`` (output channel ``c * multiplier + m``, as canonical);
- ``maxpool2d`` / ``avgpool2d``: ``tf.nn.max_pool2d`` / ``tf.nn.avg_pool2d`` (whose ``same`` windows average
  only the input pixels they cover, as canonical); ``global_avgpool2d``: ``tf.reduce_mean`` over H and W;
- ``zero_padding2d``: ``tf.pad`` with ``[[0, 0], [top, bottom], [left, right], [0, 0]]``;
- ``add``: a sum, left to right, as Keras's ``Add`` writes it; ``concat``: ``tf.concat`` on the last axis;
- ``batchnorm``: ``tf.nn.moments`` (biased variance) and ``tf.nn.batch_normalization``; the moving
  statistics follow Keras's rule ``moving = momentum * moving + (1 - momentum) * batch``;
- activations: ``tf.nn.relu6``, ``tf.nn.gelu(approximate=False)`` (exact), ``tf.nn.silu`` (swish),
  ``tf.nn.softmax`` (last axis), ``tf.nn.relu``, ``tf.math.tanh``, ``tf.math.sigmoid``.

Mixed precision: the variables are float32; the kernels and biases of conv2d, depthwise_conv2d and dense
are cast to the compute dtype in the forward pass (their gradients flow back as float32); batch norm
computes in float32, as Keras does.
"""

from __future__ import annotations

import functools
import os

# TensorFlow reads this at import: set it explicitly (a user's own value wins and is recorded).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fwbench.layers import MERGES, NON_TRAINABLE, Layer  # noqa: E402
from fwbench.weights import Params  # noqa: E402
from fwbench.workload_graph import NETWORK_INPUT  # noqa: E402
from fwbench.workload_spec import WorkloadSpec  # noqa: E402

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu, "relu6": tf.nn.relu6, "gelu": functools.partial(tf.nn.gelu, approximate=False),
    "swish": tf.nn.silu, "softmax": tf.nn.softmax, "tanh": tf.math.tanh, "sigmoid": tf.math.sigmoid,
    "linear": tf.identity}
WEIGHTED = ("conv2d", "depthwise_conv2d", "dense")  # their parameters are cast under mixed precision


def conv2d(layer: Layer, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``tf.nn.conv2d``; a kernel with fewer input channels than ``x`` makes it grouped."""
    return tf.nn.conv2d(x, kernel, strides=layer.strides, padding=layer.padding.upper())


def depthwise_conv2d(layer: Layer, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    s = layer.strides
    return tf.nn.depthwise_conv2d(x, kernel, strides=[1, s, s, 1], padding=layer.padding.upper())


def pool2d(layer: Layer, x: tf.Tensor) -> tf.Tensor:
    op = tf.nn.max_pool2d if layer.kind == "maxpool2d" else tf.nn.avg_pool2d
    return op(x, layer.pool_size, layer.strides, padding=layer.padding.upper())


def zero_padding2d(layer: Layer, x: tf.Tensor) -> tf.Tensor:
    top, bottom, left, right = layer.pad
    return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])


def merge(layer: Layer, xs: list[tf.Tensor]) -> tf.Tensor:
    if layer.kind == "concat":
        return tf.concat(xs, axis=-1)
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def node_inputs(layer: Layer, values: dict[str, tf.Tensor]) -> tf.Tensor | list[tf.Tensor]:
    """The outputs of the nodes ``layer`` reads: a list for add and concat, else the one tensor."""
    inputs = [values[name] for name in layer.inputs]
    return inputs if layer.kind in MERGES else inputs[0]


class Net(tf.Module):
    """The workload's graph as TensorFlow variables and ``tf.nn`` ops (NHWC, Keras semantics)."""

    def __init__(self, spec: WorkloadSpec, params: Params, dtype: tf.DType = tf.float32,
                 compute_dtype: tf.DType | None = None, xla_grouped_conv: bool = True):
        super().__init__(name="net")
        self.layers = spec.layers
        self.dtype = dtype
        self.compute_dtype = compute_dtype or dtype  # mixed precision: float32 variables, bf16/fp16 math
        self.rng = tf.random.Generator.from_seed(spec.seed)  # dropout masks, reproducible per build
        self.vars: list[dict[str, tf.Variable]] = []
        for i, p in enumerate(params):
            self.vars.append({k: tf.Variable(v, dtype=dtype, name=f"l{i}_{k}", trainable=k not in NON_TRAINABLE)
                              for k, v in p.items()})
        self.trainable = [v for d in self.vars for v in d.values() if v.trainable]
        # one compiled function per grouped convolution (Keras's CPU workaround), traced once per input shape
        self.grouped = {layer.name: tf.function(functools.partial(conv2d, layer), jit_compile=True)
                        for layer in self.layers if xla_grouped_conv and layer.kind == "conv2d" and layer.groups > 1}

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        values = {NETWORK_INPUT: tf.cast(x, self.compute_dtype)}
        for layer, v in zip(self.layers, self.vars):
            if self.compute_dtype != self.dtype and layer.kind in WEIGHTED:
                v = {k: tf.cast(w, self.compute_dtype) for k, w in v.items()}  # gradients flow back as float32
            values[layer.name] = self._layer(layer, v, node_inputs(layer, values), training)
        return values[self.layers[-1].name]

    def _layer(self, layer: Layer, v: dict[str, tf.Variable], x, training: bool) -> tf.Tensor:
        """One node: ``x`` is its input tensor, or the list of them for add and concat."""
        kind = layer.kind
        if kind in ("conv2d", "depthwise_conv2d", "dense"):
            if kind == "dense":
                x = tf.matmul(x, v["kernel"])
            elif kind == "depthwise_conv2d":
                x = depthwise_conv2d(layer, x, v["kernel"])
            else:
                x = self.grouped.get(layer.name, functools.partial(conv2d, layer))(x, v["kernel"])
            if "bias" in v:
                # a broadcast add, as Keras writes it: ~4% faster per CPU training step than tf.nn.bias_add
                # (benchmarks/harness_tf.py), whose BiasAddGrad does not fuse as well under oneDNN
                x = x + v["bias"]
            return ACTIVATIONS[layer.activation](x)
        if kind in ("maxpool2d", "avgpool2d"):
            return pool2d(layer, x)
        if kind == "global_avgpool2d":
            return tf.reduce_mean(x, axis=[1, 2])
        if kind == "zero_padding2d":
            return zero_padding2d(layer, x)
        if kind in MERGES:
            return merge(layer, x)
        if kind == "flatten":
            return tf.reshape(x, [tf.shape(x)[0], -1])  # NHWC -> HWC order, the canonical one
        if kind == "dropout":
            if not training or layer.rate == 0.0:
                return x
            seed = self.rng.make_seeds(1)[:, 0]
            return tf.nn.experimental.stateless_dropout(x, rate=layer.rate, seed=seed)
        if kind == "batchnorm":
            return batchnorm(layer, v, x, training)
        if kind == "activation":
            return ACTIVATIONS[layer.activation](x)
        raise ValueError(f"unknown layer {kind}")

    def batchnorm_stats(self) -> list[np.ndarray]:
        """``[2, C]`` float64 (moving mean, moving variance) per batchnorm node, in node order."""
        return [np.stack([v["moving_mean"].numpy(), v["moving_variance"].numpy()]).astype(np.float64)
                for layer, v in zip(self.layers, self.vars) if layer.kind == "batchnorm"]


def batchnorm(layer: Layer, v: dict[str, tf.Variable], x: tf.Tensor, training: bool) -> tf.Tensor:
    """Keras's batch norm over every axis but the last; statistics in float32 under mixed precision."""
    if x.dtype != v["gamma"].dtype:
        return tf.cast(batchnorm(layer, v, tf.cast(x, v["gamma"].dtype), training), x.dtype)
    if training:
        # Keras: normalise with the batch's (biased) moments; moving = m*moving + (1-m)*batch.
        mean, var = tf.nn.moments(x, axes=list(range(len(x.shape) - 1)))
        m = layer.momentum
        v["moving_mean"].assign(v["moving_mean"] * m + mean * (1.0 - m))
        v["moving_variance"].assign(v["moving_variance"] * m + var * (1.0 - m))
    else:
        mean, var = v["moving_mean"], v["moving_variance"]
    return tf.nn.batch_normalization(x, mean, var, v["beta"], v["gamma"], layer.epsilon)
