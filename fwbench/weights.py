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
- batchnorm: gamma = 1, beta = 0, moving mean = 0, moving variance = 1.

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


def init_params(spec: WorkloadSpec) -> Params:
    """One dict per node of ``spec.layers`` (empty for nodes without parameters), canonical layout, float32."""
    rng = np.random.default_rng(spec.seed)
    params: Params = []
    for layer, ins in zip(spec.layers, layer_input_shapes(spec)):
        p: dict[str, np.ndarray] = {}
        for name, shape in parameter_shapes(layer, ins[0]).items():
            if name == "kernel":
                receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
                fan_in = receptive * (1 if layer.kind == "depthwise_conv2d" else shape[-2])  # per group
                p[name] = glorot_uniform(rng, shape, fan_in, receptive * shape[-1])
            elif name in ("gamma", "moving_variance"):
                p[name] = np.ones(shape, np.float32)
            else:  # bias, beta, moving_mean
                p[name] = np.zeros(shape, np.float32)
        params.append(p)
    return params
