"""Workload definitions: framework-neutral, validated data loaded from TOML files.

A workload file is *data only*: it is parsed with ``tomllib`` and checked field by field; nothing in it
is evaluated or imported. Every runner builds the same network from the resulting :class:`WorkloadSpec`.

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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from fwbench.errors import WorkloadError

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
LOSSES = ("sparse_categorical_crossentropy",)
OPTIMIZERS = ("adam", "sgd")
MODES = ("train", "infer")
DATA_SOURCES = ("synthetic", "digits")
PADDINGS = ("valid", "same")
MAX_DIM = 8192
MAX_PARAMS = 2_000_000_000
MAX_ACTIVATIONS = 4_000_000_000  # elements of the largest activation times the batch: 16 GB in fp32


@dataclass(frozen=True)
class Layer:
    """One layer of the network. ``kind`` is one of :data:`LAYER_FIELDS`; unused fields keep defaults."""

    kind: str
    filters: int = 0
    units: int = 0
    kernel_size: int = 0
    pool_size: int = 0
    strides: int = 1
    padding: str = "valid"
    activation: str = "linear"
    rate: float = 0.0
    momentum: float = 0.99
    epsilon: float = 1e-3


# Per layer kind: allowed keys -> (type, check, what is allowed).
_POS = (lambda v: 1 <= v <= MAX_DIM, f"an integer from 1 to {MAX_DIM}")
_ACT = (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
_PAD = (lambda v: v in PADDINGS, f"one of {', '.join(PADDINGS)}")
LAYER_FIELDS: dict[str, dict[str, tuple[type, Any, str]]] = {
    "conv2d": {"filters": (int, *_POS), "kernel_size": (int, *_POS), "strides": (int, *_POS),
               "padding": (str, *_PAD), "activation": (str, *_ACT)},
    "maxpool2d": {"pool_size": (int, *_POS), "strides": (int, *_POS), "padding": (str, *_PAD)},
    "flatten": {},
    "dense": {"units": (int, *_POS), "activation": (str, *_ACT)},
    "dropout": {"rate": (float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")},
    "batchnorm": {"momentum": (float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"),
                  "epsilon": (float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")},
    "activation": {"activation": (str, *_ACT)},
}
_REQUIRED_LAYER_KEYS = {"conv2d": ("filters", "kernel_size"), "maxpool2d": ("pool_size",),
                        "dense": ("units",)}


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
    """Time-to-accuracy goal: train until held-out accuracy >= ``accuracy`` or ``max_steps``."""

    accuracy: float
    max_steps: int = 2000
    eval_every: int = 25


@dataclass(frozen=True)
class Distributed:
    """Data-parallel training (``[distributed]`` table): ``workers`` ranks per node, each on ``batch_size``.

    ``batch_size`` stays the *per-worker* batch (weak scaling), so N workers train on a global batch of
    N x ``batch_size``; see ``docs/distributed.md``.
    """

    workers: int = 2


@dataclass(frozen=True)
class WorkloadSpec:
    """A validated, framework-neutral workload. Build one with :func:`load_workload`."""

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
    timing: Timing = field(default_factory=Timing)
    parity_steps: int = 5
    target: Target | None = None
    distributed: Distributed | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as stored in results and sent to workers."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WorkloadSpec":
        """Inverse of :meth:`to_dict` (for already-validated data)."""
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["layers"] = tuple(Layer(**layer) for layer in d["layers"])
        d["optimizer"] = Optimizer(**d["optimizer"])
        d["timing"] = Timing(**d["timing"])
        d["target"] = Target(**d["target"]) if d.get("target") else None
        d["distributed"] = Distributed(**d["distributed"]) if d.get("distributed") else None
        return cls(**d)

    def without_dropout(self) -> "WorkloadSpec":
        """The same network with every dropout rate set to 0 (used by the parity check)."""
        layers = tuple(dataclasses.replace(l, rate=0.0) if l.kind == "dropout" else l for l in self.layers)
        return dataclasses.replace(self, layers=layers)

    def with_timing(self, **overrides: Any) -> "WorkloadSpec":
        return dataclasses.replace(self, timing=dataclasses.replace(self.timing, **overrides))


def layer_shapes(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> list[tuple[int, ...]]:
    """Output shape (without batch) of every layer; raises ``ValueError`` naming the layer that does not fit."""
    shape = tuple(input_shape)
    out = []
    for i, layer in enumerate(layers):
        where = f"layers[{i}] ({layer.kind})"
        if layer.kind in ("conv2d", "maxpool2d"):
            if len(shape) != 3:
                raise ValueError(f"{where}: needs an input of shape [height, width, channels], got {list(shape)}")
            k = layer.kernel_size if layer.kind == "conv2d" else layer.pool_size
            s = layer.strides
            h, w, c = shape
            if layer.padding == "same":
                oh, ow = math.ceil(h / s), math.ceil(w / s)
            else:
                if k > h or k > w:
                    raise ValueError(f"{where}: window {k}x{k} is larger than its input {h}x{w}")
                oh, ow = (h - k) // s + 1, (w - k) // s + 1
            shape = (oh, ow, layer.filters if layer.kind == "conv2d" else c)
        elif layer.kind == "flatten":
            shape = (math.prod(shape),)
        elif layer.kind == "dense":
            if len(shape) != 1:
                raise ValueError(f"{where}: needs a flat input; add a flatten layer before it (input {list(shape)})")
            shape = (layer.units,)
        out.append(shape)
    return out


def parameter_count(spec_or_shape: Any, layers: tuple[Layer, ...] | None = None) -> int:
    """Number of trainable parameters (batch-norm scale and offset included)."""
    input_shape = spec_or_shape.input_shape if layers is None else spec_or_shape
    layers = spec_or_shape.layers if layers is None else layers
    total, shape = 0, tuple(input_shape)
    for layer, out in zip(layers, layer_shapes(input_shape, layers)):
        if layer.kind == "conv2d":
            total += layer.kernel_size ** 2 * shape[-1] * layer.filters + layer.filters
        elif layer.kind == "dense":
            total += shape[-1] * layer.units + layer.units
        elif layer.kind == "batchnorm":
            total += 2 * shape[-1]
        shape = out
    return total


# --------------------------------------------------------------------------------------------- parsing
_TOP_KEYS = {"name", "description", "mode", "input_shape", "classes", "batch_size", "seed", "loss",
             "optimizer", "data", "timing", "parity", "target", "distributed", "layers"}


def _key(k: Any) -> str:
    """A user's key as an error message shows it: bare when plain, else quoted as TOML would (one line, no escapes)."""
    return k if isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,60}", k) else json.dumps(str(k)[:60])


def _check(value: Any, typ: type, ok: Any, allowed: str, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise WorkloadError(where, f"must be {allowed}, got {value!r} ({type(value).__name__})")
    if typ is float and not math.isfinite(value):
        raise WorkloadError(where, f"must be {allowed}, got {value!r}")
    if not ok(value):
        raise WorkloadError(where, f"must be {allowed}, got {value!r}")
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


def _parse_layer(i: int, raw: Any) -> Layer:
    where = f"layers[{i}]"
    if not isinstance(raw, Mapping):
        raise WorkloadError(where, "must be a table such as { type = \"dense\", units = 64 }")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in LAYER_FIELDS:
        raise WorkloadError(f"{where}.type", f"unknown layer {kind!r}; allowed: {', '.join(LAYER_FIELDS)}")
    fields = LAYER_FIELDS[kind]
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "type":
            continue
        if k not in fields:
            raise WorkloadError(f"{where}.{_key(k)}", f"unknown key for {kind}; allowed: {', '.join(['type', *fields])}")
        values[k] = _check(v, *fields[k], f"{where}.{k}")
    for k in _REQUIRED_LAYER_KEYS.get(kind, ()):
        if k not in values:
            raise WorkloadError(f"{where}.{k}", f"missing; {kind} needs {', '.join(_REQUIRED_LAYER_KEYS[kind])}")
    if kind == "maxpool2d" and "strides" not in values:
        values["strides"] = values["pool_size"]  # Keras and PyTorch both default stride = pool size
    return Layer(kind=kind, **values)


def parse_workload(doc: Mapping[str, Any], source: str = "<workload>") -> WorkloadSpec:
    """Validate a parsed TOML document (or a plugin's mapping). Raises :class:`WorkloadError`."""
    if not isinstance(doc, Mapping):
        raise WorkloadError("", f"must be a table of workload fields, got {type(doc).__name__}").in_file(source)
    try:
        return _parse(doc, source)
    except WorkloadError as exc:
        raise exc.in_file(source) from None


def _parse(doc: Mapping[str, Any], source: str) -> WorkloadSpec:
    for k in doc:
        if k not in _TOP_KEYS:
            raise WorkloadError(_key(k), f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for k in ("name", "input_shape", "classes", "batch_size", "layers"):
        if k not in doc:
            raise WorkloadError(k, "missing (required)")
    name = _check(doc["name"], str, lambda v: 0 < len(v) <= 80 and v.isprintable(), "a printable string of 1-80 characters", "name")
    description = _check(doc.get("description", ""), str, lambda v: len(v) <= 2000, "a string of at most 2000 characters", "description")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise WorkloadError("input_shape", f"must be [height, width, channels] or [features], got {shape!r}")
    shape = tuple(_check(v, int, *_POS, f"input_shape[{i}]") for i, v in enumerate(shape))
    classes = _check(doc["classes"], int, lambda v: 2 <= v <= 1_000_000, "an integer from 2 to 1000000", "classes")
    batch = _check(doc["batch_size"], int, lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000", "batch_size")
    seed = _check(doc.get("seed", 0), int, lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32-1", "seed")
    mode = _check(doc.get("mode", "train"), str, lambda v: v in MODES, f"one of {', '.join(MODES)}", "mode")
    loss = _check(doc.get("loss", LOSSES[0]), str, lambda v: v in LOSSES, f"one of {', '.join(LOSSES)}", "loss")
    if not isinstance(doc["layers"], list) or not doc["layers"]:
        raise WorkloadError("layers", "must be a non-empty array of tables ([[layers]] entries)")
    layers = tuple(_parse_layer(i, raw) for i, raw in enumerate(doc["layers"]))

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
    }, "data")
    timing = _table(doc, "timing", {
        "warmup": (int, lambda v: 1 <= v <= 10_000, "an integer from 1 to 10000"),
        "min_steps": (int, lambda v: 3 <= v <= 1_000_000, "an integer from 3 to 1000000"),
        "max_steps": (int, lambda v: 3 <= v <= 1_000_000, "an integer from 3 to 1000000"),
        "min_seconds": (float, lambda v: 0 <= v <= 86_400, "a number of seconds from 0 to 86400"),
        "max_seconds": (float, lambda v: 0 < v <= 86_400, "a number of seconds in (0, 86400]"),
        "target_ci": (float, lambda v: 0 < v < 1, "a relative half-width in (0, 1), e.g. 0.02"),
    }, "timing")
    parity = _table(doc, "parity", {"steps": (int, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000")}, "parity")
    target = _table(doc, "target", {
        "accuracy": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "max_steps": (int, lambda v: 1 <= v <= 10_000_000, "an integer from 1 to 10000000"),
        "eval_every": (int, lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000"),
    }, "target")
    dist = _table(doc, "distributed", {
        "workers": (int, lambda v: 1 <= v <= 1024, "an integer from 1 to 1024"),
    }, "distributed")
    if target and "accuracy" not in target:
        raise WorkloadError("target.accuracy", "missing; a [target] table needs accuracy")
    t = Timing(**timing)
    if t.max_steps < t.min_steps:
        raise WorkloadError("timing.max_steps", f"must be >= timing.min_steps ({t.min_steps}), got {t.max_steps}")
    if data.get("source") == "digits" and (shape != (8, 8, 1) and shape != (64,) or classes != 10):
        raise WorkloadError("input_shape", "the digits data set has 8x8x1 images (or 64 features) and 10 classes")

    try:
        shapes = layer_shapes(shape, layers)
    except ValueError as exc:
        raise WorkloadError("layers", str(exc)) from None
    if shapes[-1] != (classes,):
        raise WorkloadError("layers", f"the last layer must output {classes} logits (classes), got shape {list(shapes[-1])}")
    n_params = parameter_count(shape, layers)
    if n_params > MAX_PARAMS:
        raise WorkloadError("layers", f"{n_params:,} parameters is more than the {MAX_PARAMS:,} allowed")
    largest = max(math.prod(s) for s in [shape, *shapes])
    if largest * batch > MAX_ACTIVATIONS:
        raise WorkloadError("batch_size", f"{batch} x {largest:,} activations of the largest layer is more than "
                                          f"the {MAX_ACTIVATIONS:,} allowed; lower batch_size or input_shape")
    return WorkloadSpec(
        name=name, description=description, input_shape=shape, classes=classes, layers=layers,
        batch_size=batch, seed=seed, mode=mode, loss=loss, optimizer=Optimizer(**opt),
        data=data.get("source", "synthetic"), test_fraction=data.get("test_fraction", 0.25), timing=t,
        parity_steps=parity.get("steps", 5), target=Target(**target) if target else None,
        distributed=Distributed(**dist) if "distributed" in doc else None, source=source,
    )


# --------------------------------------------------------------------------------------------- finding
def workload_dirs() -> list[Path]:
    """Where workloads are found by name: ``$FWBENCH_WORKLOADS`` (os.pathsep-separated), ./workloads, the bundled set."""
    dirs = [Path(p) for p in os.environ.get("FWBENCH_WORKLOADS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "workloads", Path(__file__).resolve().parent.parent / "workloads"]
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(d)
    return out


def available_workloads() -> dict[str, Path]:
    """Workload name -> file, first directory wins."""
    found: dict[str, Path] = {}
    for d in workload_dirs():
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def load_file(path: Path) -> WorkloadSpec:
    """Read and validate one workload file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkloadError("", f"cannot read: {exc.strerror or exc}").in_file(str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError("", f"not UTF-8 text (byte {exc.start})").in_file(str(path)) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError("", f"not valid TOML: {exc}").in_file(str(path)) from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise WorkloadError("", "not a workload: values nested too deeply").in_file(str(path)) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise WorkloadError("", f"not valid TOML: {exc}").in_file(str(path)) from None
    return parse_workload(doc, str(path))


_PATHLIKE = re.compile(r"[/\\]|\.toml$")


def load_workload(ref: str) -> WorkloadSpec:
    """Load a workload by name (``cnn``), by path (``./my.toml``) or from a ``fwbench.workloads`` plugin."""
    if _PATHLIKE.search(ref):
        return load_file(Path(ref))
    files = available_workloads()
    if ref in files:
        return load_file(files[ref])
    plugins = plugin_workloads()
    if ref in plugins:
        # A declared entry point is the one place workload code runs (the user installed it); its
        # failure is still reported as a workload error, not a traceback.
        try:
            doc = plugins[ref].load()()
        except Exception as exc:
            raise WorkloadError("", f"plugin {plugins[ref].value} failed: {type(exc).__name__}: {exc}"
                                ).in_file(f"plugin {ref}") from None
        return parse_workload(doc, f"plugin {ref}")
    names = sorted(set(files) | set(plugins))
    raise WorkloadError("", f"unknown workload {ref!r}; available: {', '.join(names) or 'none'}").in_file(ref)


def plugin_workloads() -> dict[str, Any]:
    """Entry points of the ``fwbench.workloads`` group (name -> EntryPoint); nothing is imported here."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="fwbench.workloads")}
