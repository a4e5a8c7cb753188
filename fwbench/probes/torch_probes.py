"""PyTorch probes (imported only in a probe worker): debugging, shape errors, and three export paths.

Models come from the runners themselves: the session of ``torch`` / ``torch-compile`` for training-step
probes, :func:`fwbench.runners.torch_runner.build_module` (the same network, the shared weights) for exports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from fwbench.layout import nhwc_to_nchw
from fwbench.probes import shapes
from fwbench.probes.context import ProbeContext, export_findings, timed, version
from fwbench.runners.torch_runner import build_module


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(nhwc_to_nchw(x) if x.ndim == 4 else x))


def debug_value(ctx: ProbeContext) -> dict[str, Any]:
    """A forward hook on the first layer reads its output as a Python float during a training step."""
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    first = next(m for m in session.model.modules()  # the first conv or dense, in node order
                 if any(True for _ in m.parameters(recurse=False)))
    seen: list[float] = []
    first.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().abs().mean().item()))
    breaks0 = _graph_breaks()
    loss = session.value(session.train_step(session.put(ctx.data.batch(0))))
    value = seen[0] if seen else None
    out = {"concrete_value": value is not None and math.isfinite(value), "value": value, "loss": loss,
           "how": f"forward hook on layer 0 ({type(first).__name__}) calling .item()", "error": None}
    if getattr(session, "compiled", False):
        # torch.compile splits its graph at the .item() (a graph break) and runs the hook in Python
        out["graph_breaks"] = _graph_breaks() - breaks0
    return out


def _graph_breaks() -> int:
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover
        return 0
    return int(sum(counters["graph_break"].values()))


def shape_error(ctx: ProbeContext) -> dict[str, Any]:
    """Run the forward pass on a wrongly shaped input and read the error it raises."""
    model = build_module(ctx.spec, ctx.params).eval()

    def forward(x: np.ndarray) -> Any:
        with torch.no_grad():
            return model(_nchw(x))

    return shapes.shape_error(ctx.spec, ctx.inputs(), forward, lambda index: (["Linear"], []))


def _reference(ctx: ProbeContext) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    model = build_module(ctx.spec, ctx.params).eval()
    x = _nchw(ctx.inputs())
    with torch.no_grad():
        ref = model(x).numpy()
    return model, x, ref


def export_torch(ctx: ProbeContext) -> dict[str, Any]:
    """``torch.export.export`` → ``torch.export.save`` (.pt2) → ``torch.export.load`` → run."""
    model, x, ref = _reference(ctx)
    path = ctx.workdir / "model.pt2"

    def export() -> None:
        torch.export.save(torch.export.export(model, (x,)), path)

    _, export_s = timed(export)
    with torch.no_grad():
        out = torch.export.load(path).module()(x).numpy()
    return export_findings("torch.export", export_s, path, ref, out, runtime=f"torch {torch.__version__}")


def export_onnx(ctx: ProbeContext) -> dict[str, Any]:
    """``torch.onnx.export`` → .onnx → ONNX Runtime (CPU). The dynamo exporter needs onnxscript; without
    it the TorchScript-based exporter is used, and which one ran is recorded."""
    import onnxruntime as ort

    model, x, ref = _reference(ctx)
    path = ctx.workdir / "model.onnx"
    dynamo = version("onnxscript") is not None
    _, export_s = timed(lambda: torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"],
                                                  dynamo=dynamo))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return export_findings("ONNX", export_s, path, ref, out, runtime=f"onnxruntime {ort.__version__}",
                           exporter="dynamo" if dynamo else "TorchScript-based (onnxscript not installed)")


def export_torchscript(ctx: ProbeContext) -> dict[str, Any]:
    """``torch.jit.trace`` → ``save`` (.pt) → ``torch.jit.load`` → run."""
    model, x, ref = _reference(ctx)
    path = ctx.workdir / "model.ts.pt"
    _, export_s = timed(lambda: torch.jit.trace(model, (x,)).save(str(path)))
    with torch.no_grad():
        out = torch.jit.load(str(path))(x).numpy()
    return export_findings("TorchScript", export_s, path, ref, out, runtime=f"torch {torch.__version__}")
