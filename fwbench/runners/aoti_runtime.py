"""``torch-export``: the ``torch.export`` program of the ``torch`` runner's model, compiled ahead of time by
AOTInductor (``aoti_compile_and_package``, a .pt2 with a shared library) and run by ``aoti_load_package``:
PyTorch's own deployment path, without Python model code. torch itself is its runtime. The package is
compiled per device (its key includes it); threads: ``torch.set_num_threads``. The compile (a C++ build,
about half a minute for a tiny model) happens once per run in the artifact cache, outside cold start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch._inductor

from fwbench.errors import CellSkipped
from fwbench.runners.runtime_base import InferenceSession


class AOTInductorSession(InferenceSession):
    fmt = "aoti"
    layout = "torch"
    devices = ("cpu", "cuda")

    def setup_runtime(self) -> None:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise CellSkipped(f"torch {torch.__version__} sees no CUDA device")
        torch.set_num_threads(self.threads)
        self.dev = torch.device(self.device)

    def load(self, path: Any) -> None:
        self.runner = torch._inductor.aoti_load_package(str(path))

    def serve(self, payload: Any) -> np.ndarray:
        with torch.inference_mode():
            out = self.runner(torch.from_numpy(payload).to(self.dev))
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.cpu().numpy()  # .cpu() waits for the device

    def runtime_settings(self) -> dict[str, Any]:
        return {"runtime": f"torch {torch.__version__} (AOTInductor)", "provider": "aoti_load_package",
                "device": self.device, "intra_op_threads": torch.get_num_threads(),
                "package": getattr(getattr(self, "artifact", None), "path", None) and self.artifact.path.name}
