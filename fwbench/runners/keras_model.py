"""A workload graph as a Keras 3 functional model (``keras.Input`` -> layers -> ``keras.Model``); a chain
of nodes (a sequential workload) as a ``keras.Sequential`` of the same layers.

Framework-agnostic across Keras's back ends: only ``keras`` is used, passed in by the caller (the worker's
``KERAS_BACKEND`` picks the back end). Every node becomes one of Keras's own layers, called on the outputs
of the nodes it names; nothing is hand-rolled:

- ``conv2d`` -> ``Conv2D(groups=, use_bias=)``; ``depthwise_conv2d`` -> ``DepthwiseConv2D(depth_multiplier=)``;
  ``maxpool2d`` / ``avgpool2d`` -> ``MaxPooling2D`` / ``AveragePooling2D``; ``global_avgpool2d`` ->
  ``GlobalAveragePooling2D``; ``zero_padding2d`` -> ``ZeroPadding2D(((top, bottom), (left, right)))``;
  ``flatten``, ``dense``, ``dropout``, ``batchnorm`` (``BatchNormalization``, on the last axis, also after a
  flatten), ``activation``; ``add`` -> ``Add``, ``concat`` -> ``Concatenate(axis=-1)``.
- The workload's semantics are Keras's (:mod:`fwbench.layers`), so nothing is converted: ``same`` padding
  puts the extra pixel bottom/right, ``"gelu"`` is Keras's exact (erf) form (``approximate=False`` is
  ``keras.activations.gelu``'s default), ``"swish"`` is x * sigmoid(x), softmax is over the last axis, and
  batch norm's momentum is Keras's. Where a Keras *back end* deviates from that, it is a finding recorded
  in the tests (``tests/test_graph_keras.py``), not worked around here. Known (Keras 3.15): the torch back
  end's ``AveragePooling2D(padding="same")`` with an odd total padding pads by replicating the edge and
  counts those pixels in the average (keras-team/keras#18452, fixed upstream in #23233); the tensorflow
  and jax back ends average only the real pixels.
- Sequence kinds, Keras's own layers again: ``embedding`` -> ``Embedding``; ``layernorm`` ->
  ``LayerNormalization(epsilon=)``; ``dense`` on ``[batch, time, features]`` is ``Dense`` (it applies per
  token); ``multi_head_attention`` -> ``MultiHeadAttention(num_heads, key_dim)`` called as ``mha(x, x,
  use_causal_mask=causal)``; ``lstm`` -> ``LSTM(units, return_sequences=)``; ``gru`` -> ``GRU(units,
  return_sequences=, reset_after=True)``; ``sequence_pool`` ``mean`` -> ``GlobalAveragePooling1D``. Keras has
  no layer for two of them (keras_hub's ``PositionEmbedding`` is not a dependency), so two tiny layers stand in
  (:func:`sequence_layers`): ``position_embedding`` (a ``[max_length, features]`` table whose first ``T`` rows,
  ``T`` the batch's length, are added to the input: keras_hub's slice) and ``sequence_pool`` ``last``
  (``x[:, -1]``). A token workload's input is ``keras.Input(shape=(None,), dtype="int32")``: any length, ids
  never cast by a mixed-precision policy (Keras autocasts only floating inputs); a float sequence input is
  ``(None, features)``. ``MultiHeadAttention`` needs query and value, so a workload with attention is always
  a functional model.
- On the tensorflow back end Keras itself runs a grouped ``Conv2D`` (``groups > 1``) through a
  ``tf.function(jit_compile=True)`` of its own (TensorFlow's grouped convolution needs XLA on the CPU), on
  every device and whatever the model's ``jit_compile``.
- Weights: the canonical layout is Keras's (conv kernel ``[k, k, in/groups, filters]``, depthwise kernel
  ``[k, k, in, multiplier]``, dense ``[in, units]``, HWC flatten order; attention ``query/kernel [d, h, k]`` ...
  ``attention_output/kernel [h, k, d]``; LSTM gate blocks i, f, c, o with one bias ``[4u]``; GRU z, r, h with
  ``bias [2, 3u]``), so :func:`layer_weights` only orders each node's arrays as ``set_weights`` takes them
  (:data:`WEIGHT_ORDER`); a layer without bias has no bias weight. :func:`load_weights` first checks that
  the layer's own variables (their paths, :func:`weight_names`) come in that order, so a Keras release that
  reordered them would fail loudly instead of loading a key kernel as a query kernel.
- Names: Keras forbids ``/`` in layer names, TensorFlow name scopes refuse ``#`` and torch parameter names
  refuse ``.``, so each node's Keras name is sanitised (:func:`keras_names`); :class:`KerasGraph` keeps the
  node -> layer mapping, index-aligned with ``spec.layers`` (a functional model's ``layers[0]`` is its
  ``InputLayer``, and Keras orders the rest by its own traversal).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fwbench.layers import SEQUENCE, Layer
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import WorkloadSpec

INPUT_NAME = "input"
WEIGHT_ORDER = {  # the order of set_weights / get_weights, per kind (bias only where the node has one)
    "conv2d": ("kernel", "bias"),
    "depthwise_conv2d": ("kernel", "bias"),
    "dense": ("kernel", "bias"),
    "batchnorm": ("gamma", "beta", "moving_mean", "moving_variance"),
    "embedding": ("embeddings",),
    "position_embedding": ("embeddings",),
    "layernorm": ("gamma", "beta"),
    "multi_head_attention": ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias",
                             "output_kernel", "output_bias"),
    "lstm": ("kernel", "recurrent_kernel", "bias"),
    "gru": ("kernel", "recurrent_kernel", "bias"),
}
MHA_SUBLAYERS = {"query": "query", "key": "key", "value": "value", "attention_output": "output"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class KerasGraph:
    """The functional model and, index-aligned with ``spec.layers``, the Keras layer of every node."""

    model: Any
    layers: list[Any]
    names: dict[str, str]  # node name -> Keras layer name


def keras_names(spec: WorkloadSpec) -> dict[str, str]:
    """A unique Keras layer name per node: ``/`` -> ``__``, ``#`` -> ``n``, ``.`` -> ``_`` (the torch back
    end registers variables as ``torch.nn`` parameters, whose names cannot hold a dot), ``_2`` on a clash."""
    used = {INPUT_NAME}
    out = {}
    for layer in spec.layers:
        base = _UNSAFE.sub("_", layer.name.replace("/", "__").replace("#", "n"))
        if not base[0].isalnum():
            base = "n" + base
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        out[layer.name] = name
    return out


@functools.cache
def sequence_layers(keras: Any) -> tuple[type, type]:
    """``(PositionEmbedding, LastStep)``: the two sequence kinds Keras has no layer for, as tiny
    ``keras.layers.Layer`` subclasses (defined per ``keras`` module, which the caller imports)."""
    ops = keras.ops

    class PositionEmbedding(keras.layers.Layer):
        """Adds the first ``T`` rows of a learned ``embeddings [max_length, features]`` table to its
        ``[batch, T, features]`` input, ``T`` the batch's own length (keras_hub.layers.PositionEmbedding's
        slice, added here as GPT adds ``tok_emb + pos_emb``)."""

        def __init__(self, max_length: int, **kwargs: Any):
            super().__init__(**kwargs)
            self.max_length = max_length

        def build(self, input_shape: tuple) -> None:
            self.embeddings = self.add_weight(shape=(self.max_length, input_shape[-1]), initializer="zeros",
                                              name="embeddings")

        def call(self, inputs: Any) -> Any:
            length = ops.shape(inputs)[1]  # a tensor where the traced length is unknown (tf.function)
            table = ops.slice(ops.convert_to_tensor(self.embeddings), (0, 0), (length, self.embeddings.shape[1]))
            return inputs + ops.cast(table, inputs.dtype)

        def compute_output_shape(self, input_shape: tuple) -> tuple:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "max_length": self.max_length}

    class LastStep(keras.layers.Layer):
        """``[batch, time, features] -> [batch, features]``: the last time step."""

        def call(self, inputs: Any) -> Any:
            return inputs[:, -1]

        def compute_output_shape(self, input_shape: tuple) -> tuple:
            return (input_shape[0], input_shape[2])

    return PositionEmbedding, LastStep


def keras_layer(keras: Any, layer: Layer, name: str | None = None) -> Any:
    """The Keras layer for one node (Keras's own conventions are the workload's)."""
    L = keras.layers
    kind = layer.kind
    if kind == "embedding":
        return L.Embedding(layer.input_dim, layer.output_dim, name=name)
    if kind == "position_embedding":
        return sequence_layers(keras)[0](layer.max_length, name=name)
    if kind == "layernorm":
        return L.LayerNormalization(epsilon=layer.epsilon, name=name)
    if kind == "multi_head_attention":
        return L.MultiHeadAttention(num_heads=layer.heads, key_dim=layer.key_dim, name=name)
    if kind == "lstm":
        return L.LSTM(layer.units, return_sequences=layer.return_sequences, name=name)
    if kind == "gru":
        return L.GRU(layer.units, return_sequences=layer.return_sequences, reset_after=True, name=name)
    if kind == "sequence_pool":
        return L.GlobalAveragePooling1D(name=name) if layer.pool == "mean" else sequence_layers(keras)[1](name=name)
    if kind == "conv2d":
        return L.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                        groups=layer.groups, use_bias=layer.use_bias, activation=layer.activation, name=name)
    if kind == "depthwise_conv2d":
        return L.DepthwiseConv2D(layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                 depth_multiplier=layer.depth_multiplier, use_bias=layer.use_bias,
                                 activation=layer.activation, name=name)
    if kind == "maxpool2d":
        return L.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, name=name)
    if kind == "avgpool2d":
        return L.AveragePooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, name=name)
    if kind == "global_avgpool2d":
        return L.GlobalAveragePooling2D(name=name)
    if kind == "zero_padding2d":
        top, bottom, left, right = layer.pad
        return L.ZeroPadding2D(((top, bottom), (left, right)), name=name)
    if kind == "flatten":
        return L.Flatten(name=name)
    if kind == "dense":
        return L.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias, name=name)
    if kind == "dropout":
        return L.Dropout(layer.rate, name=name)
    if kind == "batchnorm":
        return L.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon, name=name)
    if kind == "activation":
        return L.Activation(layer.activation, name=name)
    if kind == "add":
        return L.Add(name=name)
    if kind == "concat":
        return L.Concatenate(axis=-1, name=name)
    raise ValueError(f"unknown layer {kind}")


def is_chain(spec: WorkloadSpec) -> bool:
    """Does every node read just the node before it (the input, for the first): a sequential workload?"""
    previous = NETWORK_INPUT
    for node in spec.layers:
        if node.inputs != (previous,):
            return False
        previous = node.name
    return True


def model_input(keras: Any, spec: WorkloadSpec) -> Any:
    """The model's ``keras.Input``: token ids ``(None,)`` int32 and a float sequence ``(None, features)``, so
    that one model takes any sequence length (unless a flatten needs a fixed one); otherwise the spec's shape."""
    flexible = (spec.tokens or any(n.kind in SEQUENCE for n in spec.layers)) and \
        not any(n.kind == "flatten" for n in spec.layers)
    if flexible and spec.tokens and len(spec.input_shape) == 1:
        return keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    if flexible and len(spec.input_shape) == 2:
        return keras.Input(shape=(None, spec.input_shape[1]), name=INPUT_NAME)
    return keras.Input(shape=spec.input_shape, name=INPUT_NAME)


def wire(keras: Any, spec: WorkloadSpec, names: dict[str, str]) -> KerasGraph:
    """Create every node's layer and call it on the outputs of the nodes it names; the last node is the output.

    A chain (a sequential workload) stays a ``keras.Sequential``, as before graphs: Keras runs a
    ``Sequential`` through the same functional graph (the same speed), but checks input shapes layer by
    layer, so an error names the layer that refuses the input rather than the model's input; a graph is a
    functional ``keras.Model``.
    """
    layers = [keras_layer(keras, node, names[node.name]) for node in spec.layers]
    model_name = _UNSAFE.sub("_", spec.name) or "workload"
    if is_chain(spec) and not any(n.kind == "multi_head_attention" for n in spec.layers):
        model = keras.Sequential([model_input(keras, spec), *layers], name=model_name)
        return KerasGraph(model, layers, names)
    values = {NETWORK_INPUT: model_input(keras, spec)}
    for node, layer in zip(spec.layers, layers):
        args = [values[n] for n in node.inputs]
        if node.kind == "multi_head_attention":  # self-attention: query = value (= key)
            values[node.name] = layer(args[0], args[0], use_causal_mask=node.causal)
        else:
            values[node.name] = layer(args if len(args) > 1 else args[0])
    model = keras.Model(values[NETWORK_INPUT], values[spec.layers[-1].name], name=model_name)
    return KerasGraph(model, layers, names)


def layer_weights(node: Layer, p: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The node's canonical arrays in ``set_weights`` order (the layouts already are Keras's)."""
    return [p[k] for k in WEIGHT_ORDER.get(node.kind, ()) if k in p]


def weight_names(layer: Any, node: Layer) -> list[str]:
    """The canonical name of each of the Keras layer's variables, in its ``get_weights`` order, read from the
    variables' paths: ``.../kernel`` -> ``kernel``, ``.../lstm_cell/recurrent_kernel`` -> ``recurrent_kernel``,
    an attention's ``.../query/kernel`` -> ``query_kernel`` and ``.../attention_output/bias`` -> ``output_bias``."""
    out = []
    for v in layer.weights:
        parts = v.path.split("/")
        if node.kind == "multi_head_attention" and len(parts) >= 2:
            out.append(f"{MHA_SUBLAYERS.get(parts[-2], parts[-2])}_{parts[-1]}")
        else:
            out.append(parts[-1])
    return out


def check_weight_order(layer: Any, node: Layer) -> None:
    """``ValueError`` unless the layer's variables come in :data:`WEIGHT_ORDER` (a bias only where it has one)."""
    names = weight_names(layer, node)
    expected = [k for k in WEIGHT_ORDER[node.kind] if k in names]
    if names != expected:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} holds its weights as {names}, not in the order "
                         f"{expected} that the canonical layout is loaded in")


def load_weights(graph: KerasGraph, spec: WorkloadSpec, params: list[dict[str, np.ndarray]]) -> None:
    for layer, node, p in zip(graph.layers, spec.layers, params):
        if node.kind in WEIGHT_ORDER:
            check_weight_order(layer, node)
            layer.set_weights(layer_weights(node, p))


def build_graph(keras: Any, spec: WorkloadSpec, params: list[dict[str, np.ndarray]]) -> KerasGraph:
    """The functional model of ``spec`` loaded with the shared ``params`` (not compiled)."""
    graph = wire(keras, spec, keras_names(spec))
    load_weights(graph, spec, params)
    return graph


def batchnorm_stats(keras: Any, graph: KerasGraph, spec: WorkloadSpec) -> list[np.ndarray]:
    """``[moving_mean, moving_variance]`` (float64 ``[2, C]``) of every batchnorm node, in node order.

    Keras keeps them channels-last (after a flatten: HWC order), the canonical order, and updates them
    ``moving = momentum * moving + (1 - momentum) * batch`` with the batch's biased variance."""
    return [np.stack([keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance)])
            .astype(np.float64) for layer, node in zip(graph.layers, spec.layers) if node.kind == "batchnorm"]
