"""The network of the TensorFlow runners: a workload's graph as ``tf.Variable`` s and ``tf.nn`` ops (Keras only
for the recurrent layers, see below).

:class:`Net` runs the nodes of ``spec.layers`` in their (topological) order, each on the outputs of the
nodes it names in ``inputs`` (``"input"`` is the network's input); the last node's output is the logits.
Data runs NHWC and the shared weights' canonical layout *is* TensorFlow's (HWIO conv kernels, grouped
``[k, k, in/groups, out]``, depthwise ``[k, k, in, multiplier]``, ``[in, out]`` dense, HWC flatten), so
nothing is converted. Every kind is TensorFlow ops with Keras's semantics (:mod:`fwbench.layers`):

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

Sequences (``[batch, time, features]``; token ids ``[batch, time]`` stay integer, int64 as fed, which
``tf.gather`` takes directly). Nothing hard-codes the time axis: any ``T <= `` the spec's length runs, and
``tf.function`` traces each new ``T`` once (its default retracing, counted by the runner):

- ``embedding``: ``tf.gather`` of the ids' rows of a ``tf.Variable`` table (``tf.nn.embedding_lookup``'s
  op). Its gradient is an ``IndexedSlices``, densified before the optimizer (the runner): Keras's Adam is
  dense, every row's moments decay each step;
- ``position_embedding``: the table's first ``tf.shape(x)[1]`` rows (a slice), added;
- ``layernorm``: ``tf.nn.moments`` over the last axis (biased variance) and ``tf.nn.batch_normalization``
  with the layer's epsilon, the ``tf.nn`` spelling of the batch-norm code above over a different axis
  (one implementation for both norms; ``keras.layers.LayerNormalization`` is the keras runner's);
- ``dense`` on ``[batch, time, features]``: ``tf.tensordot(x, kernel, 1)``, TensorFlow's reshape-to-2-D
  ``MatMul`` (what Keras 2's ``Dense`` ran on 3-D inputs); a flat input keeps ``tf.matmul``;
- ``multi_head_attention``: written out as a TensorFlow user writes it on ``tf.Variable`` s held in Keras's
  layout (``query/key/value_kernel [d, heads, key_dim]``, ``output_kernel [heads, key_dim, d]``, so the
  shared weights load as they are): ``tf.einsum`` projections (Keras ``EinsumDense``'s equations), the
  query scaled by ``1/sqrt(key_dim)``, scores ``einsum("bshk,bthk->bhts")``, a causal mask from
  ``tf.linalg.band_part`` whose masked scores become -1e9 (-3e4 in float16; Keras ``Softmax``'s rule),
  ``tf.nn.softmax``, ``einsum`` with the values and through the output kernel. Chosen over calling
  ``keras.layers.MultiHeadAttention`` inside the tape because this runner is the raw-TensorFlow one
  (``tf.Variable`` + TensorFlow ops; the keras runner measures the Keras layer, which in Keras 3.15 routes
  through ``keras.ops.dot_product_attention``), and because the einsum form is what XLA and Grappler see
  as plain TensorFlow ops;
- ``lstm`` / ``gru``: ``keras.layers.LSTM`` / ``keras.layers.GRU(reset_after=True)`` built once and called
  inside our ``GradientTape`` step (what TensorFlow users write for recurrent layers; TensorFlow has no
  recurrent layer of its own). Their variables are Keras's, whose layout is the canonical one, so
  :func:`recurrent_weights` loads the shared weights as they are (kernel ``[in, g*u]``, recurrent kernel
  ``[u, g*u]``, LSTM bias ``[4u]`` in i, f, c, o order; GRU bias ``[2, 3u]`` in z, r, h order). Keras 3.15
  on TensorFlow (``keras.src.backend.tensorflow.rnn``): with ``use_cudnn="auto"`` it runs the fused cuDNN
  kernel (``CudnnRNNV3``) when a GPU is visible and the layer fits it (tanh, sigmoid, bias, no unroll, GRU
  ``reset_after``, no recurrent dropout: all hold here), else the generic path, a ``tf.while_loop`` over the
  cell (one fused matmul per step for the gates). XLA cannot compile ``CudnnRNNV3`` (Keras itself turns
  ``jit_compile`` off for such a model), so ``tf-xla`` builds them with ``use_cudnn=False``: the generic
  loop, compiled with the step. Which one a traced step really contains is read from its graph
  (:attr:`Net.recurrent_impl`);
- ``sequence_pool``: ``x[:, -1]`` (last) or ``tf.reduce_mean`` over time (mean).

Mixed precision: the variables are float32; the kernels and biases of conv2d, depthwise_conv2d, dense and
multi_head_attention are cast to the compute dtype in the forward pass (their gradients flow back as
float32); batch norm and layer norm compute in float32 and the looked-up embedding rows are cast to the
compute dtype, as Keras does; the recurrent layers get Keras's own ``mixed_bfloat16`` / ``mixed_float16``
policy. Token ids are never cast.
"""

from __future__ import annotations

import functools
import os

# TensorFlow reads this at import: set it explicitly (a user's own value wins and is recorded).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fwbench.layers import MERGES, NON_TRAINABLE, RECURRENT, Layer  # noqa: E402
from fwbench.weights import Params  # noqa: E402
from fwbench.workload_graph import NETWORK_INPUT  # noqa: E402
from fwbench.workload_spec import WorkloadSpec  # noqa: E402

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu, "relu6": tf.nn.relu6, "gelu": functools.partial(tf.nn.gelu, approximate=False),
    "swish": tf.nn.silu, "softmax": tf.nn.softmax, "tanh": tf.math.tanh, "sigmoid": tf.math.sigmoid,
    "linear": tf.identity}
WEIGHTED = ("conv2d", "depthwise_conv2d", "dense", "multi_head_attention")  # cast under mixed precision
CUDNN_OPS = ("CudnnRNN", "CudnnRNNV2", "CudnnRNNV3")


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


def dense(layer: Layer, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``x @ kernel``: ``tf.matmul`` on a flat input, ``tf.tensordot`` (reshape + MatMul) per position of a sequence."""
    return tf.matmul(x, kernel) if len(x.shape) == 2 else tf.tensordot(x, kernel, axes=1)


def embedding(layer: Layer, ids: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    """Row ``t`` of the table for token ``t`` (``tf.nn.embedding_lookup``'s gather)."""
    return tf.gather(table, ids)


def position_embedding(layer: Layer, x: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    """``x`` plus the table's first ``T`` rows, ``T`` read from the batch (any ``T <= max_length``)."""
    return x + tf.cast(table[:tf.shape(x)[1]], x.dtype)


def layernorm(layer: Layer, v: dict[str, tf.Variable], x: tf.Tensor) -> tf.Tensor:
    """Normalise each position over its last axis (biased variance, ``epsilon`` added); float32 math."""
    if x.dtype != v["gamma"].dtype:
        return tf.cast(layernorm(layer, v, tf.cast(x, v["gamma"].dtype)), x.dtype)
    mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, var, v["beta"], v["gamma"], layer.epsilon)


def causal_mask(t: tf.Tensor) -> tf.Tensor:
    """``[t, t]`` booleans, true where the query (row) may read the key (column): the lower triangle."""
    return tf.cast(tf.linalg.band_part(tf.ones([t, t], tf.int8), -1, 0), tf.bool)


def attention(layer: Layer, v: dict[str, tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Self-attention on Keras-layout weights: einsum projections, scaled dot product, optional causal mask."""
    q = tf.einsum("btd,dhk->bthk", x, v["query_kernel"]) + v["query_bias"]
    k = tf.einsum("btd,dhk->bthk", x, v["key_kernel"]) + v["key_bias"]
    val = tf.einsum("btd,dhk->bthk", x, v["value_kernel"]) + v["value_bias"]
    q = q * tf.cast(1.0 / np.sqrt(layer.key_dim), q.dtype)
    scores = tf.einsum("bshk,bthk->bhts", k, q)  # [batch, heads, query t, key s]
    if layer.causal:
        large_negative = -3e4 if scores.dtype == tf.float16 else -1e9
        scores = tf.where(causal_mask(tf.shape(x)[1]), scores, tf.cast(large_negative, scores.dtype))
    heads = tf.einsum("bhts,bshk->bthk", tf.nn.softmax(scores, axis=-1), val)
    return tf.einsum("bthk,hkd->btd", heads, v["output_kernel"]) + v["output_bias"]


def sequence_pool(layer: Layer, x: tf.Tensor) -> tf.Tensor:
    return x[:, -1] if layer.pool == "last" else tf.reduce_mean(x, axis=1)


def recurrent_weights(layer: Layer, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shared (canonical) weights of an lstm/gru as Keras's cell holds them: the same layout, so as they are.

    Keras ``LSTMCell``: kernel ``[in, 4u]`` and recurrent kernel ``[u, 4u]`` with gate blocks i, f, c, o and
    one bias ``[4u]``; ``GRUCell(reset_after=True)``: blocks z, r, h and ``bias [2, 3u]`` (input bias, then
    recurrent bias). The cell's variable names are these keys.
    """
    return {"kernel": p["kernel"], "recurrent_kernel": p["recurrent_kernel"], "bias": p["bias"]}


def keras_policy(dtype: tf.DType, compute_dtype: tf.DType) -> str:
    """Keras's dtype policy for float32 variables computing in ``compute_dtype``."""
    return dtype.name if compute_dtype == dtype else f"mixed_{compute_dtype.name}"


def node_inputs(layer: Layer, values: dict[str, tf.Tensor]) -> tf.Tensor | list[tf.Tensor]:
    """The outputs of the nodes ``layer`` reads: a list for add and concat, else the one tensor."""
    inputs = [values[name] for name in layer.inputs]
    return inputs if layer.kind in MERGES else inputs[0]


class Net(tf.Module):
    """The workload's graph as TensorFlow variables and ``tf.nn`` ops (NHWC, Keras semantics)."""

    def __init__(self, spec: WorkloadSpec, params: Params, dtype: tf.DType = tf.float32,
                 compute_dtype: tf.DType | None = None, xla_grouped_conv: bool = True,
                 use_cudnn: bool | str = "auto"):
        super().__init__(name="net")
        self.layers = spec.layers
        self.tokens = spec.tokens  # token ids are fed as they are (integers), never cast
        self.dtype = dtype
        self.compute_dtype = compute_dtype or dtype  # mixed precision: float32 variables, bf16/fp16 math
        self.rng = tf.random.Generator.from_seed(spec.seed)  # dropout masks, reproducible per build
        self.use_cudnn = use_cudnn
        self.vars: list[dict[str, tf.Variable]] = []
        self.recurrent: dict[str, Any] = {}  # lstm/gru node name -> its Keras layer
        self.recurrent_impl: dict[str, set[str]] = {}  # kind -> what the traced graphs ran ("cuDNN", "generic")
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            if layer.kind in RECURRENT:
                self.vars.append(self._recurrent_layer(layer, p, i))
                continue
            self.vars.append({k: tf.Variable(v, dtype=dtype, name=f"l{i}_{k}", trainable=k not in NON_TRAINABLE)
                              for k, v in p.items()})
        self.trainable = [v for d in self.vars for v in d.values() if v.trainable]
        # one compiled function per grouped convolution (Keras's CPU workaround), traced once per input shape
        self.grouped = {layer.name: tf.function(functools.partial(conv2d, layer), jit_compile=True)
                        for layer in self.layers if xla_grouped_conv and layer.kind == "conv2d" and layer.groups > 1}

    def _recurrent_layer(self, layer: Layer, p: dict[str, np.ndarray],
                         i: int) -> dict[str, tf.Variable]:
        """A Keras LSTM/GRU for ``layer``, built for ``[batch, any T, in]`` and loaded with the shared weights."""
        import keras  # only where a workload has recurrent layers

        kind = {"lstm": keras.layers.LSTM, "gru": functools.partial(keras.layers.GRU, reset_after=True)}[layer.kind]
        rnn = kind(layer.units, return_sequences=layer.return_sequences, use_cudnn=self.use_cudnn,
                   dtype=keras_policy(self.dtype, self.compute_dtype), name=f"l{i}_{layer.kind}")
        rnn.build((None, None, p["kernel"].shape[0]))
        cell = rnn.cell
        weights = recurrent_weights(layer, p)
        held = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel, "bias": cell.bias}
        for name, var in held.items():
            var.assign(weights[name])
        self.recurrent[layer.name] = rnn
        # the tf.Variables under Keras's variables: what the tape differentiates and the optimizer updates
        return {name: var.value for name, var in held.items()}

    def _run_recurrent(self, layer: Layer, x: tf.Tensor, training: bool) -> tf.Tensor:
        """Call the Keras layer; while tracing, note whether the graph got the cuDNN op or the generic loop."""
        rnn = self.recurrent[layer.name]
        if not tf.inside_function():
            return rnn(x, training=training)
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        out = rnn(x, training=training)
        types = {op.type for op in graph.get_operations()[before:]}
        impl = "cuDNN" if types & set(CUDNN_OPS) else "generic" if types & {"While", "StatelessWhile"} else "unknown"
        self.recurrent_impl.setdefault(layer.kind, set()).add(impl)
        return out

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        values = {NETWORK_INPUT: x if self.tokens else tf.cast(x, self.compute_dtype)}
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
                x = dense(layer, x, v["kernel"])
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
        if kind == "embedding":
            return tf.cast(embedding(layer, x, v["embeddings"]), self.compute_dtype)
        if kind == "position_embedding":
            return position_embedding(layer, x, v["embeddings"])
        if kind == "layernorm":
            return layernorm(layer, v, x)
        if kind == "multi_head_attention":
            return attention(layer, v, x)
        if kind in RECURRENT:
            return self._run_recurrent(layer, x, training)
        if kind == "sequence_pool":
            return sequence_pool(layer, x)
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
