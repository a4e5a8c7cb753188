"""A NumPy reference forward pass of a workload (channels-last, canonical parameters). Pure, no framework.

It defines what every runner must compute, layer by layer, and is the oracle of the layout-conversion
tests: a framework model loaded with the shared weights must reproduce these outputs.
Batch-norm uses the batch statistics (biased variance) when ``training`` and the moving statistics
otherwise; dropout is the identity (the parity check runs without dropout).
"""

from __future__ import annotations

import math

import numpy as np

from fwbench.weights import Params
from fwbench.workload_spec import Layer, WorkloadSpec

_ACT = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
}


def _same_pad(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    pads = []
    for n in x.shape[1:3]:
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """``[n, oh, ow, k, k, c]`` sliding windows of an NHWC array."""
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # n, oh', ow', c, k, k
    return w[:, ::s, ::s].transpose(0, 1, 2, 4, 5, 3)


def layer_forward(layer: Layer, p: dict[str, np.ndarray], x: np.ndarray, training: bool = False) -> np.ndarray:
    """One layer on a float64 channels-last batch."""
    if layer.kind == "conv2d":
        if layer.padding == "same":
            x = _same_pad(x, layer.kernel_size, layer.strides, 0.0)
        win = _windows(x, layer.kernel_size, layer.strides)
        y = np.einsum("nhwijc,ijco->nhwo", win, p["kernel"].astype(np.float64)) + p["bias"]
        return _ACT[layer.activation](y)
    if layer.kind == "maxpool2d":
        if layer.padding == "same":
            x = _same_pad(x, layer.pool_size, layer.strides, -np.inf)
        return _windows(x, layer.pool_size, layer.strides).max(axis=(3, 4))
    if layer.kind == "flatten":
        return x.reshape(len(x), -1)
    if layer.kind == "dense":
        return _ACT[layer.activation](x @ p["kernel"].astype(np.float64) + p["bias"])
    if layer.kind == "batchnorm":
        axes = tuple(range(x.ndim - 1))
        mean, var = (x.mean(axis=axes), x.var(axis=axes)) if training else (p["moving_mean"], p["moving_variance"])
        return (x - mean) / np.sqrt(var + layer.epsilon) * p["gamma"] + p["beta"]
    if layer.kind == "activation":
        return _ACT[layer.activation](x)
    if layer.kind == "dropout":
        return x
    raise ValueError(f"unknown layer {layer.kind}")


def forward(spec: WorkloadSpec, params: Params, x: np.ndarray, training: bool = False) -> np.ndarray:
    """Logits for channels-last inputs ``x``, in float64."""
    h = x.astype(np.float64)
    for layer, p in zip(spec.layers, params):
        h = layer_forward(layer, p, h, training)
    return h


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy from logits (numerically stable log-softmax)."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())
