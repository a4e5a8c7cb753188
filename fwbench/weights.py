"""Shared initial weights: every parameter initialised once in NumPy from the workload's seed.

Every runner loads these exact values (after layout conversion, see :mod:`fwbench.layout`), so all
frameworks start from the same point and the parity check can compare their losses.

Initialisers (the Keras defaults, written out so that no framework's own default is used):
- conv2d, depthwise_conv2d and dense kernels: Glorot-uniform, limit = sqrt(6 / (fan_in + fan_out)), with
  the fans of one group of the kernel's canonical shape ``[k, k, a, b]``: fan_in = k*k*a, fan_out = k*k*b
  for a conv (a = in_channels / groups, b = filters, as Keras computes them); fan_in = k*k and
  fan_out = k*k*depth_multiplier for a depthwise conv, whose every output reads one input channel (the
  per-group rule, and PyTorch's fan; Keras's ``glorot_uniform`` counts all input channels as the fan-in,
  which leaves a depthwise output with about 1/in_channels of its input's variance);
- biases: zeros;
- batchnorm: gamma = 1, beta = 0, moving mean = 0, moving variance = 1; layernorm: gamma = 1, beta = 0;
- embedding and position_embedding tables: uniform in [-0.05, 0.05] (Keras ``Embedding``'s default);
- multi_head_attention: Glorot-uniform with the fans of the projection each kernel is, d -> heads*key_dim
  for query/key/value and heads*key_dim -> d for the output (Keras's ``EinsumDense`` would count the
  ``[d, heads, key_dim]`` kernel's fans as d*heads and d*key_dim); biases zero;
- lstm/gru: input kernel Glorot-uniform over ``[in, gates*units]``; recurrent kernel orthogonal (Keras's
  ``Orthogonal``: the Q of a QR of a standard-normal matrix, signs fixed by R's diagonal); biases zero except
  the LSTM forget gate's, which is 1 (Keras's ``unit_forget_bias=True``).

Canonical layout (channels-last, as Keras stores it; :func:`fwbench.layers.parameter_shapes`): conv kernel
``[kh, kw, in/groups, out]`` (HWIO), depthwise kernel ``[kh, kw, in, multiplier]``, dense kernel
``[in, out]``, and a flatten that follows ``[height, width, channels]`` order. ``Params`` is index-aligned
with ``spec.layers`` (the graph's nodes in order).
"""

from __future__ import annotations

import numpy as np

from fwbench.layers import parameter_shapes
from fwbench.workload_spec import WorkloadSpec, layer_input_shapes

Params = list[dict[str, np.ndarray]]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """An orthogonal ``[rows, cols]`` matrix (orthonormal rows or columns, whichever are fewer), as Keras draws it."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return (q.T if rows < cols else q).astype(np.float32)


def _sequence_param(rng: np.random.Generator, kind: str, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The initial value of a sequence kind's parameter, or ``None`` when the generic rules apply."""
    if name == "embeddings":
        return rng.uniform(-0.05, 0.05, size=shape).astype(np.float32)
    if kind == "multi_head_attention" and name.endswith("_kernel"):
        fan_in, fan_out = (shape[0], shape[1] * shape[2]) if name != "output_kernel" else \
            (shape[0] * shape[1], shape[2])
        return glorot_uniform(rng, shape, fan_in, fan_out)
    if kind in ("lstm", "gru"):
        if name == "kernel":
            return glorot_uniform(rng, shape, shape[0], shape[1])
        if name == "recurrent_kernel":
            return orthogonal(rng, shape)
        bias = np.zeros(shape, np.float32)
        if kind == "lstm":
            units = shape[0] // 4
            bias[units:2 * units] = 1.0  # unit_forget_bias
        return bias
    return None


def init_params(spec: WorkloadSpec) -> Params:
    """One dict per node of ``spec.layers`` (empty for nodes without parameters), canonical layout, float32."""
    rng = np.random.default_rng(spec.seed)
    params: Params = []
    for layer, ins in zip(spec.layers, layer_input_shapes(spec)):
        p: dict[str, np.ndarray] = {}
        for name, shape in parameter_shapes(layer, ins[0]).items():
            special = _sequence_param(rng, layer.kind, name, shape)
            if special is not None:
                p[name] = special
            elif name == "kernel":
                receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
                fan_in = receptive * (1 if layer.kind == "depthwise_conv2d" else shape[-2])  # per group
                p[name] = glorot_uniform(rng, shape, fan_in, receptive * shape[-1])
            elif name in ("gamma", "moving_variance"):
                p[name] = np.ones(shape, np.float32)
            else:  # bias, beta, moving_mean
                p[name] = np.zeros(shape, np.float32)
        params.append(p)
    return params
