"""Layout conversion between the canonical channels-last parameters and channels-first frameworks.

Pure NumPy, so that each conversion is unit-tested without any framework. The canonical form
(:mod:`fwbench.weights`) is Keras's; PyTorch differs in three places, each converted here:

- conv kernels: canonical HWIO ``[k, k, in/groups, filters]``, PyTorch OIHW ``[filters, in/groups, k, k]``.
  Both frameworks give group ``g`` the consecutive input slice ``g`` and output slice ``g``, so a grouped
  kernel is the same transpose (:func:`conv_kernel_oihw`);
- depthwise kernels: canonical ``[k, k, in, multiplier]``; PyTorch runs them as ``Conv2d(groups=in)`` with a
  weight ``[in * multiplier, 1, k, k]`` whose output channel ``c * multiplier + m`` is input channel ``c``
  with ``kernel[:, :, c, m]``, Keras's order (:func:`depthwise_kernel_oihw`);
- flattening: a flatten of an NCHW tensor lists features in (channels, height, width) order, the canonical
  form in (height, width, channels) order. The permutation follows the graph's edges
  (:func:`feature_orders`): through batch norm, activations, dropout and flattens of flat tensors, into
  concatenations of flat features (each part keeps its order, offset), and through adds (an add keeps its
  first input's order; the builder reorders any other input whose order differs, :func:`reorder_index`),
  until it reaches the per-feature parameters that read it: batch-norm vectors and dense kernel rows.
  A dense layer's output, a global average pool and every spatial tensor are in canonical order.

The sequence kinds keep Keras's ``[batch, time, features]`` order (``batch_first``), so their tensors need no
permutation; their parameters are repacked (each converter below is a separate function, so that a test can
break it and see the reference mismatch):

- ``embedding`` / ``position_embedding`` tables are used as they are (``nn.Embedding.weight``, a parameter);
- ``multi_head_attention``: Keras's separate ``query/key/value_kernel [d, heads, key_dim]`` and biases
  ``[heads, key_dim]`` become one packed input projection ``nn.Linear(d, 3 * heads * key_dim)`` (nanoGPT's
  ``c_attn``) whose output splits into q, k, v, each viewed as ``[heads, key_dim]`` head-major
  (:func:`attention_in_projection`); ``output_kernel [heads, key_dim, d]`` becomes ``nn.Linear(heads *
  key_dim, d)`` over the heads concatenated in the same order (:func:`attention_out_projection`);
- ``lstm``: PyTorch's gate blocks i, f, g, o are Keras's i, f, c, o: ``weight_ih = kernel.T``,
  ``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0`` (:func:`lstm_weights`);
- ``gru``: PyTorch orders its blocks r, z, n, Keras z, r, h (:func:`gru_gates_to_torch`); Keras's
  ``bias [2, 3u]`` is (input bias, recurrent bias) = (``bias_ih``, ``bias_hh``), both reordered; PyTorch's
  ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` is ``reset_after=True`` (:func:`gru_weights`).
"""

from __future__ import annotations

import numpy as np

from fwbench.weights import Params
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import WorkloadSpec, layer_shapes

Order = np.ndarray | None  # torch_features = canonical_features[order]; None: the same order


def conv_hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def conv_oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def conv_kernel_oihw(kernel: np.ndarray, groups: int = 1) -> np.ndarray:
    """``[k, k, in/groups, filters]`` -> ``[filters, in/groups, k, k]``; groups need no reordering (both
    frameworks slice input and output channels into consecutive, equal groups)."""
    return conv_hwio_to_oihw(kernel)


def depthwise_kernel_oihw(kernel: np.ndarray) -> np.ndarray:
    """``[k, k, in, mult]`` -> the ``Conv2d(groups=in)`` weight ``[in * mult, 1, k, k]``, out channel ``c*mult + m``."""
    kh, kw, c, m = kernel.shape
    return np.ascontiguousarray(kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None])


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW with the canonical C-order strides.

    ``np.ascontiguousarray`` would keep the transposed stride of a size-1 channel axis; PyTorch then sees
    a tensor that is channels-last as well as contiguous and picks its channels-last convolution path
    (10-15% faster on CPU for the 1-channel CNN), so the "NCHW" cell would not measure NCHW.
    """
    return x.transpose(0, 3, 1, 2).copy(order="C")


def chw_order(hwc: tuple[int, int, int]) -> np.ndarray:
    """Index array ``perm`` with ``flat_chw = flat_hwc[perm]`` for a tensor of shape ``hwc``."""
    h, w, c = hwc
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _or_none(order: np.ndarray) -> Order:
    return None if np.array_equal(order, np.arange(len(order))) else order


def feature_orders(spec: WorkloadSpec) -> list[Order]:
    """Per node: the order of its flat output features in PyTorch (``None`` when canonical or not flat)."""
    shapes = {NETWORK_INPUT: tuple(spec.input_shape)}
    shapes.update((layer.name, s) for layer, s in zip(spec.layers, layer_shapes(spec.input_shape, spec.layers)))
    orders: dict[str, Order] = {NETWORK_INPUT: None}
    for layer in spec.layers:
        ins = [orders[n] for n in layer.inputs]
        in_shape = shapes[layer.inputs[0]]
        if len(shapes[layer.name]) != 1 or layer.kind in ("dense", "global_avgpool2d", "lstm", "gru",
                                                           "sequence_pool"):
            order = None
        elif layer.kind == "flatten":
            order = _or_none(chw_order(in_shape)) if len(in_shape) == 3 else ins[0]  # type: ignore[arg-type]
        elif layer.kind == "concat":
            parts, offset = [], 0
            for name, o in zip(layer.inputs, ins):
                n = shapes[name][-1]
                parts.append((np.arange(n) if o is None else o) + offset)
                offset += n
            order = _or_none(np.concatenate(parts))
        else:  # add (its first input's order), batchnorm, layernorm, activation, dropout
            order = ins[0]
        orders[layer.name] = order
    return [orders[layer.name] for layer in spec.layers]


def input_orders(spec: WorkloadSpec) -> list[list[Order]]:
    """Per node: the feature order of each input it reads."""
    by_name = dict(zip((layer.name for layer in spec.layers), feature_orders(spec)))
    by_name[NETWORK_INPUT] = None
    return [[by_name[n] for n in layer.inputs] for layer in spec.layers]


def reorder_index(src: Order, dst: Order, n: int) -> np.ndarray | None:
    """Index ``idx`` with ``features_in_dst_order = features_in_src_order[idx]`` (``None``: nothing to do)."""
    s = np.arange(n) if src is None else src
    d = np.arange(n) if dst is None else dst
    return None if np.array_equal(s, d) else np.argsort(s)[d]


def to_canonical_order(values: np.ndarray, order: Order) -> np.ndarray:
    """Undo a feature ``order`` on the last axis: PyTorch-ordered per-feature values -> canonical order."""
    if order is None:
        return values
    out = np.empty_like(values)
    out[..., order] = values
    return out


def to_channels_first(spec: WorkloadSpec, params: Params) -> Params:
    """Canonical parameters -> PyTorch's layout: OIHW convs (grouped and depthwise), ``[out, in]`` dense,
    every per-feature parameter (batch-norm and layer-norm vectors, dense kernel rows) in its input's feature
    order, and the sequence kinds' parameters under the names of their PyTorch modules (module docstring)."""
    out: Params = []
    for layer, p, (order, *_) in zip(spec.layers, params, input_orders(spec)):
        q = dict(p)
        if layer.kind == "conv2d":
            q["kernel"] = conv_kernel_oihw(p["kernel"], layer.groups)
        elif layer.kind == "depthwise_conv2d":
            q["kernel"] = depthwise_kernel_oihw(p["kernel"])
        elif layer.kind in ("batchnorm", "layernorm") and order is not None:
            q = {k: np.ascontiguousarray(v[order]) for k, v in p.items()}
        elif layer.kind == "dense":
            kernel = p["kernel"] if order is None else p["kernel"][order]
            q["kernel"] = np.ascontiguousarray(kernel.T)
        elif layer.kind == "multi_head_attention":
            in_w, in_b = attention_in_projection(p)
            out_w, out_b = attention_out_projection(p)
            q = {"in_weight": in_w, "in_bias": in_b, "out_weight": out_w, "out_bias": out_b}
        elif layer.kind == "lstm":
            q = lstm_weights(p)
        elif layer.kind == "gru":
            q = gru_weights(p)
        out.append(q)
    return out


def attention_in_projection(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Keras's query/key/value kernels ``[d, h, k]`` and biases ``[h, k]`` -> the packed ``nn.Linear(d, 3hk)``
    weight ``[3hk, d]`` and bias ``[3hk]``: rows q, then k, then v, each head-major (row ``head * k + j``)."""
    kernels = [p[f"{n}_kernel"].reshape(p[f"{n}_kernel"].shape[0], -1) for n in ("query", "key", "value")]
    weight = np.concatenate(kernels, axis=1).T
    bias = np.concatenate([p[f"{n}_bias"].reshape(-1) for n in ("query", "key", "value")])
    return np.ascontiguousarray(weight), np.ascontiguousarray(bias)


def attention_out_projection(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Keras's ``output_kernel [h, k, d]`` and ``output_bias [d]`` -> ``nn.Linear(hk, d)``'s weight ``[d, hk]``
    (input ``head * k + j``, the heads concatenated in order) and bias."""
    h, k, d = p["output_kernel"].shape
    return np.ascontiguousarray(p["output_kernel"].reshape(h * k, d).T), np.ascontiguousarray(p["output_bias"])


def lstm_weights(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras LSTM (gates i, f, c, o; one bias) -> ``nn.LSTM``'s layer-0 parameters (gates i, f, g, o: the same
    order; two biases, summed by PyTorch, so ``bias_hh = 0``, and the runner freezes it so that training moves
    one bias, as Keras does)."""
    return {"weight_ih_l0": np.ascontiguousarray(p["kernel"].T),
            "weight_hh_l0": np.ascontiguousarray(p["recurrent_kernel"].T),
            "bias_ih_l0": np.ascontiguousarray(p["bias"]), "bias_hh_l0": np.zeros_like(p["bias"])}


def gru_gates_to_torch(a: np.ndarray) -> np.ndarray:
    """Gate blocks on the last axis from Keras's z, r, h order to PyTorch's r, z, n."""
    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def gru_weights(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras ``GRU(reset_after=True)`` -> ``nn.GRU``'s layer-0 parameters: blocks reordered, kernels
    transposed to ``[3u, in]``, ``bias[0]`` the input bias ``bias_ih``, ``bias[1]`` the recurrent ``bias_hh``."""
    return {"weight_ih_l0": np.ascontiguousarray(gru_gates_to_torch(p["kernel"]).T),
            "weight_hh_l0": np.ascontiguousarray(gru_gates_to_torch(p["recurrent_kernel"]).T),
            "bias_ih_l0": np.ascontiguousarray(gru_gates_to_torch(p["bias"][0])),
            "bias_hh_l0": np.ascontiguousarray(gru_gates_to_torch(p["bias"][1]))}
