"""``openvino``: OpenVINO serving the same ONNX file as ``onnxruntime`` (an optional extra, CPU only).

Why it is here: on Intel CPUs OpenVINO is the vendor's own deployment runtime, and it reads the ONNX
export directly, so it costs no second exporter and shows what the vendor's kernels make of the same
graph. ``INFERENCE_PRECISION_HINT`` is pinned to ``f32`` (on CPUs with bf16 units OpenVINO would otherwise
run bf16 by default: another model than the fp32 weights), ``INFERENCE_NUM_THREADS`` to the cell's threads
and ``PERFORMANCE_HINT`` to ``LATENCY``. One infer request is created at load and reused for every call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import openvino as ov

from fwbench.runners.runtime_base import InferenceSession


class OpenVINOSession(InferenceSession):
    fmt = "onnx"
    layout = "torch"
    devices = ("cpu",)

    def setup_runtime(self) -> None:
        self.core = ov.Core()
        self.ov_device = "CPU"
        self.config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32",
                       "PERFORMANCE_HINT": "LATENCY"}

    def load(self, path: Any) -> None:
        self.compiled = self.core.compile_model(str(path), self.ov_device, self.config)
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    def serve(self, payload: Any) -> np.ndarray:
        # infer() copies the outputs into fresh arrays; [output] is this call's logits, float32
        return self.request.infer({0: payload})[self.output]

    def runtime_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": f"openvino {ov.__version__.split('-')[0]}", "build": ov.get_version(), "device": getattr(self, "ov_device", "CPU"),
                               "provider": "OpenVINO CPU plugin"}
        compiled = getattr(self, "compiled", None)
        if compiled is not None:
            for key in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS"):
                try:
                    value = compiled.get_property(key)
                    out[key] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
                except Exception:  # a key this version does not report
                    pass
        return out
