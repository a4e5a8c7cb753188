"""Which probes exist, what they show and which runners they apply to (metadata; no framework imports)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from fwbench.errors import UsageError
from fwbench.runners.registry import RUNNERS


@dataclass(frozen=True)
class ProbeInfo:
    """One probe. ``impls`` maps a runner to the ``module:function`` that probes it inside a worker;
    ``modules`` are extra importable modules the probe needs (checked with ``find_spec`` only)."""

    name: str
    kind: str
    description: str
    impls: dict[str, str]
    modules: tuple[str, ...] = ()
    tokens_only: bool = False  # planned only for workloads whose input is token ids

    def applies_to(self, workload: dict) -> bool:
        """Does the probe apply to this (stored-form) workload?"""
        return not self.tokens_only or workload.get("vocabulary") is not None

    @property
    def runners(self) -> tuple[str, ...]:
        return tuple(self.impls)

    def missing(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]


_T, _TF, _K = "fwbench.probes.torch_probes", "fwbench.probes.tf_probes", "fwbench.probes.keras_probes"
_SESSION = "fwbench.probes.session_probes"

PROBES: dict[str, ProbeInfo] = {p.name: p for p in (
    ProbeInfo("debug-value", "debugging",
              "read a concrete intermediate value (first layer's output) inside the training step",
              {"torch": f"{_T}:debug_value", "torch-compile": f"{_T}:debug_value",
               "tf-eager": f"{_TF}:debug_value", "tf-graph": f"{_TF}:debug_value", "keras": f"{_K}:debug_value"}),
    ProbeInfo("shape-error", "debugging",
              "feed a wrongly shaped input: does the error name the offending layer and the shapes?",
              {"torch": f"{_T}:shape_error", "tf-eager": f"{_TF}:shape_error", "keras": f"{_K}:shape_error"}),
    ProbeInfo("shape-change", "flexibility",
              "train on batch size B, then B+1 and B+2: retraces / recompiles and the first call's time",
              {r: f"{_SESSION}:shape_change" for r in ("torch", "torch-compile", "tf-eager", "tf-graph", "tf-xla")}),
    ProbeInfo("seq-length", "flexibility",
              "train one session at sequence lengths T/2, 3T/4, T (token workloads): retraces / recompiles and "
              "the first call at each new length",
              {r: f"{_SESSION}:sequence_length" for r in ("torch", "torch-compile", "tf-eager", "tf-graph", "tf-xla",
                                                         "keras", "keras-torch", "keras-jax")}, tokens_only=True),
    ProbeInfo("export-torch", "deployment", "torch.export → .pt2, reloaded and run",
              {"torch": f"{_T}:export_torch"}),
    ProbeInfo("export-onnx", "deployment", "torch.onnx → .onnx, run by ONNX Runtime",
              {"torch": f"{_T}:export_onnx"}, ("onnx", "onnxruntime")),
    ProbeInfo("export-torchscript", "deployment", "TorchScript (torch.jit.trace) → .pt, reloaded and run",
              {"torch": f"{_T}:export_torchscript"}),
    ProbeInfo("export-savedmodel", "deployment", "tf.saved_model.save, reloaded and run",
              {"tf-graph": f"{_TF}:export_savedmodel"}),
    ProbeInfo("export-tflite", "deployment", "TFLite converter → .tflite, run by the TFLite interpreter",
              {"tf-graph": f"{_TF}:export_tflite"}),
    ProbeInfo("export-tf2onnx", "deployment", "tf2onnx → .onnx, run by ONNX Runtime (only where tf2onnx is installed)",
              {"tf-graph": f"{_TF}:export_tf2onnx"}, ("tf2onnx", "onnxruntime")),
)}


def select(probes: list[str], runners: list[str]) -> list[tuple[ProbeInfo, str]]:
    """(probe, runner) pairs: the named probes (all when empty) for the named runners (all when empty).

    Runners that are not registered (e.g. a family that is not installed) are left out.
    """
    for p in probes:
        if p not in PROBES:
            raise UsageError(f"unknown probe {p!r}; choose from: {', '.join(PROBES)}")
    chosen = [PROBES[p] for p in probes] if probes else list(PROBES.values())
    return [(p, r) for p in chosen for r in p.runners
            if r in RUNNERS and (not runners or r in runners)]
