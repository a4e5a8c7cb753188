"""Layout conversion between the canonical channels-last parameters and channels-first frameworks.

Pure NumPy, so that each conversion is unit-tested without any framework. PyTorch stores conv kernels
as OIHW, dense kernels as ``[out, in]``, and flattens an NCHW tensor in (channels, height, width)
order; the canonical form (:mod:`fwbench.weights`) is HWIO, ``[in, out]`` and (height, width, channels).
"""

from __future__ import annotations

import numpy as np

from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec, layer_shapes


def conv_hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def conv_oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


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


def to_channels_first(spec: WorkloadSpec, params: Params) -> Params:
    """Canonical parameters -> PyTorch's layout (OIHW convs, ``[out, in]`` dense, CHW flatten order).

    After a flatten of a ``[h, w, c]`` tensor, PyTorch's features come in CHW order, so every
    per-feature parameter up to the next dense layer (batch-norm vectors, the dense kernel's rows)
    is permuted the same way.
    """
    shapes = [tuple(spec.input_shape)] + layer_shapes(spec.input_shape, spec.layers)
    perm: np.ndarray | None = None
    out: Params = []
    for i, (layer, p) in enumerate(zip(spec.layers, params)):
        q = dict(p)
        if layer.kind == "flatten" and len(shapes[i]) == 3:
            perm = chw_order(shapes[i])  # type: ignore[arg-type]
        elif layer.kind == "conv2d":
            q["kernel"] = conv_hwio_to_oihw(p["kernel"])
        elif layer.kind == "batchnorm" and perm is not None:
            q = {k: np.ascontiguousarray(v[perm]) for k, v in p.items()}
        elif layer.kind == "dense":
            kernel = p["kernel"] if perm is None else p["kernel"][perm]
            q["kernel"] = np.ascontiguousarray(kernel.T)
            perm = None
        out.append(q)
    return out
