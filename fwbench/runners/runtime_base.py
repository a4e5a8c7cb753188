"""The shared shape of a deployed-runtime runner: inference only, on an artifact exported from the shared weights.

A subclass says which artifact it serves (``fmt``), how it loads one (:meth:`InferenceSession.load`), how a
request's payload is laid out (``layout``: ``torch`` for NCHW images and int64 token ids, ``tf`` for
channels-last images and int32 token ids) and how one request runs (:meth:`serve`). The export itself runs
in a child process (:mod:`fwbench.runners.artifacts`), so this module and the ONNX Runtime / LiteRT /
OpenVINO sessions import neither torch nor TensorFlow.

Such a runner cannot train: :meth:`train_step` raises :class:`CellSkipped` with the reason. Its
:meth:`infer_step` is one request plus the loss in NumPy (so the loss-based checks still read a number), and
:meth:`predict` pads a batch of any size to the artifact's static batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fwbench.data import Batch
from fwbench.errors import CellSkipped
from fwbench.layout import nhwc_to_nchw
from fwbench.reference import cross_entropy
from fwbench.runners import artifacts
from fwbench.runners.base import Session
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec


class InferenceSession(Session):
    """A runtime serving an exported artifact at a static batch (``spec.batch_size``), in float32."""

    lazy_loss = False  # a runtime computes on the host and returns NumPy (windowed timing records it)

    fmt = "onnx"  # the artifact format (a key of artifacts.FORMATS)
    layout = "torch"  # "torch": NCHW images, int64 tokens; "tf": channels-last images, int32 tokens
    devices: tuple[str, ...] = ("cpu",)

    def setup(self) -> None:
        self.threads = self.options.threads
        self.precision = self.options.precision
        if self.precision != "fp32":
            raise CellSkipped(f"{self.job.runner} runs fp32 exports only (asked for {self.precision}): "
                              "a reduced-precision artifact would be another model, not the same weights")
        if self.device not in self.devices:
            raise CellSkipped(f"{self.job.runner} supports {', '.join(self.devices)}, not {self.device}")
        self.setup_runtime()

    def setup_runtime(self) -> None:
        """Import the runtime, check the device is usable (raise :class:`CellSkipped` if not), set threads."""

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.spec = spec
        self.artifact = self.export(spec, params)
        self.load(self.artifact.path)

    def export(self, spec: WorkloadSpec, params: Params) -> artifacts.Artifact:
        """The cached or freshly exported artifact (an export failure is the cell's failure, with its reason)."""
        return artifacts.ensure(spec, params, self.fmt, self.device, self.options.to_dict())

    def load(self, path: Any) -> None:
        """Load the artifact into the runtime: create the session, look up names, allocate buffers once."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------- the request path
    def host_input(self, x: np.ndarray) -> Any:
        """NCHW float32 for images from torch (``torch`` layout), channels-last for TFLite; token ids as the
        exported graph takes them; flat features as they are. C-contiguous host memory."""
        if self.spec.tokens:
            return np.ascontiguousarray(x, dtype=np.int64 if self.layout == "torch" else np.int32)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4 and self.layout == "torch":
            return nhwc_to_nchw(x)
        return np.ascontiguousarray(x)

    def serve(self, payload: Any) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for any number of samples: the artifact's batch is static, so ``x`` is cut into batches of
        that size and the last one padded with zeros (their rows dropped)."""
        b = self.spec.batch_size
        if len(x) == b:
            return self.serve(self.host_input(x))
        out = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            pad = np.zeros((b - len(chunk), *chunk.shape[1:]), chunk.dtype)
            out.append(self.serve(self.host_input(np.concatenate([chunk, pad])))[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    # ------------------------------------------------------------------------------- the step protocol
    def put(self, batch: Batch) -> Any:
        x, y = batch
        return self.host_input(x), y

    def train_step(self, batch: Any) -> Any:
        raise CellSkipped(f"{self.job.runner} cannot train: it runs an exported model for inference only; "
                          "use --scenario latency|throughput|cold-start")

    def infer_step(self, batch: Any) -> Any:
        """One request, then its cross-entropy in NumPy (outside the runtime: a deployment returns logits)."""
        payload, y = batch
        return cross_entropy(self.serve(payload), y)

    def value(self, loss: Any) -> float:
        return float(loss)

    # ------------------------------------------------------------------------------- what is recorded
    def runtime_settings(self) -> dict[str, Any]:
        """The runtime's own fields of ``settings.runtime`` (its version, provider / device ...)."""
        return {}

    def settings(self) -> dict[str, Any]:
        """``{"runtime": {...}, "threads", "layout", "dtype", "precision"}``. ``runtime`` holds: ``runtime`` (name
        and version of what served), ``format``, ``exporter`` (what made the artifact, e.g. which ONNX exporter),
        ``export_s`` (the export alone; ``export_import_s``: the exporter's framework import before it),
        ``artifact_bytes``, ``artifact`` (file name), ``artifact_cached`` (false: this process's build exported
        it), ``exporter_versions``, ``static_batch``, ``provider``, then the runtime's own keys."""
        art = getattr(self, "artifact", None)
        meta = art.meta if art is not None else {}
        own = self.runtime_settings()
        runtime = {"runtime": own.pop("runtime", None), "format": self.fmt, "exporter": meta.get("exporter"),
                   "export_s": meta.get("export_s"), "export_import_s": meta.get("import_s"),
                   "artifact_bytes": meta.get("artifact_bytes"), "artifact": art.path.name if art is not None else None,
                   "artifact_cached": meta.get("cached"), "exporter_versions": meta.get("versions"),
                   "static_batch": getattr(getattr(self, "spec", None), "batch_size", None), **own}
        spec = getattr(self, "spec", None)
        layout = ("[batch, time] token ids" if spec is not None and spec.tokens
                  else "[batch, features]" if spec is not None and len(spec.input_shape) != 3
                  else "NCHW" if self.layout == "torch" else "NHWC")
        return {"runtime": runtime, "threads": getattr(self, "threads", self.options.threads), "layout": layout,
                "dtype": "float32", "precision": self.options.precision}
