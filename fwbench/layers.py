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
}
REQUIRED_KEYS = {"conv2d": ("filters", "kernel_size"), "depthwise_conv2d": ("kernel_size",),
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
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "dense":
        if len(shape) != 1:
            raise ValueError(f"needs a flat input; add a flatten or global_avgpool2d before it (input {list(shape)})")
        return (layer.units,)
    return shape  # dropout, batchnorm, activation


def parameter_shapes(layer: Layer, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The canonical (channels-last) shape of every parameter of ``layer``, in the order frameworks hold them.

    conv2d ``kernel [k, k, in/groups, filters]``; depthwise ``kernel [k, k, in, depth_multiplier]``; dense
    ``kernel [in, units]``; ``bias`` where ``use_bias``; batchnorm ``gamma, beta, moving_mean, moving_variance``.
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
    return {}


NON_TRAINABLE = ("moving_mean", "moving_variance")
