"""The typed results model: :class:`Cell` and :class:`Probe`, built only from fully validated records.

Every reader of a results document (run tables, export, reports, the pandas loader) gets its cells as
:class:`Cell` objects through :func:`fwbench.results.cells`; building one checks the type of every field a
reader uses, so a file either loads into this model or is refused with one line (:class:`Invalid`, turned
into :class:`fwbench.errors.ResultsError` by :mod:`fwbench.results`). Fields no reader uses are kept, unchecked,
in ``data``. ``docs/results.md`` documents every field.

A cell's numbers may be ``nan``/``inf`` in memory (a diverged loss); on disk they are ``null`` with a
``nonfinite`` flag (see :mod:`fwbench.jsonio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

STATUSES = ("ok", "diverged", "failed", "crashed", "timeout", "oom", "skipped")
MAX_INT = 2**63  # larger integers are not counts or bytes of any real run, and overflow float arithmetic

Check = Callable[[Any, str], Any]


class Invalid(ValueError):
    """A field of a record has the wrong type or value: ``path`` names it, the message says what is allowed."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"field {path!r} {message}" if path else message)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# ---- checks: each takes (value, path), raises Invalid or returns the value --------------------------------
def number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid(path, f"must be a number, got {_show(v)}")
    if isinstance(v, int) and abs(v) >= MAX_INT:
        raise Invalid(path, "is an integer too large to be a measurement")
    return v


def finite(v: Any, path: str) -> float:
    if not math.isfinite(number(v, path)):
        raise Invalid(path, "must be a finite number")
    return v


def nonneg(v: Any, path: str) -> float:
    if finite(v, path) < 0:
        raise Invalid(path, "must be a finite number >= 0")
    return v


def integer(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid(path, f"must be an integer, got {_show(v)}")
    if not 0 <= v < MAX_INT:
        raise Invalid(path, "must be an integer >= 0 of sane size")
    return v


def string(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise Invalid(path, f"must be a string, got {_show(v)}")
    return v


def boolean(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise Invalid(path, f"must be true or false, got {_show(v)}")
    return v


def anything(v: Any, path: str) -> Any:
    return v


def optional(check: Check) -> Check:
    def run(v: Any, path: str) -> Any:
        return None if v is None else check(v, path)
    return run


def list_of(check: Check) -> Check:
    def run(v: Any, path: str) -> list[Any]:
        if not isinstance(v, list):
            raise Invalid(path, f"must be a list, got {_show(v)}")
        for i, x in enumerate(v):
            check(x, f"{path}[{i}]")
        return v
    return run


def dict_of(check: Check) -> Check:
    def run(v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise Invalid(path, f"must be an object, got {_show(v)}")
        for k, x in v.items():
            check(x, _join(path, k))
        return v
    return run


def obj(fields: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object whose listed fields, where present (``required`` ones always), pass their checks."""
    def run(v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise Invalid(path, f"must be an object, got {_show(v)}")
        for key in required:
            if key not in v:
                raise Invalid(_join(path, key), "is missing")
        for key, check in fields.items():
            if key in v:
                check(v[key], _join(path, key))
        return v
    return run


def one_of(*choices: str) -> Check:
    def run(v: Any, path: str) -> str:
        if v not in choices:
            raise Invalid(path, f"is {_show(v)}, not one of {', '.join(choices)}")
        return v
    return run


def _show(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- the schema of what readers use ---------------------------------------------------------------------
NUM, OPT_NUM, OPT_STR, OPT_INT, OPT_BOOL = number, optional(number), optional(string), optional(integer), optional(boolean)
OPT_OBJ = optional(dict_of(anything))

SUMMARY = obj({k: finite for k in ("n", "median", "ci_low", "ci_high")} | {k: OPT_NUM for k in ("mean", "stdev", "min", "max")},
              required=("n", "median", "ci_low", "ci_high"))
CELL_PARITY = obj({"initial_loss": OPT_NUM, "kstep_loss": OPT_NUM, "k": OPT_INT, "losses": optional(list_of(OPT_NUM)),
                   "status": string, "detail": OPT_STR, "max_abs_diff": OPT_NUM, "tolerance": OPT_NUM,
                   "logits": optional(list_of(list_of(OPT_NUM))), "rows": OPT_INT, "reference": OPT_STR,
                   "bn_stats": optional(list_of(OPT_NUM)), "bn_nodes": optional(list_of(string)),
                   "bn_channels": optional(list_of(integer)), "bn_max_abs_diff": OPT_NUM, "learning_rate": OPT_NUM})
TIME_TO_ACCURACY = obj({"metric": OPT_STR, "target_accuracy": OPT_NUM, "reached": boolean, "steps_to_target": OPT_INT,
                        "time_to_target_s": OPT_NUM, "train_s": number, "wall_s": OPT_NUM, "final_accuracy": number,
                        "curve": list_of(list_of(number)), "target_loss": OPT_NUM, "excess_loss": OPT_NUM,
                        "final_loss": OPT_NUM, "optimum_loss": OPT_NUM, "optimal_expected_loss": OPT_NUM,
                        "entropy_rate": OPT_NUM},
                       required=("reached", "train_s", "final_accuracy", "curve"))
SYNC_CHECK = obj({"verdict": OPT_STR, "note": OPT_STR, "synced_s": OPT_NUM, "launch_s": OPT_NUM, "drained_s": OPT_NUM,
                  "sync_cost_ratio": OPT_NUM, "steps": OPT_INT})
CELL_TIMING = obj({"mode": OPT_STR, "window_steps": OPT_INT, "target_window_s": OPT_NUM, "windows": OPT_INT,
                   "timed_steps": OPT_INT, "sync_point": OPT_STR, "lazy_loss": OPT_BOOL})
DISTRIBUTED = obj({"world_size": integer, "nnodes": OPT_INT, "workers_per_node": OPT_INT, "node_rank": OPT_INT,
                   "backend": OPT_STR, "engine": OPT_STR, "per_rank_batch": OPT_INT, "global_batch": OPT_INT,
                   "steps": OPT_INT, "window_s": OPT_NUM, "global_samples_per_s": OPT_NUM,
                   "slowest_rank_step_s": OPT_NUM, "scaling_efficiency": OPT_NUM,
                   "per_rank": list_of(obj({"rank": OPT_INT, "node_rank": OPT_INT, "elapsed_s": OPT_NUM,
                                            "median_step_s": OPT_NUM, "samples_per_s": OPT_NUM})),
                   "baseline": optional(obj({"world_size": OPT_INT, "samples_per_s": OPT_NUM,
                                             "median_step_s": OPT_NUM, "steps": OPT_INT})),
                   "loss_following": optional(obj({"status": OPT_STR, "tolerance": OPT_NUM, "steps": OPT_INT,
                                                   "max_rel_diff": OPT_NUM, "first_bad_step": OPT_INT,
                                                   "losses_n": list_of(OPT_NUM), "losses_1": list_of(OPT_NUM)}))},
                  required=("world_size",))
INTERFERENCE = obj({"other_cpu_s": nonneg, "own_cpu_s": nonneg, "wall_s": nonneg, "cores": integer, "cpus": OPT_INT,
                    "other_share": nonneg, "resolution": optional(nonneg), "load_start": OPT_NUM, "load_end": OPT_NUM,
                    "steal_s": optional(nonneg), "freq_mhz_start": OPT_NUM, "freq_mhz_end": OPT_NUM,
                    "freq_changed": OPT_BOOL, "noisy": boolean, "threshold": nonneg, "source": OPT_STR},
                   required=("other_cpu_s", "own_cpu_s", "wall_s", "cores", "other_share", "noisy", "threshold"))
SCENARIO_NAMES = ("train", "latency", "throughput", "cold-start")  # fwbench.scenarios.SCENARIOS
QUANTILE = obj({"name": string, "q": finite, "value": nonneg, "low": nonneg, "high": nonneg, "coverage": finite,
                "attained": boolean, "n": integer}, required=("name", "q", "value", "low", "high", "coverage"))
LATENCY = obj({"n": integer, "level": finite, "max": nonneg, "percentiles": list_of(QUANTILE)},
              required=("n", "max", "percentiles"))
COLD_START = obj({k: nonneg for k in ("process_start_s", "import_s", "build_s", "first_call_s", "total_s")},
                 required=("total_s",))
ENERGY = obj({"available": boolean, "reason": OPT_STR, "source": OPT_STR, "domains": optional(list_of(string)),
              "joules": optional(nonneg), "seconds": optional(nonneg), "steps": OPT_INT, "samples": OPT_INT,
              "j_per_step": optional(nonneg), "j_per_sample": optional(nonneg), "watts": optional(nonneg)},
             required=("available",))
TIMING_MODE_NAMES = ("per-step", "windowed")  # fwbench.config.TIMING_MODES
# Runner options, in ``config.options`` (``timing`` as given: null = each device's default) and in each cell's
# ``options`` (``timing`` as the cell ran, where the run resolved it); absent fields: the defaults.
OPTIONS = obj({"precision": OPT_STR, "tf32": OPT_BOOL, "channels_last": OPT_BOOL, "threads": OPT_INT,
               "sync_check": OPT_BOOL, "keras_jit_compile": OPT_BOOL, "distributed": OPT_OBJ,
               "timing": optional(one_of(*TIMING_MODE_NAMES)), "cuda_graphs": OPT_BOOL})
CELL = obj({
    "id": string, "workload": string, "runner": string, "device": string, "status": one_of(*STATUSES),
    "family": OPT_STR, "repeat": integer, "mode": OPT_STR, "batch_size": OPT_INT, "threads": OPT_INT,
    "options": optional(OPTIONS), "versions": optional(dict_of(OPT_STR)), "settings": OPT_OBJ, "reason": OPT_STR,
    "log_tail": optional(lambda v, p: v if isinstance(v, (str, list)) else string(v, p)),
    "warmup_s": list_of(nonneg), "step_s": list_of(nonneg), "stop_reason": OPT_STR, "first_step_s": OPT_NUM,
    "final_loss": OPT_NUM, "retraces": OPT_INT, "summary": optional(SUMMARY), "samples_per_s": OPT_NUM,
    "samples_per_s_ci": optional(list_of(OPT_NUM)), "parity": optional(CELL_PARITY),
    "time_to_accuracy": optional(TIME_TO_ACCURACY), "peak_rss_bytes": OPT_INT, "peak_device_bytes": OPT_INT,
    "flops_per_step": OPT_NUM, "achieved_flops": OPT_NUM, "mfu": OPT_NUM, "peak_flops": OPT_NUM,
    "peak_flops_published": OPT_NUM, "calibration": OPT_OBJ, "sync_check": optional(SYNC_CHECK),
    "distributed": optional(DISTRIBUTED), "worker_s": OPT_NUM, "duration_s": OPT_NUM,
    "interference": optional(INTERFERENCE),
    "side": one_of("A", "B"),  # fwbench ab: which environment ran the cell (see SIDE)
    "scenario": one_of(*SCENARIO_NAMES), "base_workload": string, "latency": optional(LATENCY),
    "cold_start": optional(COLD_START), "energy": optional(ENERGY), "timing": optional(CELL_TIMING),
}, required=("id", "workload", "runner", "device", "status"))

# Findings of the capability probes (fwbench.probes), by key wherever it appears in a probe's findings.
SHAPE = obj({"batch": OPT_INT, "first_call_s": OPT_NUM, "steady_s": OPT_NUM, "retraces": OPT_INT})
FINDINGS = obj({
    "concrete_value": OPT_BOOL, "value": OPT_NUM, "loss": OPT_NUM, "how": OPT_STR, "error": OPT_STR,
    "alternative": OPT_STR, "graph_breaks": OPT_INT, "raised": OPT_BOOL, "error_type": OPT_STR, "message": OPT_STR,
    "case": OPT_STR, "offending_layer": OPT_STR, "names_layer": OPT_BOOL, "names_shapes": OPT_BOOL,
    "shapes": optional(list_of(SHAPE)), "counted": OPT_BOOL, "note": OPT_STR, "retraces_total": OPT_INT,
    "format": OPT_STR, "export_s": OPT_NUM, "artifact_bytes": OPT_INT, "artifact": OPT_STR, "max_abs_diff": OPT_NUM,
    "reproduces": OPT_BOOL, "tolerance": OPT_NUM, "runtime": OPT_STR, "exporter": OPT_STR,
})
PROBE = obj({"id": string, "probe": string, "runner": string, "device": string, "status": one_of(*STATUSES),
             "kind": OPT_STR, "description": OPT_STR, "family": OPT_STR, "workload": OPT_STR, "reason": OPT_STR,
             "findings": FINDINGS, "versions": optional(dict_of(OPT_STR)), "worker_s": OPT_NUM,
             "peak_rss_bytes": OPT_INT, "duration_s": OPT_NUM},
            required=("id", "probe", "runner", "device", "status"))

# The run-level blocks readers use.
RUN_PARITY = obj({"reference": OPT_STR, "precision": OPT_STR, "tolerances": optional(dict_of(OPT_NUM)),
                  "groups": list_of(obj({"workload": OPT_STR, "device": OPT_STR, "repeat": OPT_INT,
                                         "reference": OPT_STR, "ok": OPT_BOOL, "runners": list_of(string),
                                         "bn_max_abs_diff": OPT_NUM})),
                  "mismatches": list_of(string), "ok": OPT_BOOL})
ENVIRONMENT = obj({"cpu": OPT_STR, "cores": OPT_INT, "threads": OPT_INT, "gpus": optional(list_of(anything)),
                   "tpu": anything, "versions": optional(dict_of(OPT_STR)), "git_commit": OPT_STR,
                   "hostname": OPT_STR, "python": OPT_STR, "os": OPT_STR})
# ``run --warmup/--min-steps/--max-steps/--max-time/--target-ci`` (null: not given); absent before issue 19
TIMING_OVERRIDES = obj({"warmup": OPT_INT, "min_steps": OPT_INT, "max_steps": OPT_INT, "max_seconds": OPT_NUM,
                        "target_ci": OPT_NUM})
CONFIG = obj({"command": OPT_STR, "frameworks": list_of(string), "runners": list_of(string),
              "workloads": list_of(string), "devices": list_of(string), "resolved_devices": list_of(string),
              "timeout": OPT_NUM, "quick": OPT_BOOL, "repeats": OPT_INT, "target": OPT_BOOL,
              "memory_limit": OPT_STR, "probes": list_of(string), "options": OPTIONS, "argv": list_of(string),
              "scenario": optional(one_of(*SCENARIO_NAMES)), "batch_sizes": list_of(integer),
              "timing_overrides": TIMING_OVERRIDES})
WORKLOAD = obj({"name": string, "batch_size": OPT_INT, "mode": OPT_STR, "scenario": OPT_STR, "description": OPT_STR,
                "layers": list_of(dict_of(anything)), "input_shape": list_of(integer), "classes": OPT_INT,
                "optimizer": OPT_OBJ, "timing": OPT_OBJ, "distributed": OPT_OBJ}, required=("name",))
WORKLOADS = dict_of(WORKLOAD)
# ``fwbench ab``: each side's interpreter, extra environment variables and the environment it captured
SIDE = obj({"label": string, "python": string, "env": dict_of(string), "environment": ENVIRONMENT,
            "fwbench_path": OPT_STR, "runners": optional(dict_of(OPT_OBJ))},
           required=("label", "python", "env", "environment"))
AB = obj({"rounds": integer, "order": OPT_STR, "sides": dict_of(SIDE)}, required=("rounds", "sides"))


# ---- the typed records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellSummary:
    """Statistics over a cell's ``step_s``: the median and its distribution-free 95% CI, in seconds."""

    n: int
    median: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class CellParity:
    """A cell's parity record: losses on the shared weights and batches, and the run's verdict for it."""

    status: str = "n/a"
    initial_loss: float | None = None
    kstep_loss: float | None = None
    detail: str = ""


class _Record:
    """What cells and probes share: a status, and the whole validated record behind them (``data``)."""

    status: str
    data: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass(frozen=True)
class Cell(_Record):
    """One (workload, runner, device, repeat) cell of a run, validated. ``data`` is the whole record.

    Attributes are the fields readers use, with their defaults when absent; every other documented field
    (``settings``, ``calibration``, ``time_to_accuracy`` ...) is reached with ``cell.get(key)``.
    """

    id: str
    workload: str
    runner: str
    device: str
    status: str
    repeat: int = 0
    family: str | None = None
    reason: str = ""
    mode: str | None = None
    batch_size: int | None = None
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    warmup_s: tuple[float, ...] = ()
    step_s: tuple[float, ...] = ()
    first_step_s: float | None = None
    final_loss: float | None = None
    summary: CellSummary | None = None
    samples_per_s: float | None = None
    mfu: float | None = None
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    parity: CellParity | None = None
    scenario: str = "train"
    base_workload: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def noisy(self) -> bool:
        """Other processes used more than the threshold's share of the cores this cell was given while its
        timed steps ran (``interference.noisy``, see :mod:`fwbench.interference`); False without the record."""
        return bool((self.data.get("interference") or {}).get("noisy"))

    @classmethod
    def from_dict(cls, d: Any, path: str = "") -> "Cell":
        """Validate ``d`` (raises :class:`Invalid` naming the field) and build the typed cell."""
        CELL(d, path)
        s, p = d.get("summary"), d.get("parity")
        return cls(
            id=d["id"], workload=d["workload"], runner=d["runner"], device=d["device"], status=d["status"],
            repeat=d.get("repeat", 0), family=d.get("family"), reason=d.get("reason") or "", mode=d.get("mode"),
            batch_size=d.get("batch_size"), threads=d.get("threads"), options=d.get("options") or {},
            warmup_s=tuple(d.get("warmup_s", ())), step_s=tuple(d.get("step_s", ())),
            first_step_s=d.get("first_step_s"), final_loss=d.get("final_loss"),
            summary=CellSummary(int(s["n"]), s["median"], s["ci_low"], s["ci_high"]) if s else None,
            samples_per_s=d.get("samples_per_s"), mfu=d.get("mfu"), peak_rss_bytes=d.get("peak_rss_bytes"),
            peak_device_bytes=d.get("peak_device_bytes"),
            parity=CellParity(p.get("status", "n/a"), p.get("initial_loss"), p.get("kstep_loss"),
                              p.get("detail") or "") if p is not None else None,
            scenario=d.get("scenario", "train"), base_workload=d.get("base_workload") or d["workload"], data=d)


@dataclass(frozen=True)
class Probe(_Record):
    """One capability-probe record (see ``fwbench.probes``), validated. ``data`` is the whole record."""

    id: str
    probe: str
    runner: str
    device: str
    status: str
    reason: str = ""
    findings: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Any, path: str = "") -> "Probe":
        PROBE(d, path)
        return cls(d["id"], d["probe"], d["runner"], d["device"], d["status"], d.get("reason") or "",
                   d.get("findings") or {}, d)
