"""``tflite``: the LiteRT (TFLite) interpreter serving the ``tf-graph`` network converted by ``TFLiteConverter``.

The interpreter is ``ai_edge_litert.interpreter.Interpreter`` where ``ai-edge-litert`` is installed (then
this worker never imports TensorFlow), else ``tf.lite.Interpreter``; which one ran is recorded. Images are
channels-last, token ids int32 (the exported signature's). Threads: ``num_threads`` = the cell's threads;
the default delegates (XNNPACK for float32 on CPU) are left as they are.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

import numpy as np

from fwbench.runners.runtime_base import InferenceSession


def interpreter_class() -> tuple[Any, str]:
    """LiteRT's interpreter where installed, else TensorFlow's, with the name that says which."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai_edge_litert.interpreter.Interpreter (ai-edge-litert {_version('ai-edge-litert')})"
    import tensorflow as tf

    return tf.lite.Interpreter, f"tf.lite.Interpreter (tensorflow {tf.__version__}; ai-edge-litert not installed)"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class TFLiteSession(InferenceSession):
    fmt = "tflite"
    layout = "tf"
    devices = ("cpu",)

    def setup_runtime(self) -> None:
        self.interpreter_cls, self.interpreter_name = interpreter_class()

    def load(self, path: Any) -> None:
        self.interp = self.interpreter_cls(model_path=str(path), num_threads=self.threads)
        self.interp.allocate_tensors()
        self.input_index = self.interp.get_input_details()[0]["index"]
        self.output_index = self.interp.get_output_details()[0]["index"]

    def serve(self, payload: Any) -> np.ndarray:
        self.interp.set_tensor(self.input_index, payload)
        self.interp.invoke()
        return self.interp.get_tensor(self.output_index)  # get_tensor copies out of the interpreter's buffer

    def runtime_settings(self) -> dict[str, Any]:
        name = getattr(self, "interpreter_name", "")
        litert = name.startswith("ai_edge")
        return {"runtime": f"ai-edge-litert {_version('ai-edge-litert')}" if litert
                else f"tensorflow {_version('tensorflow')} (tf.lite)",
                "interpreter": name, "num_threads": self.threads,
                "provider": "default delegates (XNNPACK for float32 on CPU)"}
