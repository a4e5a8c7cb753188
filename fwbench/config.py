"""What to run and how: one typed, validated configuration, saved whole into every results file.

- :class:`RunnerOptions`: how each worker runs its cell (threads, precision, TF32, layout, data-parallel
  options, timing mode, CUDA graphs). It rides in every :class:`~fwbench.job.Job` and is stored per cell.
- :class:`TimingOverrides`: ``run --warmup/--min-steps/--max-steps/--max-time/--target-ci``, which replace
  those fields of every workload's ``[timing]`` table for one run (:meth:`TimingOverrides.apply`).
- :class:`RunConfig`: what a ``run`` or ``probe`` invocation asked for. ``RunConfig.to_dict()`` is the
  results file's ``config``; ``--resume`` reads it back with :meth:`RunConfig.from_dict`, which applies the
  same checks as the command line.

Both are validated once, in ``__post_init__``, raising :class:`ConfigError` that names the option. This
module is a leaf: it imports no framework and no NumPy (the parent plans runs with it).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from fwbench.distributed.config import DistOptions
from fwbench.errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_CHOICES = ("cpu", "cuda", "tpu", "auto")
COMMANDS = ("run", "probe", "ab")
PHASES = ("timing", "parity", "target")
SCENARIO_CHOICES = ("train", "latency", "throughput", "cold-start")  # fwbench.scenarios.SCENARIOS
MAX_BATCH = 1_000_000  # the largest batch a workload file may set
MAX_BATCH_SIZES = 64  # points of one --batch-size sweep

# How the timed steps are clocked (issue 19): ``per-step`` synchronises the device after every step (the loss
# fetched to the host) and times each step on its own; ``windowed`` runs windows of k steps with no host
# synchronisation inside a window and times the window. ``--timing`` chooses; left out, each device's default.
TIMING_MODES = ("per-step", "windowed")
DEFAULT_TIMING_MODES = {"cpu": "per-step", "cuda": "windowed", "tpu": "windowed"}

# ``--quick``: a smoke run's budget, replacing the workload's [timing] fields it names.
QUICK_TIMING: dict[str, Any] = {"warmup": 2, "min_steps": 5, "max_steps": 20, "min_seconds": 0.0, "max_seconds": 2.0}

# The bounds of the timing flags: those of a workload file's [timing] table (fwbench.workload_spec._parse;
# tests/test_timing_cli.py checks that the two agree), as (lowest, highest, what a value must be).
TIMING_BOUNDS: dict[str, tuple[float, float, str]] = {
    "warmup": (1, 10_000, "an integer from 1 to 10000"),
    "min_steps": (3, 1_000_000, "an integer from 3 to 1000000"),
    "max_steps": (3, 10_000_000, "an integer from 3 to 10000000"),
    "max_seconds": (0, 86_400, "a number of seconds in (0, 86400]"),
    "target_ci": (0, 1, "a relative half-width in (0, 1), e.g. 0.02 or 2%"),
}

# Sane bounds (issue 13): a run plans at most MAX_CELLS cells and MAX_REPEATS processes per cell; a cell
# waits at most MAX_TIMEOUT_S. ``--threads`` beyond the cores this process may use oversubscribes them.
MAX_REPEATS = 1000
MAX_CELLS = 10_000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_THREADS = 4096


class ConfigError(UsageError):
    """An option that does not validate; ``field`` is its name in :class:`RunConfig` / :class:`RunnerOptions`."""

    def __init__(self, field_name: str, message: str):
        self.field, self.message = field_name, message
        flag = _FLAGS.get(field_name, field_name).replace("_", "-")
        super().__init__(f"--{flag} {message}")


# Where a stored field's name differs from the command-line option that sets it.
_FLAGS = {"workloads": "workload", "devices": "device", "resolved_devices": "device", "frameworks": "framework",
          "runners": "runner", "probes": "probe", "batch_sizes": "batch_size", "max_seconds": "max_time"}


def available_cores() -> int:
    """Cores this process may use: its CPU affinity (taskset, cgroups' cpusets), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_threads(threads: int) -> int:
    """``--threads``: ``0`` means every core this process may use; resolved once, in the parent."""
    return threads if threads > 0 else available_cores()


def tpu_precision_problem(device: str, precision: str) -> str | None:
    """Why ``precision`` cannot run on ``device`` for any framework, or ``None`` (TPUs have no fp16 math)."""
    if device == "tpu" and precision == "fp16":
        return "TPUs compute in bf16, not fp16; use --precision bf16"
    return None


def default_timing_mode(device: str) -> str:
    """The timing mode a cell on ``device`` runs when ``--timing`` is not given (:data:`DEFAULT_TIMING_MODES`)."""
    return DEFAULT_TIMING_MODES.get(device, "per-step")


def _check_type(name: str, value: Any, typ: type | tuple[type, ...], what: str) -> None:
    ok = isinstance(value, typ) and not (isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple)
                                                                                  else (typ,)))
    if not ok:
        raise ConfigError(name, f"must be {what}, got {value!r}"[:200])


def _known_fields(cls: type, d: Any, what: str) -> dict[str, Any]:
    """A stored mapping as keyword arguments of the dataclass ``cls``: an object with known fields only."""
    if not isinstance(d, dict):
        raise ConfigError(what, f"must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(what, f"has unknown field(s) {', '.join(map(repr, unknown))[:200]}")
    return dict(d)


def _check_names(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(name, f"must be a list of names, got {value!r}"[:200])
    return tuple(value)


@dataclass(frozen=True)
class RunnerOptions:
    """How a worker runs its cell.

    ``threads``: intra-op threads (resolved: at least 1); ``precision``: ``fp32``, ``bf16`` or ``fp16``
    (mixed precision); ``tf32``: allow TF32 tensor-core math for fp32 on NVIDIA GPUs; ``channels_last``:
    PyTorch NHWC memory format; ``sync_check``: run the timing self-check on the CPU too;
    ``keras_jit_compile``: override Keras's ``jit_compile`` (``None``: the backend's default);
    ``distributed``: the run's data-parallel options when a workload is data-parallel; ``timing``: how the
    timed steps are clocked, ``per-step`` or ``windowed`` (``None``: the device's default, see
    :meth:`timing_mode`; a job's options hold the resolved mode once :meth:`for_device` made them);
    ``cuda_graphs``: replay captured CUDA graphs where the framework offers them (``torch-compile`` compiles
    with ``mode="reduce-overhead"``).
    """

    threads: int = 1
    precision: str = "fp32"
    tf32: bool = False
    channels_last: bool = False
    sync_check: bool = False
    keras_jit_compile: bool | None = None
    distributed: DistOptions | None = None
    timing: str | None = None
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        _check_type("threads", self.threads, int, "a whole number")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError("threads", f"must be between 1 and {MAX_THREADS} after resolving 0, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"{self.precision!r} is not a precision; choose from: {', '.join(PRECISIONS)}")
        for name in ("tf32", "channels_last", "sync_check", "cuda_graphs"):
            _check_type(name, getattr(self, name), bool, "true or false")
        if self.timing is not None and self.timing not in TIMING_MODES:
            raise ConfigError("timing", f"{self.timing!r} is not a timing mode; choose from: "
                                        f"{', '.join(TIMING_MODES)}"[:200])
        if self.keras_jit_compile is not None:
            _check_type("keras_jit_compile", self.keras_jit_compile, bool, "true, false or null")
        if self.distributed is not None and not isinstance(self.distributed, DistOptions):
            raise ConfigError("distributed", "must be data-parallel options")

    def timing_mode(self, device: str) -> str:
        """The timing mode a cell on ``device`` runs: ``timing`` as given, else the device's default."""
        return self.timing if self.timing is not None else default_timing_mode(device)

    def for_device(self, device: str) -> "RunnerOptions":
        """These options for a cell on ``device``: ``timing`` resolved (what a job carries and a cell records)."""
        mode = self.timing_mode(device)
        return self if mode == self.timing else replace(self, timing=mode)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["distributed"] = self.distributed.to_dict() if self.distributed else None
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "RunnerOptions":
        """Strict: unknown keys and wrong types are refused (:class:`ConfigError` naming the field)."""
        kwargs = _known_fields(cls, d, "options")
        dist = kwargs.get("distributed")
        if dist is not None:
            kwargs["distributed"] = _dist_from_dict(dist)
        return cls(**kwargs)


def _dist_from_dict(d: Any) -> DistOptions:
    if not isinstance(d, dict) or set(d) - {f.name for f in fields(DistOptions)}:
        raise ConfigError("distributed", f"must be an object of {', '.join(f.name for f in fields(DistOptions))}")
    for key in ("nnodes", "node_rank", "master_port"):
        if key in d:
            _check_type(key, d[key], int, "a whole number")
    if d.get("workers") is not None:
        _check_type("workers", d["workers"], int, "a whole number")
    if "master_addr" in d:
        _check_type("master_addr", d["master_addr"], str, "a host name or address")
    return DistOptions.from_dict(d)


@dataclass(frozen=True)
class TimingOverrides:
    """``run --warmup/--min-steps/--max-steps/--max-time/--target-ci``: fields of every workload's ``[timing]``
    table replaced for one run (``None``: the workload's own, or ``--quick``'s). ``max_seconds`` is set by
    ``--max-time``. Bounds are the workload file's (:data:`TIMING_BOUNDS`); :meth:`apply` says how they combine
    with a workload's table and with ``--quick``."""

    warmup: int | None = None
    min_steps: int | None = None
    max_steps: int | None = None
    max_seconds: float | None = None
    target_ci: float | None = None

    def __post_init__(self) -> None:
        for name in ("warmup", "min_steps", "max_steps"):
            value = getattr(self, name)
            if value is None:
                continue
            low, high, what = TIMING_BOUNDS[name]
            _check_type(name, value, int, what)
            if not low <= value <= high:
                raise ConfigError(name, f"must be {what}, got {value}")
        for name in ("max_seconds", "target_ci"):
            value = getattr(self, name)
            if value is None:
                continue
            low, high, what = TIMING_BOUNDS[name]
            _check_type(name, value, (int, float), what)
            inside = low < value <= high if name == "max_seconds" else low < value < high
            if not (math.isfinite(value) and inside):
                raise ConfigError(name, f"must be {what}, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.min_steps is not None and self.max_steps is not None and self.max_steps < self.min_steps:
            raise ConfigError("max_steps", f"must be at least --min-steps ({self.min_steps}), got {self.max_steps}")

    @property
    def given(self) -> dict[str, Any]:
        """The fields set, by their ``[timing]`` name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def apply(self, timing: Any, quick: bool = False) -> dict[str, Any]:
        """The ``[timing]`` fields to replace in a workload whose table is ``timing`` (a
        :class:`fwbench.workload_spec.Timing`), for ``WorkloadSpec.with_timing(**...)``.

        ``--quick``'s budget (:data:`QUICK_TIMING`) applies first, then every flag given, so an explicit flag
        wins over ``--quick``. The result stays consistent: a ``--max-steps`` below the table's ``min_steps``
        lowers ``min_steps`` to it, a ``--min-steps`` above its ``max_steps`` raises ``max_steps`` to it, and a
        ``--max-time`` below ``min_seconds`` lowers ``min_seconds`` to it (a budget that ends sooner)."""
        out: dict[str, Any] = dict(QUICK_TIMING) if quick else {}
        out.update(self.given)
        now = {name: out.get(name, getattr(timing, name)) for name in ("min_steps", "max_steps", "min_seconds",
                                                                        "max_seconds")}
        if now["max_steps"] < now["min_steps"]:
            if self.max_steps is not None:
                out["min_steps"] = self.max_steps
            else:
                out["max_steps"] = now["min_steps"]
        if self.max_seconds is not None and now["max_seconds"] < now["min_seconds"]:
            out["min_seconds"] = now["max_seconds"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "TimingOverrides":
        """Strict: unknown keys and wrong types are refused (:class:`ConfigError` naming the field)."""
        return cls(**_known_fields(cls, d, "timing_overrides"))


def parse_fraction(text: str, field_name: str) -> float:
    """``2%``, ``2 %``, ``0.02`` -> 0.02 (as ``--threshold``: a bare number of 1 or more is a percentage,
    ``2`` = 2%); :class:`ConfigError` naming ``field_name`` when malformed. Bounds are the caller's."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*", text)
    if not m:
        raise ConfigError(field_name, f"{text!r}: give a fraction such as 0.02 or a percentage such as 2%"[:200])
    value = float(m.group(1))
    return value / 100.0 if m.group(2) or value >= 1 else value


@dataclass(frozen=True)
class RunConfig:
    """What an invocation asked for (names as given; workloads are resolved by the command).

    ``devices`` as given (``auto`` included) and ``resolved_devices`` as run; ``memory_limit`` as given
    (``4GiB``), see :attr:`memory_limit_bytes`; ``argv`` the command line that made the run. ``scenario``:
    what every cell measures (``None``: each workload's own default, ``train`` unless it names another);
    ``batch_sizes``: the batch of every point of a sweep, ascending (empty: the scenario's natural batch);
    ``timing_overrides``: the timing flags given (:class:`TimingOverrides`; each workload's effective
    ``[timing]`` is stored with the workload).
    """

    command: str = "run"
    frameworks: tuple[str, ...] = ()
    runners: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ("cnn",)
    devices: tuple[str, ...] = ("cpu",)
    resolved_devices: tuple[str, ...] = ()
    timeout: float = 600.0
    quick: bool = False
    repeats: int = 1
    target: bool = True
    memory_limit: str | None = None
    probes: tuple[str, ...] = ()
    scenario: str | None = None
    batch_sizes: tuple[int, ...] = ()
    timing_overrides: TimingOverrides = field(default_factory=TimingOverrides)
    options: RunnerOptions = field(default_factory=RunnerOptions)
    argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ConfigError("command", f"must be one of {', '.join(COMMANDS)}, got {self.command!r}"[:200])
        for name in ("frameworks", "runners", "workloads", "devices", "resolved_devices", "probes", "argv"):
            object.__setattr__(self, name, _check_names(name, getattr(self, name)))
        if not self.workloads:
            raise ConfigError("workloads", "is missing: no workload given")
        if len(set(self.workloads)) != len(self.workloads):
            raise ConfigError("workloads", f"names a workload more than once: {', '.join(self.workloads)}"[:200])
        for name in ("devices", "resolved_devices"):
            for d in getattr(self, name):
                if d not in DEVICE_CHOICES or (d == "auto" and name == "resolved_devices"):
                    raise ConfigError(name, f"{d!r} is not a device; choose from: {', '.join(DEVICE_CHOICES)}"[:200])
        _check_type("timeout", self.timeout, (int, float), "a number of seconds")
        if not (math.isfinite(self.timeout) and 0 < self.timeout <= MAX_TIMEOUT_S):
            raise ConfigError("timeout", f"must be above 0 and at most {MAX_TIMEOUT_S:g} s, got {self.timeout!r}")
        object.__setattr__(self, "timeout", float(self.timeout))
        for name in ("quick", "target"):
            _check_type(name, getattr(self, name), bool, "true or false")
        _check_type("repeats", self.repeats, int, "a whole number")
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise ConfigError("repeats", f"must be between 1 and {MAX_REPEATS}, got {self.repeats}")
        if self.memory_limit is not None:
            _check_type("memory_limit", self.memory_limit, str, "a size such as 4GiB")
            self.memory_limit_bytes  # noqa: B018 (parses; raises ConfigError when malformed)
        if not isinstance(self.options, RunnerOptions):
            raise ConfigError("options", "must be runner options")
        if not isinstance(self.timing_overrides, TimingOverrides):
            raise ConfigError("timing_overrides", "must be timing overrides")
        if self.scenario is not None and self.scenario not in SCENARIO_CHOICES:
            raise ConfigError("scenario", f"{self.scenario!r} is not a scenario; choose from: "
                                          f"{', '.join(SCENARIO_CHOICES)}"[:200])
        if not isinstance(self.batch_sizes, (list, tuple)):
            raise ConfigError("batch_sizes", f"must be a list of batch sizes, got {self.batch_sizes!r}"[:200])
        for b in self.batch_sizes:
            _check_type("batch_sizes", b, int, "a whole number")
            if not 1 <= b <= MAX_BATCH:
                raise ConfigError("batch_sizes", f"must be between 1 and {MAX_BATCH}, got {b}")
        if len(self.batch_sizes) > MAX_BATCH_SIZES:
            raise ConfigError("batch_sizes", f"is given {len(self.batch_sizes)} times; at most {MAX_BATCH_SIZES} points")
        object.__setattr__(self, "batch_sizes", tuple(sorted(set(self.batch_sizes))))

    @property
    def memory_limit_bytes(self) -> int | None:
        return parse_size(self.memory_limit) if self.memory_limit is not None else None

    def phases(self, scenario: str = "train") -> tuple[str, ...]:
        """What a worker runs for a cell of ``scenario``: time-to-target belongs to training only."""
        return ("timing", "parity") + (("target",) if self.target and scenario == "train" else ())

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("frameworks", "runners", "workloads", "devices", "resolved_devices", "probes", "argv",
                     "batch_sizes"):
            d[name] = list(d[name])
        d["options"] = self.options.to_dict()
        d["timing_overrides"] = self.timing_overrides.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        """The configuration stored in a results file, checked with the command line's rules."""
        kwargs = _known_fields(cls, d, "config")
        try:
            kwargs["options"] = RunnerOptions.from_dict(d.get("options", {}))
        except ConfigError as exc:  # named where it is stored
            raise ConfigError(exc.field if exc.field == "options" else f"options.{exc.field}", exc.message) from None
        try:  # absent in files written before issue 19: no flag was given
            kwargs["timing_overrides"] = TimingOverrides.from_dict(d.get("timing_overrides", {}))
        except ConfigError as exc:
            raise ConfigError(exc.field if exc.field == "timing_overrides" else f"timing_overrides.{exc.field}",
                              exc.message) from None
        return cls(**kwargs)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", re.IGNORECASE)
MIN_MEMORY_LIMIT = 64 * 2**20  # below this not even the Python interpreter of a worker starts
MAX_MEMORY_LIMIT = 2**60


def parse_size(text: str) -> int:
    """``512MiB``, ``2GiB``, ``2G``, ``1048576`` -> bytes, within sane bounds (:class:`ConfigError` otherwise)."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ConfigError("memory_limit", f"{text!r}: give a size such as 512MiB or 2GiB")
    scale = 1024 ** ("KMGT".find(m.group(2).upper()) + 1) if m.group(2) else 1
    value = float(m.group(1)) * scale
    if not MIN_MEMORY_LIMIT <= value <= MAX_MEMORY_LIMIT:
        raise ConfigError("memory_limit", f"{text!r} must be between 64MiB (a worker's interpreter needs about "
                                          f"that much to start) and 1EiB; omit it for no limit")
    return int(value)
