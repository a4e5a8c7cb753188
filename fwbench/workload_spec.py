"""The workload schema: :class:`WorkloadSpec` and the one validator behind every way a spec is made.

A workload is *data only*: a parsed TOML document (or a plugin's mapping, or a spec stored in a results
file) is checked field by field; nothing in it is evaluated or imported. :func:`parse_workload` takes the
TOML form, :meth:`WorkloadSpec.from_dict` the stored form (``to_dict``); both apply the same rules and
raise :class:`WorkloadError` naming the field. Every runner builds the same network from a spec.

Conventions (shared by every runner):
- ``input_shape`` is channels-last ``[height, width, channels]`` (or ``[features]`` for an MLP);
- the last layer produces ``classes`` logits; softmax lives in the loss;
- ``padding`` follows Keras: ``valid`` (no padding) or ``same`` (output = ceil(input / stride));
- ``batchnorm.momentum`` follows Keras: ``moving = momentum * moving + (1 - momentum) * batch``
  (PyTorch's ``momentum`` is ``1 - momentum``); ``epsilon`` is added to the variance;
- ``dropout`` is active in training steps only; the parity check (see ``fwbench.parity``) runs with
  dropout removed so that every framework draws the same (no) mask;
- a ``[distributed]`` table (``workers = N``) makes the workload data-parallel: ``batch_size`` is then
  per rank, and the cell runs through :mod:`fwbench.distributed` (see ``docs/distributed.md``).
The reference of every key is ``docs/workloads.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from fwbench import limits
from fwbench.errors import WorkloadError
from fwbench.layers import (ACTIVATION_ALIASES, ACTIVATIONS, LAYER_FIELDS, MAX_DIM, NON_TRAINABLE, PADDINGS,  # noqa: F401
                            REQUIRED_KEYS, Layer, parameter_shapes)
from fwbench.workload_graph import NETWORK_INPUT, ShapeError, check_graph, expand, input_shapes, node_shapes

LOSSES = ("sparse_categorical_crossentropy",)
OPTIMIZERS = ("adam", "sgd")
MODES = ("train", "infer")
# What a cell measures (fwbench.scenarios): a workload's `scenario` key names its default.
SCENARIOS = ("train", "latency", "throughput", "cold-start")
DATA_SOURCES = ("synthetic", "digits", "markov", "recall")
TOKEN_SOURCES = ("markov", "recall")  # sources of token sequences (see fwbench.data)
DEFAULT_ALPHABET = 16
MAX_NAME = 80
MAX_DESCRIPTION = 2000
MAX_SOURCE = 4096
_POS = (lambda v: 1 <= v <= MAX_DIM, f"an integer from 1 to {MAX_DIM}")


@dataclass(frozen=True)
class Optimizer:
    """Optimizer and its hyper-parameters, set explicitly in every framework (defaults differ)."""

    name: str = "adam"
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    momentum: float = 0.0


@dataclass(frozen=True)
class Timing:
    """Step budget: warm-up steps, then adaptive timing between the min and max bounds."""

    warmup: int = 5
    min_steps: int = 20
    max_steps: int = 1000
    min_seconds: float = 1.0
    max_seconds: float = 15.0
    target_ci: float = 0.02


@dataclass(frozen=True)
class Target:
    """Time-to-target goal: train until held-out accuracy >= ``accuracy`` (or, for a source whose optimum
    is known exactly, held-out loss <= that optimum + ``excess_loss`` nats) or ``max_steps``."""

    accuracy: float | None = None
    max_steps: int = 2000
    eval_every: int = 25
    excess_loss: float | None = None

    @property
    def metric(self) -> str:
        return "loss" if self.excess_loss is not None else "accuracy"


@dataclass(frozen=True)
class Distributed:
    """Data-parallel training (``[distributed]`` table): ``workers`` ranks per node, each on ``batch_size``.

    ``batch_size`` stays the *per-worker* batch (weak scaling), so N workers train on a global batch of
    N x ``batch_size``; see ``docs/distributed.md``.
    """

    workers: int = 2


@dataclass(frozen=True)
class WorkloadSpec:
    """A validated, framework-neutral workload. Build one with ``fwbench.workload.load_workload``."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    classes: int
    layers: tuple[Layer, ...]
    batch_size: int
    seed: int = 0
    mode: str = "train"
    loss: str = "sparse_categorical_crossentropy"
    optimizer: Optimizer = field(default_factory=Optimizer)
    data: str = "synthetic"
    test_fraction: float = 0.25
    vocabulary: int | None = None
    alphabet: int | None = None
    timing: Timing = field(default_factory=Timing)
    parity_steps: int = 5
    parity_learning_rate: float | None = None
    target: Target | None = None
    distributed: Distributed | None = None
    scenario: str = "train"
    source: str = ""

    @property
    def tokens(self) -> bool:
        """Is the input a sequence of token ids (``vocabulary`` set) rather than float features?"""
        return self.vocabulary is not None

    @property
    def per_token(self) -> bool:
        """Does the network predict one label per position (a language model), ``[time, classes]`` logits?"""
        return len(layer_shapes(self.input_shape, self.layers)[-1]) == 2

    @property
    def label_shape(self) -> tuple[int, ...]:
        """The shape of one sample's labels: ``(time,)`` for a per-token model, else ``()``."""
        return (self.input_shape[0],) if self.per_token else ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as stored in results and sent to workers."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "stored workload") -> "WorkloadSpec":
        """Inverse of :meth:`to_dict`, validated by exactly the rules of a TOML file.

        ``d`` may come from an untrusted results file: anything the TOML loader would refuse is refused
        here with a :class:`WorkloadError` naming ``where`` and the stored field.
        """
        try:
            doc, source = _document_of_stored(d)
            spec = _parse(doc, source)
        except WorkloadError as exc:
            raise WorkloadError(_stored_field(exc.field), exc.message, where) from None
        return dataclasses.replace(spec, source=source)

    def for_parity(self) -> "WorkloadSpec":
        """The network the parity check trains: dropout removed, and the ``[parity] learning_rate`` if set."""
        spec = self.without_dropout()
        if self.parity_learning_rate is None:
            return spec
        return dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer,
                                                                        learning_rate=self.parity_learning_rate))

    def without_dropout(self) -> "WorkloadSpec":
        """The same network with every dropout rate set to 0 (used by the parity check)."""
        layers = tuple(dataclasses.replace(l, rate=0.0) if l.kind == "dropout" else l for l in self.layers)
        return dataclasses.replace(self, layers=layers)

    def with_timing(self, **overrides: Any) -> "WorkloadSpec":
        return dataclasses.replace(self, timing=dataclasses.replace(self.timing, **overrides))


# ----------------------------------------------------------------------------------- shapes and sizes
def layer_shapes(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> list[tuple[int, ...]]:
    """Output shape (without batch) of every node; raises ``ValueError`` naming the node that does not fit."""
    return node_shapes(tuple(input_shape), layers)


def layer_input_shapes(spec: "WorkloadSpec") -> list[list[tuple[int, ...]]]:
    """The shapes every node of ``spec`` reads, in the order of its ``inputs``."""
    return input_shapes(tuple(spec.input_shape), spec.layers)


def parameter_count(spec_or_shape: Any, layers: tuple[Layer, ...] | None = None) -> int:
    """Number of trainable parameters (batch-norm scale and offset included, moving statistics not)."""
    input_shape = spec_or_shape.input_shape if layers is None else spec_or_shape
    layers = spec_or_shape.layers if layers is None else layers
    total = 0
    for layer, ins in zip(layers, input_shapes(tuple(input_shape), layers)):
        for name, shape in parameter_shapes(layer, ins[0]).items():
            if name not in NON_TRAINABLE:
                total += math.prod(shape)
    return total


def activation_count(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> int:
    """Values per sample held by a training step's forward pass: the input, every node's output, and the
    ``[heads, time, time]`` attention weights of each attention node."""
    shapes = layer_shapes(input_shape, layers)
    attention = sum(l.heads * s[0] * s[0] for l, s in zip(layers, shapes) if l.kind == "multi_head_attention")
    return sum(math.prod(s) for s in [tuple(input_shape), *shapes]) + attention


# --------------------------------------------------------------------------------------------- parsing
_TOP_KEYS = {"name", "description", "mode", "scenario", "input_shape", "vocabulary", "classes", "batch_size", "seed", "loss",
             "optimizer", "data", "timing", "parity", "target", "distributed", "layers", "blocks"}
_NAME = (lambda v: 0 < len(v) <= MAX_NAME and v.isprintable(), f"a printable string of 1-{MAX_NAME} characters")
_DESCRIPTION = (lambda v: len(v) <= MAX_DESCRIPTION and v.isprintable(),
                f"a printable one-line string of at most {MAX_DESCRIPTION} characters (no control characters)")


def _key(k: Any) -> str:
    """A user's key as an error message shows it: bare when plain, else quoted as TOML would (one line, no escapes)."""
    return k if isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,60}", k) else json.dumps(str(k)[:60])


def _shown(value: Any) -> str:
    """A user's value as an error message shows it: ``repr``, cut to one short line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check(value: Any, typ: type, ok: Any, allowed: str, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise WorkloadError(where, f"must be {allowed}, got {_shown(value)} ({type(value).__name__})")
    if typ is float and not math.isfinite(value):
        raise WorkloadError(where, f"must be {allowed}, got {value!r}")
    if not ok(value):
        raise WorkloadError(where, f"must be {allowed}, got {_shown(value)}")
    return value


def _table(doc: Mapping[str, Any], key: str, fields: dict[str, tuple[type, Any, str]], where: str) -> dict:
    raw = doc.get(key, {})
    if not isinstance(raw, Mapping):
        raise WorkloadError(where, f"must be a table, got {type(raw).__name__}")
    out = {}
    for k, v in raw.items():
        if k not in fields:
            raise WorkloadError(f"{where}.{_key(k)}", f"unknown key; allowed: {', '.join(fields) or 'none'}")
        out[k] = _check(v, *fields[k], f"{where}.{k}")
    return out


def _parse_layer(where: str, raw: Mapping[str, Any]) -> Layer:
    """One expanded node table (see :func:`fwbench.workload_graph.expand`: ``name`` and ``inputs`` are final)."""
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in LAYER_FIELDS:
        raise WorkloadError(f"{where}.type", f"unknown layer {_shown(kind)}; allowed: {', '.join(LAYER_FIELDS)}"
                                             " (or block, to insert a [blocks.NAME])")
    fields = LAYER_FIELDS[kind]
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if k in ("type", "name", "inputs"):
            continue
        if k not in fields:
            raise WorkloadError(f"{where}.{_key(k)}",
                                f"unknown key for {kind}; allowed: {', '.join(['type', 'name', 'inputs', *fields])}")
        if k == "pad":
            v = [v] * 4 if isinstance(v, int) and not isinstance(v, bool) else v
            if not isinstance(v, (list, tuple)) or len(v) != 4:
                raise WorkloadError(f"{where}.pad", f"must be an integer or [top, bottom, left, right], got {_shown(v)}")
            v = tuple(_check(p, int, lambda x: 0 <= x <= MAX_DIM, f"an integer from 0 to {MAX_DIM}", f"{where}.pad")
                      for p in v)
        if k == "activation" and isinstance(v, str) and v in ACTIVATION_ALIASES:
            v = ACTIVATION_ALIASES[v]
        values[k] = v if k == "pad" else _check(v, *fields[k], f"{where}.{k}")
    for k in REQUIRED_KEYS.get(kind, ()):
        if k not in values:
            raise WorkloadError(f"{where}.{k}", f"missing; {kind} needs {', '.join(REQUIRED_KEYS[kind])}")
    if kind in ("maxpool2d", "avgpool2d") and "strides" not in values:
        values["strides"] = values["pool_size"]  # Keras and PyTorch both default stride = pool size
    return Layer(kind=kind, name=raw["name"], inputs=tuple(raw["inputs"]), **values)


def parse_workload(doc: Any, source: str = "<workload>", default_name: str | None = None) -> WorkloadSpec:
    """Validate a parsed TOML document (or a plugin's mapping). Raises :class:`WorkloadError`.

    ``default_name`` is the name when the document has no ``name`` key (a file's stem, a plugin's entry
    point name); without it ``name`` is required.
    """
    if not isinstance(doc, Mapping):
        raise WorkloadError("", f"must be a table of workload fields, got {type(doc).__name__}").in_file(source)
    try:
        return _parse(doc, source, default_name)
    except WorkloadError as exc:
        raise exc.in_file(source) from None


def _parse(doc: Mapping[str, Any], source: str, default_name: str | None = None) -> WorkloadSpec:
    for k in doc:
        if k not in _TOP_KEYS:
            raise WorkloadError(_key(k), f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for k in ("name", "input_shape", "classes", "batch_size", "layers"):
        if k not in doc and not (k == "name" and default_name is not None):
            raise WorkloadError(k, "missing (required)")
    name = _check(doc.get("name", default_name), str, *_NAME, "name")
    description = _check(doc.get("description", ""), str, *_DESCRIPTION, "description")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise WorkloadError("input_shape", f"must be [height, width, channels] or [features], got {_shown(shape)}")
    shape = tuple(_check(v, int, *_POS, f"input_shape[{i}]") for i, v in enumerate(shape))
    classes = _check(doc["classes"], int, lambda v: 2 <= v <= 1_000_000, "an integer from 2 to 1000000", "classes")
    batch = _check(doc["batch_size"], int, lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000", "batch_size")
    seed = _check(doc.get("seed", 0), int, lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32-1", "seed")
    mode = _check(doc.get("mode", "train"), str, lambda v: v in MODES, f"one of {', '.join(MODES)}", "mode")
    scenario = _check(doc.get("scenario", "train"), str, lambda v: v in SCENARIOS,
                      f"one of {', '.join(SCENARIOS)}", "scenario")
    loss = _check(doc.get("loss", LOSSES[0]), str, lambda v: v in LOSSES, f"one of {', '.join(LOSSES)}", "loss")
    vocabulary = doc.get("vocabulary")
    if vocabulary is not None:
        vocabulary = _check(vocabulary, int, lambda v: 2 <= v <= MAX_DIM, f"an integer from 2 to {MAX_DIM}",
                            "vocabulary")
        if len(shape) != 1:
            raise WorkloadError("input_shape", f"a token input (vocabulary = {vocabulary}) is [time], got {list(shape)}")
    nodes = expand(doc["layers"], doc.get("blocks", {}))
    layers = tuple(_parse_layer(where, raw) for where, raw in nodes)
    wheres = [where for where, _ in nodes]
    check_graph(layers, wheres)
    _check_tokens(layers, wheres, vocabulary)

    opt = _table(doc, "optimizer", {
        "name": (str, lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        "learning_rate": (float, lambda v: 0 < v < 10, "a number in (0, 10)"),
        "beta_1": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "beta_2": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "epsilon": (float, lambda v: 0 < v < 1, "a number in (0, 1)"),
        "momentum": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    }, "optimizer")
    data = _table(doc, "data", {
        "source": (str, lambda v: v in DATA_SOURCES, f"one of {', '.join(DATA_SOURCES)}"),
        "test_fraction": (float, lambda v: 0 < v < 1, "a number in (0, 1)"),
        "alphabet": (int, lambda v: 2 <= v <= MAX_DIM, f"an integer from 2 to {MAX_DIM}"),
    }, "data")
    timing = _table(doc, "timing", {
        "warmup": (int, lambda v: 1 <= v <= 10_000, "an integer from 1 to 10000"),
        "min_steps": (int, lambda v: 3 <= v <= 1_000_000, "an integer from 3 to 1000000"),
        "max_steps": (int, lambda v: 3 <= v <= 10_000_000, "an integer from 3 to 10000000"),
        "min_seconds": (float, lambda v: 0 <= v <= 86_400, "a number of seconds from 0 to 86400"),
        "max_seconds": (float, lambda v: 0 < v <= 86_400, "a number of seconds in (0, 86400]"),
        "target_ci": (float, lambda v: 0 < v < 1, "a relative half-width in (0, 1), e.g. 0.02"),
    }, "timing")
    parity = _table(doc, "parity", {"steps": (int, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000"),
                                    "learning_rate": (float, lambda v: 0 < v < 10, "a number in (0, 10)")}, "parity")
    target = _table(doc, "target", {
        "accuracy": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "max_steps": (int, lambda v: 1 <= v <= 10_000_000, "an integer from 1 to 10000000"),
        "eval_every": (int, lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000"),
        "excess_loss": (float, lambda v: 0 < v < 10, "a number of nats in (0, 10)"),
    }, "target")
    most = limits.max_workers()
    dist = _table(doc, "distributed", {
        "workers": (int, lambda v: 1 <= v <= most,
                    f"an integer from 1 to {most} ({limits.WORKERS_PER_CORE} per core of this machine, at most "
                    f"{limits.MAX_WORKERS}; ${limits.WORKERS_ENV} sets another bound)"),
    }, "distributed")
    if target and ("accuracy" in target) == ("excess_loss" in target):
        raise WorkloadError("target.accuracy", "a [target] table needs exactly one of accuracy and excess_loss")
    t = Timing(**timing)
    if t.max_steps < t.min_steps:
        raise WorkloadError("timing.max_steps", f"must be >= timing.min_steps ({t.min_steps}), got {t.max_steps}")
    if data.get("source") == "digits" and vocabulary is not None:
        raise WorkloadError("data.source", "the digits data set holds images, not token sequences")
    if data.get("source") == "digits" and (shape != (8, 8, 1) and shape != (64,) or classes != 10):
        raise WorkloadError("input_shape", "the digits data set has 8x8x1 images (or 64 features) and 10 classes")

    try:
        shapes = node_shapes(shape, layers)
    except ShapeError as exc:
        node = layers[exc.index]
        named = "" if node.name.startswith("#") else f"{node.name!r}: "
        raise WorkloadError(wheres[exc.index], f"{named}{exc.detail}") from None
    per_token = vocabulary is not None and shapes[-1] == (shape[0], classes)
    if shapes[-1] != (classes,) and not per_token:
        also = f" or [{shape[0]}, {classes}] (one prediction per token)" if vocabulary is not None else ""
        raise WorkloadError(wheres[-1], f"the last layer must output {classes} logits (classes){also}, "
                                      f"got shape {list(shapes[-1])}")
    alphabet = _check_source(data, vocabulary, classes, per_token, target)
    _check_memory(shape, layers, batch)
    return WorkloadSpec(
        name=name, description=description, input_shape=shape, classes=classes, layers=layers,
        batch_size=batch, seed=seed, mode=mode, loss=loss, optimizer=Optimizer(**opt),
        data=data.get("source", "synthetic"), test_fraction=data.get("test_fraction", 0.25),
        vocabulary=vocabulary, alphabet=alphabet, timing=t,
        parity_steps=parity.get("steps", 5), parity_learning_rate=parity.get("learning_rate"), target=Target(**target) if target else None,
        distributed=Distributed(**dist) if "distributed" in doc else None, scenario=scenario, source=source,
    )


def _check_tokens(layers: tuple[Layer, ...], wheres: list[str], vocabulary: int | None) -> None:
    """Token ids are read by embeddings only, and an embedding reads only token ids it can look up."""
    for layer, where in zip(layers, wheres):
        reads_input = NETWORK_INPUT in layer.inputs
        if layer.kind == "embedding":
            if vocabulary is None:
                raise WorkloadError(where, "an embedding reads token ids: set vocabulary = N (the input is then "
                                           "[time] token ids)")
            if layer.inputs != (NETWORK_INPUT,):
                raise WorkloadError(f"{where}.inputs", "an embedding reads the token input only")
            if layer.input_dim < vocabulary:
                raise WorkloadError(f"{where}.input_dim", f"must cover the vocabulary ({vocabulary}), got "
                                                          f"{layer.input_dim}")
        elif reads_input and vocabulary is not None:
            raise WorkloadError(where, f"{layer.kind} reads the input, which holds token ids; only an embedding "
                                       "can read them")


def _check_source(data: dict[str, Any], vocabulary: int | None, classes: int, per_token: bool,
                  target: dict[str, Any]) -> int | None:
    """The data source produces what the network reads and predicts; a loss target needs a known optimum.

    Returns the alphabet of a token source (``data.alphabet``, by default the first 16 ids or the whole
    vocabulary if smaller), ``None`` for the other sources."""
    source = data.get("source", "synthetic")
    alphabet = None
    if source in TOKEN_SOURCES:
        alphabet = data.get("alphabet", min(DEFAULT_ALPHABET, vocabulary or DEFAULT_ALPHABET))
        if vocabulary is None:
            raise WorkloadError("data.source", f"{source} produces token sequences; set vocabulary = N")
        if alphabet > vocabulary:
            raise WorkloadError("data.alphabet", f"must be at most the vocabulary ({vocabulary}), got {alphabet}")
        if source == "markov" and (not per_token or classes != vocabulary):
            raise WorkloadError("data.source", "markov is next-token prediction: the last layer outputs "
                                               "[time, vocabulary] logits and classes = vocabulary")
        if source == "recall" and (per_token or alphabet <= classes):
            raise WorkloadError("data.source", "recall labels a whole sequence: the last layer outputs [classes] "
                                               "logits, and data.alphabet must exceed classes (the noise tokens)")
    elif "alphabet" in data:
        raise WorkloadError("data.alphabet", f"is a setting of the token sources ({', '.join(TOKEN_SOURCES)})")
    if "excess_loss" in target and source != "markov":
        raise WorkloadError("target.excess_loss", "needs a source whose optimal loss is known exactly (markov); "
                                                  "use accuracy")
    return alphabet


def _check_memory(shape: tuple[int, ...], layers: tuple[Layer, ...], batch: int) -> None:
    """Bound the totals, not only each layer: the parameters, and every activation of one batch."""
    n_params = parameter_count(shape, layers)
    param_bytes, most = n_params * limits.BYTES_PER_VALUE, limits.max_parameter_bytes()
    if param_bytes > most:
        raise WorkloadError("layers", f"{n_params:,} parameters need {limits.gib(param_bytes)} in fp32, more than "
                                      f"the {limits.gib(most)} allowed (${limits.PARAMETER_GIB_ENV} sets another "
                                      "bound)")
    per_sample = activation_count(shape, layers)
    act_bytes, most = per_sample * batch * limits.BYTES_PER_VALUE, limits.max_activation_bytes()
    if act_bytes > most:
        raise WorkloadError("batch_size", f"the activations of one batch total {limits.gib(act_bytes)} in fp32 "
                                          f"({batch} x {per_sample:,} values over the input and {len(layers)} "
                                          f"layers), more than the {limits.gib(most)} allowed; lower batch_size "
                                          f"or the layer sizes (${limits.ACTIVATION_GIB_ENV} sets another bound)")


# ------------------------------------------------------------------------- stored form -> TOML form
_STORED_KEYS = tuple(f.name for f in dataclasses.fields(WorkloadSpec))
_LAYER_KEYS = tuple(f.name for f in dataclasses.fields(Layer))
_LAYER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Layer) if f.name != "kind"}
# TOML field -> the stored field it came from, for error messages about a stored spec
_STORED_NAMES = {"data.source": "data", "data.test_fraction": "test_fraction", "data.alphabet": "alphabet",
                 "parity.steps": "parity_steps",
                 "parity.learning_rate": "parity_learning_rate"}


def _stored_field(toml_field: str) -> str:
    field_ = _STORED_NAMES.get(toml_field, toml_field)
    return re.sub(r"^(layers\[\d+\])\.type$", r"\1.kind", field_)


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == default
    if isinstance(default, bool):
        return value is default
    if isinstance(value, bool) or type(value) not in (int, float, str):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float)) and value == default
    return type(value) is type(default) and value == default


def _document_of_stored(d: Any) -> tuple[dict[str, Any], str]:
    """The TOML document a stored spec (``to_dict`` form) stands for, and its ``source``.

    Only the change of form happens here; every check is :func:`_parse`'s, so that a stored spec and a
    file are held to the same rules. A field a layer's kind does not use must hold its default.
    """
    if not isinstance(d, Mapping):
        raise WorkloadError("", f"must be a table of workload fields, got {type(d).__name__}")
    for k in d:
        if k not in _STORED_KEYS:
            raise WorkloadError(_key(k), f"unknown key; allowed: {', '.join(_STORED_KEYS)}")
    source = _check(d.get("source", ""), str, lambda v: len(v) <= MAX_SOURCE and v.isprintable(),
                    f"a printable string of at most {MAX_SOURCE} characters", "source")
    doc = {k: d[k] for k in ("name", "description", "classes", "batch_size", "seed", "mode", "scenario", "loss",
                             "optimizer", "timing") if k in d}
    if d.get("vocabulary") is not None:
        doc["vocabulary"] = d["vocabulary"]
    for k in ("input_shape", "layers"):
        if k in d:
            doc[k] = list(d[k]) if isinstance(d[k], (list, tuple)) else d[k]
    if "data" in d or "test_fraction" in d:
        doc["data"] = {k: d[s] for k, s in (("source", "data"), ("test_fraction", "test_fraction")) if s in d}
    if d.get("alphabet") is not None:
        doc.setdefault("data", {})["alphabet"] = d["alphabet"]
    if "parity_steps" in d:
        doc["parity"] = {"steps": d["parity_steps"]}
    if d.get("parity_learning_rate") is not None:
        doc.setdefault("parity", {})["learning_rate"] = d["parity_learning_rate"]
    for k in ("target", "distributed"):
        if d.get(k) is not None:  # a stored target holds None for the goal it does not set
            doc[k] = {kk: vv for kk, vv in d[k].items() if vv is not None} if isinstance(d[k], Mapping) else d[k]
    if isinstance(doc.get("layers"), list):
        doc["layers"] = [_layer_document(i, raw) for i, raw in enumerate(doc["layers"])]
    return doc, source


def _not_given(key: str, value: Any) -> bool:
    """A stored layer's empty ``name`` (``""``) or ``inputs`` (``[]``): the TOML form leaves the key out."""
    return value == "" if key == "name" else isinstance(value, (list, tuple)) and not value


def _layer_document(i: int, raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw  # refused by the parser, as in a file
    where = f"layers[{i}]"
    for k in raw:
        if k not in _LAYER_KEYS:
            raise WorkloadError(f"{where}.{_key(k)}", f"unknown key; allowed: {', '.join(_LAYER_KEYS)}")
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in LAYER_FIELDS:
        raise WorkloadError(f"{where}.kind", f"unknown layer {_shown(kind)}; allowed: {', '.join(LAYER_FIELDS)}")
    out = {"type": kind}
    for k, v in raw.items():
        if k in LAYER_FIELDS[kind] or (k in ("name", "inputs") and not _not_given(k, v)):
            out[k] = v
        elif k not in ("kind", "name", "inputs") and not _is_default(v, _LAYER_DEFAULTS[k]):
            raise WorkloadError(f"{where}.{k}", f"is not used by {kind}; must be {_LAYER_DEFAULTS[k]!r}, "
                                                f"got {_shown(v)}")
    return out
