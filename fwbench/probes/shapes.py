"""The deliberate shape error of the ``shape-error`` probe, and how to read its message (framework-free).

The wrong input keeps every convolution and pooling valid but changes the size reaching the first dense
layer (images grow by 4 pixels each way; flat inputs by one feature), so the error is raised where a
real user meets it: inside the network, not at its input. A network that pools globally (ResNet,
MobileNet) takes any image size; there the images gain a channel, which its first convolution refuses. :func:`shape_error` is the probe itself; each
framework's probe module passes only its forward pass and the names its layers go by.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from fwbench.layers import Layer, parameter_shapes
from fwbench.workload_graph import input_shapes
from fwbench.workload_spec import WorkloadSpec, layer_input_shapes


def bad_input(spec: WorkloadSpec, x: np.ndarray) -> tuple[np.ndarray, str]:
    """A batch like ``x`` whose shape the network cannot take, and a description of the change.

    Images grow by 4 pixels each way, which a flatten carries to the first dense layer; a network that
    pools globally takes any image size, so there the images gain a channel instead, which the first
    convolution refuses. Flat inputs gain a feature.
    """
    if spec.tokens:  # a sequence model takes any length: exceed its position table, or its vocabulary
        table = next((l for l in spec.layers if l.kind == "position_embedding"), None)
        if table is not None:
            longer = np.pad(x, ((0, 0), (0, table.max_length + 1 - x.shape[1])))
            return longer, f"sequence {x.shape[1]} → {longer.shape[1]} tokens (position table {table.max_length})"
        bad = x.copy()
        bad[:, 0] = spec.vocabulary
        return bad, f"token id {spec.vocabulary} (vocabulary {spec.vocabulary})"
    if x.ndim == 4:
        grown = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        if mismatch(spec, grown.shape[1:])[1] is not None:
            return grown, f"image {x.shape[1]}x{x.shape[2]} → {grown.shape[1]}x{grown.shape[2]}"
        grown = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 1)))
        return grown, f"channels {x.shape[3]} → {grown.shape[3]}"
    grown = np.pad(x, ((0, 0), (0, 1)))
    return grown, f"features {x.shape[1]} → {grown.shape[1]}"


def mismatch(spec: WorkloadSpec, bad_shape: tuple[int, ...]) -> tuple[int, int | None, int | None]:
    """(the first node with weights whose input size differs, the size it expects, the size the bad input
    gives it); ``(last node, None, None)`` where every weighted node still fits. For token inputs: the
    position table (its length, the sequence's) or the embedding (its rows, the id + 1)."""
    if spec.tokens:
        for i, layer in enumerate(spec.layers):
            if layer.kind == "position_embedding":
                return i, layer.max_length, bad_shape[0]
        i = next(i for i, layer in enumerate(spec.layers) if layer.kind == "embedding")
        return i, spec.layers[i].input_dim, spec.vocabulary + 1
    good = layer_input_shapes(spec)
    try:
        bad = input_shapes(tuple(bad_shape), spec.layers)
    except ValueError:
        bad = []
    for i, layer in enumerate(spec.layers):
        if i < len(bad) and parameter_shapes(layer, good[i][0]) and good[i][0][-1] != bad[i][0][-1]:
            return i, good[i][0][-1], bad[i][0][-1]
    return len(spec.layers) - 1, None, None


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TF_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def clean(message: str) -> str:
    """An error message on one line, without terminal colour codes (Keras bolds its messages) or
    TensorFlow's ``{{function_node ...}}`` prefix naming its internal kernel."""
    return " ".join(TF_NODE.sub("", ANSI.sub("", message)).split())


def names_layer(message: str, layer: Layer, class_names: list[str], layer_names: tuple[str, ...] = ()) -> bool:
    """Does the message say *which layer* failed: its class (``Linear``, ``Dense``) or its name (``dense_1``)?"""
    words = [*class_names, *layer_names]
    return any(re.search(rf"\b{re.escape(w)}\b", message) for w in words if w)


def names_shapes(message: str, expected: int | None, got: int | None) -> bool:
    """Does the message give both the size the layer expects and the size it got?"""
    if expected is None or got is None:
        return False
    numbers = set(re.findall(r"\d+", message))
    return str(expected) in numbers and str(got) in numbers


def error_tail(message: str, limit: int = 200) -> str:
    """The error itself from a cleaned message: TensorFlow and Keras put the user's traceback ("in user code:
    File ...") first and the error last."""
    tail = message.split("Error: ")[-1] if "Error: " in message else message
    return tail[:limit]


def no_names(index: int) -> tuple[Sequence[str], Sequence[str]]:
    """Layers without objects of their own (plain ``tf.nn`` ops): an error can name only the op."""
    return (), ()


def shape_error(spec: WorkloadSpec, x: np.ndarray, forward: Callable[[np.ndarray], Any],
                names: Callable[[int], tuple[Sequence[str], Sequence[str]]] = no_names) -> dict[str, Any]:
    """Run ``forward`` on a wrongly shaped version of inputs ``x`` and read the error it raises.

    ``names(i)`` gives the class names (``Linear``, ``Dense``) and the instance names (``dense_1``) by which
    the framework's error could name layer ``i``; instance names are shown in ``offending_layer``.
    """
    bad, case = bad_input(spec, x)
    layer_index, expected, got = mismatch(spec, bad.shape[1:])
    try:
        forward(bad)
    except Exception as exc:  # the error under study
        message = clean(str(exc))
        layer = spec.layers[layer_index]
        classes, instances = names(layer_index)
        label = f"{layer_index}: {layer.kind}" + (f" ({', '.join(instances)})" if instances else "")
        return {"raised": True, "error_type": type(exc).__name__, "message": message[:500], "case": case,
                "offending_layer": label, "expected": expected, "got": got,
                "names_layer": names_layer(message, layer, list(classes), tuple(instances)),
                "names_shapes": names_shapes(message, expected, got)}
    return {"raised": False, "case": case, "names_layer": False, "names_shapes": False, "message": ""}
