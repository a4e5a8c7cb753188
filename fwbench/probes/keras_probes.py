"""Keras 3 probes (imported only in a probe worker): debugging through the high-level API.

The model is the ``keras`` runner's own functional ``keras.Model`` (its session builds and compiles it), and
the step is the one that runner times, ``train_on_batch``. Layers are looked up by node index through
``session.node_layer`` (in a functional model ``model.layers[0]`` is the ``InputLayer``, not node 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fwbench.probes import shapes
from fwbench.probes.context import ProbeContext


def debug_value(ctx: ProbeContext) -> dict[str, Any]:
    """Read the first layer's output as NumPy inside ``train_on_batch``.

    Keras compiles its train function (a ``tf.function`` on the tensorflow back end), so inside it the
    output is symbolic unless the model is compiled with ``run_eagerly=True``; the default is probed.
    """
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    import keras

    layer = session.node_layer(0)
    original = layer.call
    seen: list[float] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seen.append(float(np.mean(np.abs(keras.ops.convert_to_numpy(out)))))  # needs a concrete value
        return out

    layer.call = spy
    how = f"keras.ops.convert_to_numpy in {type(layer).__name__}.call during train_on_batch"
    try:
        loss = session.value(session.train_step(session.put(ctx.data.batch(0))))
    except Exception as exc:  # the finding: the compiled train function has no value to give
        tail = shapes.error_tail(shapes.clean(str(exc)))
        return {"concrete_value": False, "value": None, "how": how,
                "error": f"{type(exc).__name__}: {tail}", "alternative": "model.compile(run_eagerly=True)"}
    value = seen[0] if seen else None
    return {"concrete_value": value is not None and math.isfinite(value), "value": value, "loss": loss,
            "how": how, "error": None}


def shape_error(ctx: ProbeContext) -> dict[str, Any]:
    """``predict_on_batch`` on a wrongly shaped input: which layer and shapes does Keras's error name?"""
    session = ctx.session()
    session.build(ctx.spec, ctx.params)

    def names(index: int) -> tuple[list[str], list[str]]:
        layer = session.node_layer(index)
        return [type(layer).__name__], [layer.name]

    return shapes.shape_error(ctx.spec, ctx.inputs(), session.predict, names)
