"""The layer kinds of a workload: their fields, the shapes they produce and the parameters they hold.

Pure and framework-free (a leaf module). Every kind has Keras's semantics, written out here and in
``docs/workloads.md`` so that each runner can convert explicitly where its framework differs:

- tensors are channels-last: an image is ``[height, width, channels]``, a flat input ``[features]``;
- ``padding``: ``valid`` (none) or ``same`` (output = ceil(input / stride)); ``same`` pads
  ``total = max((ceil(n/s) - 1) * s + k - n, 0)`` pixels per side pair with the *extra pixel at the
  bottom/right* (TensorFlow's rule; PyTorch's ``padding=`` is symmetric, so torch pads explicitly);
- ``conv2d``: kernel ``[k, k, in/groups, filters]``; ``groups`` splits input and output channels into
  ``groups`` equal, consecutive slices (Keras ``Conv2D(groups=)``, PyTorch ``Conv2d(groups=)``);
- ``depthwise_conv2d``: kernel ``[k, k, in, depth_multiplier]``; output channel ``c * depth_multiplier + m``
  is input channel ``c`` convolved with ``kernel[:, :, c, m]`` (Keras ``DepthwiseConv2D``; PyTorch
  ``Conv2d(groups=in)`` with the same output order);
- ``maxpool2d`` pads ``same`` windows with -inf; ``avgpool2d`` averages only the input pixels a ``same``
  window covers (TensorFlow's rule; PyTorch's ``count_include_pad`` would count the padding);
- ``global_avgpool2d``: the mean over height and width, ``[h, w, c] -> [c]``;
- ``zero_padding2d``: ``pad = [top, bottom, left, right]`` zero rows/columns;
- ``add``: element-wise sum of two or more inputs of the same shape; ``concat``: concatenation of two or
  more inputs on the last (channel or feature) axis; their other dimensions must agree;
- ``batchnorm``: normalises over every axis but the last with the batch's biased variance in training and
  the moving statistics otherwise; ``moving = momentum * moving + (1 - momentum) * batch`` (Keras; PyTorch's
  ``momentum`` is ``1 - momentum``, and PyTorch feeds the *unbiased* batch variance into its moving
  variance: see ``docs/workloads.md``); ``epsilon`` is added to the variance;
- sequences are ``[time, features]``; a token input is ``[time]`` integer ids (the workload's
  ``vocabulary``), read only by ``embedding`` nodes;
- ``embedding``: ``embeddings [input_dim, output_dim]``, token ``t`` -> row ``t`` (Keras ``Embedding``,
  PyTorch ``nn.Embedding``), ``[time] -> [time, output_dim]``;
- ``position_embedding``: a learned table ``embeddings [max_length, features]`` whose first ``time`` rows are
  *added* to its ``[time, features]`` input (GPT's ``tok_emb + pos_emb``); ``time <= max_length``;
- ``layernorm``: normalises each position over its last axis with the biased variance, ``epsilon`` (required:
  Keras's default is 1e-3, PyTorch's 1e-5) added to the variance, then ``* gamma + beta``;
- ``dense`` on ``[time, features]`` applies the same kernel to every position;
- ``multi_head_attention``: self-attention over its ``[time, d]`` input (Keras ``MultiHeadAttention`` with
  query = key = value): ``q = x @ query_kernel + query_bias`` (kernel ``[d, heads, key_dim]``), likewise k
  and v; ``softmax(q k^T / sqrt(key_dim))`` per head, with ``causal`` masking every key after the query;
  the heads' outputs go through ``output_kernel [heads, key_dim, d]`` and ``output_bias [d]``; output
  ``[time, d]``; no dropout;
- ``lstm``: Keras ``LSTM`` (tanh, sigmoid gates): ``z = x_t @ kernel + h @ recurrent_kernel + bias`` with the
  gate blocks in the order i, f, c, o (kernel ``[in, 4u]``, recurrent ``[u, 4u]``, one bias ``[4u]``);
  ``c = f * c + i * tanh(z_c)``, ``h = o * tanh(c)``, zero initial state; PyTorch's i, f, g, o is the same
  order with two biases (``bias_ih = bias``, ``bias_hh = 0``);
- ``gru``: Keras ``GRU(reset_after=True)``, the form cuDNN and PyTorch compute: gate blocks z, r, h
  (kernel ``[in, 3u]``, recurrent ``[u, 3u]``, ``bias [2, 3u]`` = input bias, recurrent bias);
  ``z = sigmoid(xz + hz)``, ``r = sigmoid(xr + hr)``, ``n = tanh(xh + r * hh)`` with the recurrent bias
  inside ``hh``, ``h = z * h + (1 - z) * n``; PyTorch orders its blocks r, z, n;
- ``lstm``/``gru`` output every step (``return_sequences = true``, ``[time, units]``) or the last (``[units]``);
- ``sequence_pool``: ``pool = "last"`` (the last time step) or ``"mean"`` (the mean over time),
  ``[time, d] -> [d]``;
- activations: ``relu``, ``relu6`` = min(max(x, 0), 6), ``gelu`` (exact, with erf; not the tanh
  approximation), ``swish`` = x * sigmoid(x) (``silu`` is read as ``swish``), ``softmax`` (over the last axis),
  ``tanh``, ``sigmoid``, ``linear``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fwbench import limits

ACTIVATIONS = ("relu", "relu6", "gelu", "swish", "softmax", "tanh", "sigmoid", "linear")
ACTIVATION_ALIASES = {"silu": "swish"}
PADDINGS = ("valid", "same")
MAX_DIM = limits.MAX_DIM
MERGES = ("add", "concat")  # the kinds that take two or more inputs
SEQUENCE = ("position_embedding", "multi_head_attention", "lstm", "gru", "sequence_pool")
RECURRENT = ("lstm", "gru")
POOLS = ("last", "mean")
SPATIAL = ("conv2d", "depthwise_conv2d", "maxpool2d", "avgpool2d", "global_avgpool2d", "zero_padding2d")


@dataclass(frozen=True)
class Layer:
    """One node of the network. ``kind`` is one of :data:`LAYER_FIELDS`; unused fields keep defaults.

    ``name`` is unique in the workload and ``inputs`` names the nodes it reads (``"input"`` is the
    network's input); both are always set once a workload is parsed (see :mod:`fwbench.workload_graph`).
    """

    kind: str
    name: str = ""
    inputs: tuple[str, ...] = ()
    filters: int = 0
    units: int = 0
    kernel_size: int = 0
    pool_size: int = 0
    strides: int = 1
    padding: str = "valid"
    activation: str = "linear"
    use_bias: bool = True
    groups: int = 1
    depth_multiplier: int = 1
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    rate: float = 0.0
    momentum: float = 0.99
    epsilon: float = 1e-3
    input_dim: int = 0
    output_dim: int = 0
    max_length: int = 0
    heads: int = 0
    key_dim: int = 0
    causal: bool = False
    return_sequences: bool = False
    pool: str = "mean"


# Per layer kind: allowed keys -> (type, check, what is allowed). ``name`` and ``inputs`` are allowed on
# every kind and checked by the graph parser.
_POS = (lambda v: 1 <= v <= MAX_DIM, f"an integer from 1 to {MAX_DIM}")
_ACT = (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)} (or silu, read as swish)")
_PAD = (lambda v: v in PADDINGS, f"one of {', '.join(PADDINGS)}")
_BOOL = (lambda v: True, "true or false")
_PADS = (lambda v: all(0 <= p <= MAX_DIM for p in v), f"[top, bottom, left, right], each from 0 to {MAX_DIM}")
LAYER_FIELDS: dict[str, dict[str, tuple[type, Any, str]]] = {
    "conv2d": {"filters": (int, *_POS), "kernel_size": (int, *_POS), "strides": (int, *_POS),
               "padding": (str, *_PAD), "activation": (str, *_ACT), "use_bias": (bool, *_BOOL),
               "groups": (int, *_POS)},
    "depthwise_conv2d": {"kernel_size": (int, *_POS), "strides": (int, *_POS), "padding": (str, *_PAD),
                         "activation": (str, *_ACT), "use_bias": (bool, *_BOOL), "depth_multiplier": (int, *_POS)},
    "maxpool2d": {"pool_size": (int, *_POS), "strides": (int, *_POS), "padding": (str, *_PAD)},
    "avgpool2d": {"pool_size": (int, *_POS), "strides": (int, *_POS), "padding": (str, *_PAD)},
    "global_avgpool2d": {},
    "zero_padding2d": {"pad": (tuple, *_PADS)},
    "flatten": {},
    "dense": {"units": (int, *_POS), "activation": (str, *_ACT), "use_bias": (bool, *_BOOL)},
    "dropout": {"rate": (float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")},
    "batchnorm": {"momentum": (float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"),
                  "epsilon": (float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")},
    "activation": {"activation": (str, *_ACT)},
    "add": {},
    "concat": {},
    "embedding": {"input_dim": (int, *_POS), "output_dim": (int, *_POS)},
    "position_embedding": {"max_length": (int, *_POS)},
    "layernorm": {"epsilon": (float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")},
    "multi_head_attention": {"heads": (int, *_POS), "key_dim": (int, *_POS), "causal": (bool, *_BOOL)},
    "lstm": {"units": (int, *_POS), "return_sequences": (bool, *_BOOL)},
    "gru": {"units": (int, *_POS), "return_sequences": (bool, *_BOOL)},
    "sequence_pool": {"pool": (str, lambda v: v in POOLS, f"one of {', '.join(POOLS)}")},
}
REQUIRED_KEYS = {"embedding": ("input_dim", "output_dim"), "position_embedding": ("max_length",),
                 "layernorm": ("epsilon",), "multi_head_attention": ("heads", "key_dim"), "lstm": ("units",),
                 "gru": ("units",), "sequence_pool": ("pool",),
                 "conv2d": ("filters", "kernel_size"), "depthwise_conv2d": ("kernel_size",),
                 "maxpool2d": ("pool_size",), "avgpool2d": ("pool_size",), "dense": ("units",),
                 "zero_padding2d": ("pad",)}


def window(layer: Layer) -> int:
    """The square window of a convolution or pooling layer."""
    return layer.kernel_size if layer.kind in ("conv2d", "depthwise_conv2d") else layer.pool_size


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """(before, after) padding of one spatial axis under ``same``: the extra pixel goes after (TensorFlow)."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def output_shape(layer: Layer, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape (no batch) of ``layer`` given its inputs' shapes; ``ValueError`` says what does not fit."""
    kind = layer.kind
    if kind in MERGES:
        if len(shapes) < 2:
            raise ValueError(f"{kind} merges two or more inputs; name them in inputs = [...]")
        first = shapes[0]
        for s in shapes[1:]:
            if kind == "add" and s != first:
                raise ValueError(f"add needs inputs of one shape, got {' + '.join(str(list(t)) for t in shapes)}")
            if kind == "concat" and (len(s) != len(first) or s[:-1] != first[:-1]):
                raise ValueError("concat joins the last axis; the other dimensions must agree, got "
                                 + ", ".join(str(list(t)) for t in shapes))
        return first if kind == "add" else (*first[:-1], sum(s[-1] for s in shapes))
    if len(shapes) != 1:
        raise ValueError(f"{kind} takes one input, got {len(shapes)}")
    shape = shapes[0]
    if kind in SPATIAL:
        if len(shape) != 3:
            raise ValueError(f"needs an input of shape [height, width, channels], got {list(shape)}")
        h, w, c = shape
        if kind == "global_avgpool2d":
            return (c,)
        if kind == "zero_padding2d":
            top, bottom, left, right = layer.pad
            return (h + top + bottom, w + left + right, c)
        k, s = window(layer), layer.strides
        if layer.padding == "same":
            oh, ow = math.ceil(h / s), math.ceil(w / s)
        else:
            if k > h or k > w:
                raise ValueError(f"window {k}x{k} is larger than its input {h}x{w}")
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
        if kind == "conv2d":
            if c % layer.groups or layer.filters % layer.groups:
                raise ValueError(f"groups = {layer.groups} must divide the input channels ({c}) and filters "
                                 f"({layer.filters})")
            return (oh, ow, layer.filters)
        if kind == "depthwise_conv2d":
            return (oh, ow, c * layer.depth_multiplier)
        return (oh, ow, c)
    if kind == "embedding":
        if len(shape) != 1:
            raise ValueError(f"reads token ids of shape [time], got {list(shape)}")
        return (shape[0], layer.output_dim)
    if kind in SEQUENCE:
        if len(shape) != 2:
            raise ValueError(f"needs a sequence of shape [time, features], got {list(shape)}")
        t, d = shape
        if kind == "position_embedding" and t > layer.max_length:
            raise ValueError(f"the sequence has {t} steps, more than max_length = {layer.max_length}")
        if kind in RECURRENT:
            return (t, layer.units) if layer.return_sequences else (layer.units,)
        return (d,) if kind == "sequence_pool" else shape
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "dense":
        if len(shape) not in (1, 2):
            raise ValueError("needs a flat input or a sequence [time, features]; add a flatten or "
                             f"global_avgpool2d before it (input {list(shape)})")
        return (*shape[:-1], layer.units)
    return shape  # dropout, batchnorm, activation


def parameter_shapes(layer: Layer, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The canonical (channels-last) shape of every parameter of ``layer``, in the order frameworks hold them.

    conv2d ``kernel [k, k, in/groups, filters]``; depthwise ``kernel [k, k, in, depth_multiplier]``; dense
    ``kernel [in, units]``; ``bias`` where ``use_bias``; batchnorm ``gamma, beta, moving_mean, moving_variance``;
    the sequence kinds as the module docstring says (Keras's own layouts).
    """
    c = in_shape[-1]
    if layer.kind == "conv2d":
        k = layer.kernel_size
        out = {"kernel": (k, k, c // layer.groups, layer.filters)}
        return {**out, "bias": (layer.filters,)} if layer.use_bias else out
    if layer.kind == "depthwise_conv2d":
        k = layer.kernel_size
        out = {"kernel": (k, k, c, layer.depth_multiplier)}
        return {**out, "bias": (c * layer.depth_multiplier,)} if layer.use_bias else out
    if layer.kind == "dense":
        out = {"kernel": (c, layer.units)}
        return {**out, "bias": (layer.units,)} if layer.use_bias else out
    if layer.kind == "batchnorm":
        return {"gamma": (c,), "beta": (c,), "moving_mean": (c,), "moving_variance": (c,)}
    if layer.kind == "embedding":
        return {"embeddings": (layer.input_dim, layer.output_dim)}
    if layer.kind == "position_embedding":
        return {"embeddings": (layer.max_length, c)}
    if layer.kind == "layernorm":
        return {"gamma": (c,), "beta": (c,)}
    if layer.kind == "multi_head_attention":
        h, k = layer.heads, layer.key_dim
        return {"query_kernel": (c, h, k), "query_bias": (h, k), "key_kernel": (c, h, k), "key_bias": (h, k),
                "value_kernel": (c, h, k), "value_bias": (h, k), "output_kernel": (h, k, c), "output_bias": (c,)}
    if layer.kind in RECURRENT:
        u, g = layer.units, GATES[layer.kind]
        bias = (4 * u,) if layer.kind == "lstm" else (2, 3 * u)
        return {"kernel": (c, g * u), "recurrent_kernel": (u, g * u), "bias": bias}
    return {}


GATES = {"lstm": 4, "gru": 3}


NON_TRAINABLE = ("moving_mean", "moving_variance")
