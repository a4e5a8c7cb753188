"""Shared initial weights: every parameter initialised once in NumPy from the workload's seed.

Every runner loads these exact values (after layout conversion, see :mod:`fwbench.layout`), so all
frameworks start from the same point and the parity check can compare their losses.

Initialisers (the Keras defaults, written out so that no framework's own default is used):
- conv2d and dense kernels: Glorot-uniform, limit = sqrt(6 / (fan_in + fan_out)), where for a conv
  kernel fan_in = k*k*in_channels and fan_out = k*k*filters;
- biases: zeros;
- batchnorm: gamma = 1, beta = 0, moving mean = 0, moving variance = 1.

Canonical layout (channels-last, as Keras stores it): conv kernel ``[kh, kw, in, out]`` (HWIO),
dense kernel ``[in, out]``, and a flatten that follows ``[height, width, channels]`` order.
"""

from __future__ import annotations

import numpy as np

from fwbench.workload_spec import WorkloadSpec, layer_shapes

Params = list[dict[str, np.ndarray]]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def init_params(spec: WorkloadSpec) -> Params:
    """One dict per layer (empty for layers without parameters), canonical layout, float32."""
    rng = np.random.default_rng(spec.seed)
    params: Params = []
    shape = spec.input_shape
    for layer, out in zip(spec.layers, layer_shapes(spec.input_shape, spec.layers)):
        p: dict[str, np.ndarray] = {}
        if layer.kind == "conv2d":
            k, cin, cout = layer.kernel_size, shape[-1], layer.filters
            p["kernel"] = glorot_uniform(rng, (k, k, cin, cout), k * k * cin, k * k * cout)
            p["bias"] = np.zeros(cout, np.float32)
        elif layer.kind == "dense":
            p["kernel"] = glorot_uniform(rng, (shape[-1], layer.units), shape[-1], layer.units)
            p["bias"] = np.zeros(layer.units, np.float32)
        elif layer.kind == "batchnorm":
            c = shape[-1]
            p = {"gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32),
                 "moving_mean": np.zeros(c, np.float32), "moving_variance": np.ones(c, np.float32)}
        params.append(p)
        shape = out
    return params
