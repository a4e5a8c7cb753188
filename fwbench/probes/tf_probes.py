"""TensorFlow probes (imported only in a probe worker): debugging in eager and graph mode, shape errors,
and SavedModel / TFLite / tf2onnx export.

The network is the TensorFlow runners' own :class:`fwbench.runners.tf_runner.Net` (plain ``tf.Variable``
and ``tf.nn`` ops, the shared weights), built through the runner's session so the probed step is the
one that is timed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from fwbench.errors import CellSkipped
from fwbench.probes import shapes
from fwbench.probes.context import ProbeContext, export_findings, timed, version


def debug_value(ctx: ProbeContext) -> dict[str, Any]:
    """Read the first layer's output with ``.numpy()`` inside the training step.

    Eagerly the tensor holds a value; under ``tf.function`` the step is traced and the tensor is
    symbolic, so the same line fails; the error is the finding (``tf.print`` would print at run time,
    but gives the Python code no value).
    """
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    net = session.net
    original = net._layer
    seen: list[float] = []

    def spy(layer: Any, v: Any, x: Any, training: bool) -> Any:
        out = original(layer, v, x, training)
        if not seen:
            seen.append(float(np.mean(np.abs(out.numpy()))))  # needs a concrete value
        return out

    net._layer = spy  # instance attribute: Net.__call__ looks it up on every layer
    try:
        loss = session.value(session.train_step(session.put(ctx.data.batch(0))))
    except Exception as exc:  # the finding: graph mode has no value to give
        text = shapes.clean(str(exc))
        return {"concrete_value": False, "value": None, "error": f"{type(exc).__name__}: {shapes.error_tail(text)}",
                "how": "tensor.numpy() inside the training step", "alternative": "tf.print (prints at run time)"}
    value = seen[0] if seen else None
    return {"concrete_value": value is not None and math.isfinite(value), "value": value, "loss": loss,
            "how": "tensor.numpy() inside the training step", "error": None}


def shape_error(ctx: ProbeContext) -> dict[str, Any]:
    """Run the forward pass on a wrongly shaped input and read the error it raises; plain ``tf.nn`` ops have
    no layer objects, so only the op (``MatMul``) can be named."""
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    return shapes.shape_error(ctx.spec, ctx.inputs(), session.predict)


def _serving_module(ctx: ProbeContext) -> tuple[tf.Module, np.ndarray, np.ndarray]:
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    net = session.net
    module = tf.Module()
    module.net = net
    spec = tf.TensorSpec([None, *ctx.spec.input_shape], tf.float32, name="x")
    module.serve = tf.function(lambda x: net(x, training=False), input_signature=[spec])
    x = ctx.inputs()
    return module, x, module.serve(tf.constant(x)).numpy()


def _save(module: tf.Module, path: Any) -> None:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def export_savedmodel(ctx: ProbeContext) -> dict[str, Any]:
    """``tf.saved_model.save`` (a folder) → ``tf.saved_model.load`` → run its ``serve`` function."""
    module, x, ref = _serving_module(ctx)
    path = ctx.workdir / "savedmodel"
    _, export_s = timed(lambda: _save(module, path))
    loaded = tf.saved_model.load(str(path))  # keep a reference: its variables die with the object
    out = loaded.serve(tf.constant(x)).numpy()
    return export_findings("SavedModel", export_s, path, ref, out, runtime=f"tensorflow {tf.__version__}")


def export_tflite(ctx: ProbeContext) -> dict[str, Any]:
    """SavedModel → ``tf.lite.TFLiteConverter`` (.tflite) → ``tf.lite.Interpreter`` (its default delegates)."""
    module, x, ref = _serving_module(ctx)
    saved = ctx.workdir / "savedmodel"
    path = ctx.workdir / "model.tflite"

    def export() -> None:
        _save(module, saved)
        path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())

    _, export_s = timed(export)
    interpreter = tf.lite.Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return export_findings("TFLite", export_s, path, ref, out, runtime="tf.lite.Interpreter")


def export_tf2onnx(ctx: ProbeContext) -> dict[str, Any]:
    """``tf2onnx.convert.from_function`` → .onnx → ONNX Runtime (only where tf2onnx is installed)."""
    if version("tf2onnx") is None:
        raise CellSkipped("tf2onnx not installed (pip install tf2onnx)")
    import onnxruntime as ort
    import tf2onnx

    module, x, ref = _serving_module(ctx)
    path = ctx.workdir / "model.onnx"
    _, export_s = timed(lambda: tf2onnx.convert.from_function(
        module.serve, input_signature=module.serve.input_signature, output_path=str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return export_findings("tf2onnx", export_s, path, ref, out, runtime=f"onnxruntime {ort.__version__}")
