"""A NumPy reference forward pass of a workload (channels-last, canonical parameters). Pure, no framework.

It defines what every runner must compute, layer by layer, and is the oracle of the layout-conversion
tests: a framework model loaded with the shared weights must reproduce these outputs.
The nodes run in order, each on the outputs of the nodes it names (:mod:`fwbench.workload_graph`); the
semantics of every kind are :mod:`fwbench.layers`'. Batch-norm uses the batch statistics (biased variance)
when ``training`` and the moving statistics otherwise; dropout is the identity (the parity check runs
without dropout).
"""

from __future__ import annotations

import math

import numpy as np

from fwbench.layers import Layer, same_padding
from fwbench.weights import Params
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import WorkloadSpec

def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


_ACT = {
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),  # exact, not the tanh approximation
    "swish": lambda x: x / (1.0 + np.exp(-x)),
    "softmax": _softmax,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
}


def _same_pad(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    pads = [same_padding(n, k, s) for n in x.shape[1:3]]
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """``[n, oh, ow, k, k, c]`` sliding windows of an NHWC array."""
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # n, oh', ow', c, k, k
    return w[:, ::s, ::s].transpose(0, 1, 2, 4, 5, 3)


def _conv(layer: Layer, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    k, s = layer.kernel_size, layer.strides
    if layer.padding == "same":
        x = _same_pad(x, k, s, 0.0)
    win = _windows(x, k, s)
    kernel = p["kernel"].astype(np.float64)
    if layer.kind == "depthwise_conv2d":  # out channel c*m + j = in channel c with kernel[:, :, c, j]
        y = np.einsum("nhwijc,ijcm->nhwcm", win, kernel).reshape(*win.shape[:3], -1)
    else:
        g = layer.groups
        cin, cout = x.shape[-1] // g, layer.filters // g
        y = np.concatenate([np.einsum("nhwijc,ijco->nhwo", win[..., i * cin:(i + 1) * cin],
                                      kernel[..., i * cout:(i + 1) * cout]) for i in range(g)], axis=-1)
    return _ACT[layer.activation](y + p["bias"] if "bias" in p else y)


def _pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    k, s = layer.pool_size, layer.strides
    if layer.kind == "maxpool2d":
        if layer.padding == "same":
            x = _same_pad(x, k, s, -np.inf)
        return _windows(x, k, s).max(axis=(3, 4))
    if layer.padding == "valid":
        return _windows(x, k, s).mean(axis=(3, 4))
    # same: average over the input pixels each window covers (the padding is not counted)
    total = _windows(_same_pad(x, k, s, 0.0), k, s).sum(axis=(3, 4))
    count = _windows(_same_pad(np.ones_like(x[:1, ..., :1]), k, s, 0.0), k, s).sum(axis=(3, 4))
    return total / count


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _attention(layer: Layer, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Keras ``MultiHeadAttention(x, x)``: per-head scaled dot product, causal mask if set, output projection."""
    f = {k: v.astype(np.float64) for k, v in p.items()}
    q = np.einsum("ntd,dhk->nthk", x, f["query_kernel"]) + f["query_bias"]
    k = np.einsum("ntd,dhk->nthk", x, f["key_kernel"]) + f["key_bias"]
    v = np.einsum("ntd,dhk->nthk", x, f["value_kernel"]) + f["value_bias"]
    scores = np.einsum("nqhk,nshk->nhqs", q, k) / math.sqrt(layer.key_dim)
    if layer.causal:
        t = x.shape[1]
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
    heads = np.einsum("nhqs,nshk->nqhk", _softmax(scores), v)
    return np.einsum("nthk,hkd->ntd", heads, f["output_kernel"]) + f["output_bias"]


def _recurrent(layer: Layer, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Keras ``LSTM`` / ``GRU(reset_after=True)`` from a zero state, gate blocks in Keras's order."""
    w, u_, b = (p[k].astype(np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    n, steps, units = len(x), x.shape[1], layer.units
    h, c, out = np.zeros((n, units)), np.zeros((n, units)), []
    for t in range(steps):
        if layer.kind == "lstm":
            z = x[:, t] @ w + h @ u_ + b
            i, f, g, o = (z[:, j * units:(j + 1) * units] for j in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            xz, xr, xh = np.split(x[:, t] @ w + b[0], 3, axis=1)
            hz, hr, hh = np.split(h @ u_ + b[1], 3, axis=1)
            z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
            h = z * h + (1.0 - z) * np.tanh(xh + r * hh)
        out.append(h)
    return np.stack(out, axis=1) if layer.return_sequences else h


def layer_forward(layer: Layer, p: dict[str, np.ndarray], x: np.ndarray | list[np.ndarray],
                  training: bool = False) -> np.ndarray:
    """One node on float64 channels-last input(s): merges take the list of their inputs."""
    if layer.kind == "add":
        return sum(x[1:], start=x[0])
    if layer.kind == "concat":
        return np.concatenate(x, axis=-1)
    if isinstance(x, list):
        (x,) = x
    if layer.kind in ("conv2d", "depthwise_conv2d"):
        return _conv(layer, p, x)
    if layer.kind in ("maxpool2d", "avgpool2d"):
        return _pool(layer, x)
    if layer.kind == "global_avgpool2d":
        return x.mean(axis=(1, 2))
    if layer.kind == "zero_padding2d":
        top, bottom, left, right = layer.pad
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if layer.kind == "flatten":
        return x.reshape(len(x), -1)
    if layer.kind == "dense":
        y = x @ p["kernel"].astype(np.float64)
        return _ACT[layer.activation](y + p["bias"] if "bias" in p else y)
    if layer.kind == "embedding":
        return p["embeddings"].astype(np.float64)[x]
    if layer.kind == "position_embedding":
        return x + p["embeddings"].astype(np.float64)[:x.shape[1]]
    if layer.kind == "layernorm":
        mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + layer.epsilon) * p["gamma"] + p["beta"]
    if layer.kind == "multi_head_attention":
        return _attention(layer, p, x)
    if layer.kind in ("lstm", "gru"):
        return _recurrent(layer, p, x)
    if layer.kind == "sequence_pool":
        return x[:, -1] if layer.pool == "last" else x.mean(axis=1)
    if layer.kind == "batchnorm":
        axes = tuple(range(x.ndim - 1))
        mean, var = (x.mean(axis=axes), x.var(axis=axes)) if training else (p["moving_mean"], p["moving_variance"])
        return (x - mean) / np.sqrt(var + layer.epsilon) * p["gamma"] + p["beta"]
    if layer.kind == "activation":
        return _ACT[layer.activation](x)
    if layer.kind == "dropout":
        return x
    raise ValueError(f"unknown layer {layer.kind}")


def forward(spec: WorkloadSpec, params: Params, x: np.ndarray, training: bool = False,
            outputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Logits for channels-last inputs ``x`` (token ids stay integers), in float64; ``outputs`` (if given)
    receives every node's output."""
    values = {NETWORK_INPUT: x.astype(np.int64) if spec.tokens else x.astype(np.float64)}
    h = values[NETWORK_INPUT]
    for layer, p in zip(spec.layers, params):
        h = layer_forward(layer, p, [values[n] for n in layer.inputs], training)
        values[layer.name] = h
    if outputs is not None:
        outputs.update(values)
    return h


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy from logits (numerically stable log-softmax).

    Per-token logits ``[n, time, classes]`` with labels ``[n, time]`` average over every (sample, position)
    pair alike: the mean over batch and time, the reduction every runner uses.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, np.shape(logits)[-1])
    labels = np.asarray(labels).reshape(-1)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())
