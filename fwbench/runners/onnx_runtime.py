"""``onnxruntime``: ONNX Runtime serving the ``torch`` runner's model exported by ``torch.onnx.export``.

The export (:mod:`fwbench.runners.artifacts`) runs in a child process; this worker imports ONNX Runtime
only. Threads: ``intra_op_num_threads`` = the cell's threads, ``inter_op_num_threads`` = 1 (sequential
execution mode, ONNX Runtime's default); graph optimizations at their default level (``ORT_ENABLE_ALL``).
``cuda`` needs the ``CUDAExecutionProvider`` (the ``onnxruntime-gpu`` build) and is skipped with that
reason without it. The providers recorded are those the session reports it uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from fwbench.errors import CellSkipped
from fwbench.runners.runtime_base import InferenceSession

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeSession(InferenceSession):
    fmt = "onnx"
    layout = "torch"
    devices = ("cpu", "cuda")

    def setup_runtime(self) -> None:
        provider = _PROVIDERS[self.device]
        if provider not in ort.get_available_providers():
            raise CellSkipped(f"onnxruntime {ort.__version__} has no {provider} (available: "
                              f"{', '.join(ort.get_available_providers())}); for cuda install onnxruntime-gpu")
        self.providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session_options = opts

    def load(self, path: Any) -> None:
        self.sess = ort.InferenceSession(str(path), sess_options=self.session_options, providers=self.providers)
        if _PROVIDERS[self.device] not in self.sess.get_providers():
            raise CellSkipped(f"onnxruntime could not start {_PROVIDERS[self.device]} "
                              f"(the session runs on {', '.join(self.sess.get_providers())})")
        self.input_name = self.sess.get_inputs()[0].name
        self.output_names = [self.sess.get_outputs()[0].name]

    def serve(self, payload: Any) -> np.ndarray:
        return self.sess.run(self.output_names, {self.input_name: payload})[0]

    def runtime_settings(self) -> dict[str, Any]:
        sess = getattr(self, "sess", None)
        used = sess.get_providers() if sess is not None else getattr(self, "providers", [])
        return {"runtime": f"onnxruntime {ort.__version__}", "provider": used[0] if used else None,
                "providers": used, "intra_op_threads": self.threads, "inter_op_threads": 1,
                "graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL"}
