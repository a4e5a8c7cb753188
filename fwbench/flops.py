"""Analytic FLOPs of one step, from a workload's layer list (pure; no framework).

Convention (the "model FLOPs" of MFU, made exact for a layer list):

- Only the multiply-accumulates of ``conv2d``, ``depthwise_conv2d`` and ``dense`` nodes count, at 2 FLOPs
  each (one multiply, one add). Bias adds, activations, pooling, batch norm, dropout, padding, the adds and
  concats of a graph, the softmax/cross-entropy loss and the optimizer update are *not* counted: they are
  memory-bound element-wise work that a matrix-multiply peak does not describe (for ResNet-20 they are a
  few percent of the arithmetic; for a depthwise-separable network the depthwise convolutions themselves
  are memory-bound, so its MFU is low by nature).
- Forward, per sample: ``conv2d`` = 2 * K * K * (C_in / groups) * C_out * H_out * W_out ("same" padding
  counts the padded zeros too, as the kernels compute them); ``depthwise_conv2d`` = 2 * K * K * C_out *
  H_out * W_out with C_out = C_in * depth_multiplier; ``dense`` = 2 * N_in * N_out.
- Backward, per sample: every counted node computes its weight gradient (the same FLOPs as its forward)
  and its input gradient (again the same) *where its input depends on a trainable parameter*. A node
  whose input is the data, or reaches it only through parameter-free nodes (padding, pooling), needs no
  input gradient, since frameworks do not differentiate the data. In a plain list this is the first
  conv/dense layer, so training = 3 x forward minus that layer's forward: slightly under the common
  "3 x forward".
- Sequences: a ``dense`` node on ``[time, features]`` counts 2 * T * N_in * N_out. ``multi_head_attention``
  counts its four projections (q, k, v: 2 * T * d * heads * key_dim each; output: the same) and its two
  attention matmuls, Q K^T and A V (2 * T * T * heads * key_dim each, the full T x T square even when causal:
  a dense kernel computes it, though a flash kernel may skip the masked half). ``lstm``/``gru`` count
  2 * T * (N_in + units) * gates * units (gates 4 or 3) for their T steps. Embedding lookups, layer norm,
  softmax and the gates' element-wise work are not counted.
- Backward of the sequence kinds: the weight gradient of every projection (as its forward); the attention
  matmuls twice over (dQ and dK, dA and dV); the input gradient of the output projection and of the
  recurrent matmul always (their inputs depend on parameters), and of the input projections only where
  the node's input does.
- A ``train`` step multiplies the training FLOPs by the batch size; an ``infer`` step the forward FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwbench.layers import Layer, parameter_shapes
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import WorkloadSpec, layer_input_shapes, layer_shapes

COUNTED = ("conv2d", "depthwise_conv2d", "dense", "multi_head_attention", "lstm", "gru")


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one counted layer for one sample: forward, weight gradient, input gradient."""

    index: int
    kind: str
    forward: int
    weight_grad: int
    input_grad: int

    @property
    def training(self) -> int:
        return self.forward + self.weight_grad + self.input_grad


def _forward(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    if layer.kind == "conv2d":
        oh, ow, cout = out_shape
        return 2 * layer.kernel_size ** 2 * (in_shape[-1] // layer.groups) * cout * oh * ow
    if layer.kind == "depthwise_conv2d":
        oh, ow, cout = out_shape  # cout = in_channels * depth_multiplier, one k x k window each
        return 2 * layer.kernel_size ** 2 * cout * oh * ow
    positions = in_shape[0] if len(in_shape) == 2 else 1  # a dense on [time, features] runs at every step
    return 2 * positions * in_shape[-1] * layer.units


def _sequence(layer: Layer, in_shape: tuple[int, ...], upstream: bool) -> LayerFlops | None:
    """Forward, weight-gradient and input-gradient FLOPs of an attention or recurrent node, per sample."""
    if layer.kind not in ("multi_head_attention", "lstm", "gru"):
        return None
    t, d = in_shape
    if layer.kind == "multi_head_attention":
        width = layer.heads * layer.key_dim
        p_in, p_out, attn = 3 * 2 * t * d * width, 2 * t * width * d, 2 * 2 * t * t * width
        return LayerFlops(0, layer.kind, p_in + p_out + attn, p_in + p_out, p_out + 2 * attn + (p_in if upstream else 0))
    if layer.kind in ("lstm", "gru"):
        gates = 4 if layer.kind == "lstm" else 3
        w, r = 2 * t * d * gates * layer.units, 2 * t * layer.units * gates * layer.units
        return LayerFlops(0, layer.kind, w + r, w + r, r + (w if upstream else 0))
    return None


def layer_flops(spec: WorkloadSpec) -> list[LayerFlops]:
    """Per-sample FLOPs of every counted node (:data:`COUNTED`), in node order (see the module docstring)."""
    outs = layer_shapes(spec.input_shape, spec.layers)
    ins = layer_input_shapes(spec)
    needs_grad = {NETWORK_INPUT: False}  # does the node's output depend on a trainable parameter?
    out: list[LayerFlops] = []
    for i, layer in enumerate(spec.layers):
        upstream = any(needs_grad[n] for n in layer.inputs)
        needs_grad[layer.name] = upstream or bool(parameter_shapes(layer, ins[i][0]))
        if layer.kind not in COUNTED:
            continue
        seq = _sequence(layer, ins[i][0], upstream)
        if seq is not None:
            out.append(LayerFlops(i, seq.kind, seq.forward, seq.weight_grad, seq.input_grad))
            continue
        fwd = _forward(layer, ins[i][0], outs[i])
        # the input gradient is computed only where the input depends on a parameter (not on the data alone)
        out.append(LayerFlops(i, layer.kind, fwd, fwd, fwd if upstream else 0))
    return out


def forward_flops(spec: WorkloadSpec) -> int:
    """Forward FLOPs of one sample."""
    return sum(l.forward for l in layer_flops(spec))


def training_flops(spec: WorkloadSpec) -> int:
    """Forward + backward FLOPs of one sample (weight and input gradients; see the module docstring)."""
    return sum(l.training for l in layer_flops(spec))


def flops_per_step(spec: WorkloadSpec) -> int:
    """FLOPs of one timed step of ``spec``: a training step (``mode = "train"``) or a forward pass, whole batch."""
    per_sample = training_flops(spec) if spec.mode == "train" else forward_flops(spec)
    return per_sample * spec.batch_size


def utilisation(flops_step: int, step_s: float | None, peak_flops: float | None) -> tuple[float | None, float | None]:
    """``(achieved FLOP/s, MFU)`` for a step of ``flops_step`` FLOPs taking ``step_s`` seconds; ``None`` where unknown."""
    if not step_s or step_s <= 0 or not flops_step:
        return None, None
    achieved = flops_step / step_s
    return achieved, (achieved / peak_flops if peak_flops and peak_flops > 0 else None)
