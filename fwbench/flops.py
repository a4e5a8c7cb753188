"""Analytic FLOPs of one step, from a workload's layer list (pure; no framework).

Convention (the "model FLOPs" of MFU, made exact for a layer list):

- Only the multiply-accumulates of ``conv2d`` and ``dense`` layers count, at 2 FLOPs each (one multiply,
  one add). Bias adds, activations, pooling, batch norm, dropout, the softmax/cross-entropy loss and the
  optimizer update are *not* counted: they are memory-bound element-wise work that a matrix-multiply
  peak does not describe, and for the bundled workloads they are a few percent of the total.
- Forward, per sample: ``conv2d`` = 2 * K * K * C_in * C_out * H_out * W_out
  ("same" padding counts the padded zeros too, as the kernels compute them); ``dense`` = 2 * N_in * N_out.
- Backward, per sample: every conv/dense layer computes its weight gradient (the same FLOPs as its
  forward) and, *except the first such layer*, its input gradient (again the same FLOPs as its
  forward). The first conv/dense layer needs no input gradient because its input is the data, which
  frameworks do not differentiate. So training = forward + backward with
  backward = 2 * forward - forward(first conv/dense layer): slightly under the common "3 x forward".
- A ``train`` step multiplies the training FLOPs by the batch size; an ``infer`` step the forward FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwbench.workload_spec import WorkloadSpec, layer_shapes

COUNTED = ("conv2d", "dense")


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


def layer_flops(spec: WorkloadSpec) -> list[LayerFlops]:
    """Per-sample FLOPs of every conv2d/dense layer, in layer order (see the module docstring)."""
    shapes = [tuple(spec.input_shape)] + layer_shapes(spec.input_shape, spec.layers)
    out: list[LayerFlops] = []
    for i, layer in enumerate(spec.layers):
        in_shape, out_shape = shapes[i], shapes[i + 1]
        if layer.kind == "conv2d":
            oh, ow, cout = out_shape
            fwd = 2 * layer.kernel_size ** 2 * in_shape[-1] * cout * oh * ow
        elif layer.kind == "dense":
            fwd = 2 * in_shape[-1] * layer.units
        else:
            continue
        first = not out  # the first counted layer's input is the data: no input gradient
        out.append(LayerFlops(i, layer.kind, fwd, fwd, 0 if first else fwd))
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
