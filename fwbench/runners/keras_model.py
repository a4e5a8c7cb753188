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
- On the tensorflow back end Keras itself runs a grouped ``Conv2D`` (``groups > 1``) through a
  ``tf.function(jit_compile=True)`` of its own (TensorFlow's grouped convolution needs XLA on the CPU), on
  every device and whatever the model's ``jit_compile``.
- Weights: the canonical layout is Keras's (conv kernel ``[k, k, in/groups, filters]``, depthwise kernel
  ``[k, k, in, multiplier]``, dense ``[in, units]``, HWC flatten order), so :func:`layer_weights` only
  orders each node's arrays as ``set_weights`` takes them; a layer without bias has no bias weight.
- Names: Keras forbids ``/`` in layer names, TensorFlow name scopes refuse ``#`` and torch parameter names
  refuse ``.``, so each node's Keras name is sanitised (:func:`keras_names`); :class:`KerasGraph` keeps the
  node -> layer mapping, index-aligned with ``spec.layers`` (a functional model's ``layers[0]`` is its
  ``InputLayer``, and Keras orders the rest by its own traversal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fwbench.layers import Layer
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import WorkloadSpec

INPUT_NAME = "input"
WEIGHT_ORDER = {  # the order of set_weights / get_weights, per kind (bias only where the node has one)
    "conv2d": ("kernel", "bias"),
    "depthwise_conv2d": ("kernel", "bias"),
    "dense": ("kernel", "bias"),
    "batchnorm": ("gamma", "beta", "moving_mean", "moving_variance"),
}
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


def keras_layer(keras: Any, layer: Layer, name: str | None = None) -> Any:
    """The Keras layer for one node (Keras's own conventions are the workload's)."""
    L = keras.layers
    kind = layer.kind
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


def wire(keras: Any, spec: WorkloadSpec, names: dict[str, str]) -> KerasGraph:
    """Create every node's layer and call it on the outputs of the nodes it names; the last node is the output.

    A chain (a sequential workload) stays a ``keras.Sequential``, as before graphs: Keras runs a
    ``Sequential`` through the same functional graph (the same speed), but checks input shapes layer by
    layer, so an error names the layer that refuses the input rather than the model's input; a graph is a
    functional ``keras.Model``.
    """
    layers = [keras_layer(keras, node, names[node.name]) for node in spec.layers]
    model_name = _UNSAFE.sub("_", spec.name) or "workload"
    if is_chain(spec):
        model = keras.Sequential([keras.Input(shape=spec.input_shape, name=INPUT_NAME), *layers], name=model_name)
        return KerasGraph(model, layers, names)
    values = {NETWORK_INPUT: keras.Input(shape=spec.input_shape, name=INPUT_NAME)}
    for node, layer in zip(spec.layers, layers):
        args = [values[n] for n in node.inputs]
        values[node.name] = layer(args if len(args) > 1 else args[0])
    model = keras.Model(values[NETWORK_INPUT], values[spec.layers[-1].name], name=model_name)
    return KerasGraph(model, layers, names)


def layer_weights(node: Layer, p: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The node's canonical arrays in ``set_weights`` order (the layouts already are Keras's)."""
    return [p[k] for k in WEIGHT_ORDER.get(node.kind, ()) if k in p]


def load_weights(graph: KerasGraph, spec: WorkloadSpec, params: list[dict[str, np.ndarray]]) -> None:
    for layer, node, p in zip(graph.layers, spec.layers, params):
        if node.kind in WEIGHT_ORDER:
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
