"""Baseline vs current results document -> one verdict per cell (pure: no I/O, no printing).

Matching. Cells are matched by ``(workload, runner, device)``; the ``repeat`` index is ignored, so the
R worker processes of ``fwbench run --repeats R`` form one group per side. Before comparing, the things
that change speed without being the code under test must agree, or the cell is *incomparable* and the
differing keys are named: the workload definition as it affects speed (shape, layers, batch, loss,
optimizer, data), the cell's mode, batch size, thread count and runner options, the runner's framework
versions, the CPU model, and for ``cuda`` cells the GPU model.

The timing policy is not among them: a cell timed under another policy (the workload's effective ``[timing]``
budget, e.g. ``--max-time`` or ``--quick``; the timing mode ``per-step`` or ``windowed``, ``options.timing``;
CUDA graphs, ``options.cuda_graphs``) measured the same work, so it is compared, and
:attr:`Comparison.notes` gets one line per distinct difference naming the cells, e.g. ``timing differs:
baseline per-step, current windowed; max_seconds 15 → 5 (cnn/torch/cuda); compared anyway``. Windowed timing
and CUDA graphs remove host overhead that per-step timing includes, so such a ratio can show a "change" that
is the policy's, not the code's: the note says so where the table is read.

Statistics (see :mod:`fwbench.stats`). Only cells with status ``ok`` contribute samples.

* Both sides ran in >= 3 processes: the unit of replication is the **process**. Each process's median
  step time is one observation; the ratio is the ratio of the geometric means of those medians, its CI
  and p-value come from Student's t-test on their logarithms. Steps within a process are not independent
  evidence about the next process (CPU frequency, memory placement and neighbours stay put for the
  whole process), so pooling them would make a 2% process-to-process wobble look "highly significant".
* Otherwise the steps are pooled: ratio of medians with an (exact-sampler) bootstrap CI, Mann–Whitney U
  for the p-value. This sees only within-process noise; the threshold is then the only guard against
  between-process drift, which is why ``docs/ci.md`` runs ``--repeats 3``.

The p-values of all compared cells are adjusted together with Benjamini–Hochberg (q-values), so a
24-cell matrix does not get 24 chances to raise a false alarm. CIs are shown at ``1 - alpha``.

Verdicts (``ratio`` = current / baseline, > 1 is slower; ``thr`` = threshold):

* ``slower``: q < alpha **and** ratio > 1 + thr. ``faster``: q < alpha and ratio < 1 / (1 + thr).
* ``inconclusive``: neither, and either the minimum detectable change (MDC: the change this comparison
  would flag with 80% probability at alpha) exceeds thr, or the ratio is beyond the threshold without
  being significant. The MDC is reported, so the user knows how many more steps or repeats to give.
* ``no change``: neither slower nor faster, and a change of thr would have been detected.
* A cell whose worker process was flagged ``noisy`` on either side (other processes used a large share of
  its cores while it was timed, see :mod:`fwbench.interference`) is ``inconclusive`` whatever its numbers
  say: its ratio is shown, but it takes no part in the Benjamini–Hochberg family and is never slower or
  faster.
* ``missing``: the cell is on one side only, or has no successful samples on one side (the reason says).
* ``incomparable``: the keys above differ (unless ``allow_mismatch``; then the cell is compared and the
  differences are kept in ``detail``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fwbench.cells import Cell
from fwbench.results import cells as typed_cells

if TYPE_CHECKING:  # numpy and SciPy load only when a comparison runs: `fwbench --help` stays instant
    import numpy as np

# Chosen from benchmarks/gate_quality.py on a shared 2-core machine and the seeded simulations in
# tests/test_gate_simulation.py; docs/ci.md gives the measured figures.
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
DEFAULT_ESTIMATOR = "median"
MDC_POWER = 0.8

VERDICTS = ("slower", "faster", "no change", "inconclusive", "missing", "incomparable")
# workload fields that change the work a step does (description, seed, timing policy and source path do not)
SPEED_KEYS = ("input_shape", "classes", "layers", "batch_size", "mode", "loss", "optimizer", "data", "distributed")
CELL_KEYS = ("mode", "batch_size", "threads", "options")
# the timing policy: compared anyway, and noted (see the module docstring)
TIMING_KEYS = ("warmup", "min_steps", "max_steps", "min_seconds", "max_seconds", "target_ci")  # [timing] table
TIMING_OPTIONS = ("timing", "cuda_graphs")  # runner options that change how steps are clocked, not the work
LEGACY_TIMING_MODE = "per-step"  # a cell recorded before options.timing existed synchronised every step
MAX_NOTED_CELLS = 4  # cells named in one timing note; the rest are counted

Key = tuple[str, str, str]


@dataclass(frozen=True)
class CellVerdict:
    """The comparison of one (workload, runner, device) cell. Numbers are ``None`` where not computed."""

    workload: str
    runner: str
    device: str
    verdict: str
    detail: str = ""
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    q: float | None = None
    mdc: float | None = None
    method: str = ""
    n_base: int = 0
    n_current: int = 0
    base_median_s: float | None = None  # the typical step time each side's figure of the ratio is made of
    current_median_s: float | None = None
    missing_in: str = ""  # "current" (or failed there), "baseline" (a new cell) or both; "" when not missing

    @property
    def key(self) -> Key:
        return self.workload, self.runner, self.device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """All cells' verdicts, and the settings that produced them. ``estimator``: what summarises each process
    (:data:`fwbench.stats.ESTIMATORS`); ``paired``: an A/B comparison of rounds (:mod:`fwbench.ab`), whose
    ``variance`` holds each cell's noise decomposition (:class:`fwbench.stats.VarianceParts`)."""

    cells: list[CellVerdict]
    threshold: float
    alpha: float
    notes: list[str] = field(default_factory=list)
    estimator: str = "median"
    paired: bool = False
    variance: dict[Key, Any] = field(default_factory=dict)

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.cells)

    @property
    def counts(self) -> dict[str, int]:
        return {v: self.count(v) for v in VERDICTS}

    def exit_code(self, fail_on_inconclusive: bool = False, fail_on_missing: bool = False) -> int:
        """0 no regression; 1 a cell is slower (or, with ``fail_on_missing``, absent or failed in the current
        run: new cells never fail); 3 a cell is inconclusive or incomparable, with ``fail_on_inconclusive``.
        A regression outranks 3."""
        lost = any(c.verdict == "missing" and c.missing_in in ("current", "both") for c in self.cells)
        if self.count("slower") or (fail_on_missing and lost):
            return 1
        if fail_on_inconclusive and (self.count("inconclusive") or self.count("incomparable")):
            return 3
        return 0

    def to_dict(self) -> dict[str, Any]:
        out = {"threshold": self.threshold, "alpha": self.alpha, "estimator": self.estimator, "paired": self.paired,
               "counts": self.counts, "notes": self.notes, "cells": [_rounded(c.to_dict()) for c in self.cells]}
        if self.variance:
            out["variance"] = [{"workload": w, "runner": r, "device": d, **_rounded(v.to_dict())}
                               for (w, r, d), v in self.variance.items()]
        return out


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    """Six significant digits: what a reader (or a JSON diff) needs, not floating-point noise."""
    return {k: float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v for k, v in d.items()}


def check_settings(threshold: float, alpha: float, estimator: str) -> None:
    from fwbench.stats import ESTIMATORS

    if not 0 < threshold < 1:
        raise ValueError("threshold must be between 0 and 1 (0.05 = 5%)")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}")


def compare(baseline: dict[str, Any], current: dict[str, Any], threshold: float = DEFAULT_THRESHOLD,
            alpha: float = DEFAULT_ALPHA, allow_mismatch: bool = False, estimator: str = DEFAULT_ESTIMATOR
            ) -> Comparison:
    """Verdicts for every cell of either document (checked results documents, see :mod:`fwbench.results`)."""
    import numpy as np

    from fwbench import stats

    check_settings(threshold, alpha, estimator)
    base_groups, cur_groups = group_cells(baseline), group_cells(current)
    keys = list(base_groups) + [k for k in cur_groups if k not in base_groups]
    pending: list[tuple[Key, Any, str, float, float]] = []
    verdicts: dict[Key, CellVerdict] = {}
    policies: dict[str, list[Key]] = {}  # a timing-policy difference -> the compared cells it applies to
    for key in keys:
        w, r, d = key
        if key not in cur_groups:
            verdicts[key] = CellVerdict(w, r, d, "missing", "not in current run", missing_in="current")
            continue
        if key not in base_groups:
            verdicts[key] = CellVerdict(w, r, d, "missing", "new: not in baseline", missing_in="baseline")
            continue
        b_samples, b_why = samples(base_groups[key])
        c_samples, c_why = samples(cur_groups[key])
        if not b_samples or not c_samples:
            why = "; ".join(x for x in (b_why and f"baseline {b_why}", c_why and f"current {c_why}") if x)
            side = "both" if b_why and c_why else "current" if c_why else "baseline"
            verdicts[key] = CellVerdict(w, r, d, "missing", why, missing_in=side)
            continue
        diffs = differences(baseline, base_groups[key], current, cur_groups[key])
        if diffs and not allow_mismatch:
            verdicts[key] = CellVerdict(w, r, d, "incomparable", "; ".join(diffs))
            continue
        policy = timing_difference(baseline, base_groups[key], current, cur_groups[key])
        if policy:
            policies.setdefault(policy, []).append(key)
        try:
            test = stats.compare_processes(b_samples, c_samples, confidence=1.0 - alpha, estimator=estimator)
        except ValueError as exc:  # the minimum of pooled steps: no sound CI
            verdicts[key] = CellVerdict(w, r, d, "inconclusive", str(exc), n_base=len(b_samples),
                                        n_current=len(c_samples))
            continue
        busy = busy_note(base_groups[key], cur_groups[key])
        note = "; ".join(diffs + ([busy] if busy else []))
        b_centre, c_centre = centre(b_samples, test.method, estimator), centre(c_samples, test.method, estimator)
        if busy:  # shown, but neither judged nor counted in the family
            verdicts[key] = CellVerdict(w, r, d, "inconclusive", note, test.ratio, test.ci_low, test.ci_high, test.p,
                                        None, None, test.method, test.n_base, test.n_current, b_centre, c_centre)
            continue
        pending.append((key, test, note, b_centre, c_centre))
    qs = stats.benjamini_hochberg(np.array([t.p for _, t, *_ in pending])) if pending else []
    for (key, test, note, bm, cm), q in zip(pending, qs):
        mdc = float(stats.min_detectable_change(test.se_log, alpha, MDC_POWER, test.df))
        v = decide(test.ratio, float(q), mdc, threshold, alpha)
        verdicts[key] = CellVerdict(*key, v, note, test.ratio, test.ci_low, test.ci_high, test.p, float(q), mdc,
                                    test.method, test.n_base, test.n_current, bm, cm)
    notes = []
    pooled = sum(t.method == "steps" for _, t, *_ in pending)
    if pooled:
        notes.append(f"{pooled} of {len(pending)} compared cell(s) had fewer than 3 successful processes on a side: "
                     "only within-process noise was measured there; use --repeats 3 or more for a gate that "
                     "accounts for process-to-process variation")
    notes += [timing_note(policy, cells) for policy, cells in policies.items()]
    return Comparison([verdicts[k] for k in keys], threshold, alpha, notes, estimator)


def noisy(cell: Cell) -> bool:
    """Whether other processes used a large share of this cell's cores while it was timed."""
    return cell.noisy


def busy_note(base: list[Cell], current: list[Cell]) -> str:
    """Why a cell cannot be judged because the machine was busy, or ``""``."""
    parts = [f"{sum(map(noisy, group))} of {len(group)} {name} process(es)" for name, group in
             (("baseline", base), ("current", current)) if any(map(noisy, group))]
    return "machine busy while timing " + " and ".join(parts) + " (flagged noisy): not judged" if parts else ""


def decide(ratio: float, q: float, mdc: float, threshold: float, alpha: float) -> str:
    """The verdict rule of the module docstring, for one cell."""
    upper, lower = 1.0 + threshold, 1.0 / (1.0 + threshold)
    significant = q < alpha
    if significant and ratio > upper:
        return "slower"
    if significant and ratio < lower:
        return "faster"
    if mdc > threshold or ratio > upper or ratio < lower:
        return "inconclusive"
    return "no change"


def centre(samples: list["np.ndarray"], method: str, estimator: str = "median") -> float:
    """The typical step time the ratio is made of: geometric mean of the process estimates (medians by
    default), or the estimate of the pooled steps."""
    import numpy as np

    from fwbench.stats import process_estimate

    if method in ("processes", "paired"):
        return float(np.exp(np.mean(np.log([process_estimate(s, estimator) for s in samples]))))
    return float(process_estimate(np.concatenate(samples), estimator))


def group_cells(doc: dict[str, Any]) -> dict[Key, list[Cell]]:
    """The document's typed cells by ``(workload, runner, device)``, each group in ``repeat`` order."""
    groups: dict[Key, list[Cell]] = {}
    for cell in typed_cells(doc):
        groups.setdefault((cell.workload, cell.runner, cell.device), []).append(cell)
    return {k: sorted(v, key=lambda c: c.repeat) for k, v in groups.items()}


def samples(cells: list[Cell]) -> tuple[list[np.ndarray], str]:
    """Step samples of the successful processes, and why there are none when so."""
    import numpy as np

    # a zero time (a clock too coarse for the step) has no logarithm and no ratio: such steps are left out
    ok = [x[x > 0] for x in (np.asarray(c.step_s, dtype=float) for c in cells if c.ok)]
    ok = [x for x in ok if len(x)]
    if ok:
        return ok, ""
    bad = cells[0]
    if bad.ok:
        return [], "has no step samples"
    return [], bad.status + (f" ({bad.reason})" if bad.reason else "")


def differences(base_doc: dict[str, Any], base: list[Cell], cur_doc: dict[str, Any], cur: list[Cell]) -> list[str]:
    """Human-readable list of the keys that must match but do not, e.g. ``CPU model: 'A' vs 'B'``."""
    out = []
    b, c = base[0], cur[0]
    for key in CELL_KEYS:
        bk, ck = getattr(b, key), getattr(c, key)
        if key == "options":
            # an option recorded on one side only was added to fwbench in between: the other side ran
            # with its default, so only options recorded on both sides can disagree; the timing policy's
            # options are noted by timing_difference instead
            out += [f"option {k}: {_show(bk[k])} vs {_show(ck[k])}" for k in sorted(set(bk) & set(ck))
                    if bk[k] != ck[k] and k not in TIMING_OPTIONS]
        elif bk != ck:
            out.append(f"{key.replace('_', ' ')}: {_show(bk)} vs {_show(ck)}")
    bw = _speed_definition(base_doc, b.workload)
    cw = _speed_definition(cur_doc, c.workload)
    if bw is not None and cw is not None and bw != cw:
        fields = [k for k in SPEED_KEYS if bw.get(k) != cw.get(k)]
        out.append(f"workload definition differs ({', '.join(fields)})")
    bv, cv = b.get("versions") or {}, c.get("versions") or {}
    for dist in sorted(set(bv) | set(cv)):
        if bv.get(dist) != cv.get(dist):
            out.append(f"{dist} version: {_show(bv.get(dist))} vs {_show(cv.get(dist))}")
    be, ce = base_doc.get("environment", {}), cur_doc.get("environment", {})
    if be.get("cpu") != ce.get("cpu"):
        out.append(f"CPU model: {_show(be.get('cpu'))} vs {_show(ce.get('cpu'))}")
    if b.device == "cuda":
        bg, cg = _gpu_models(be), _gpu_models(ce)
        if bg != cg:
            out.append(f"GPU model: {_show(', '.join(bg) or None)} vs {_show(', '.join(cg) or None)}")
    return out


def timing_mode(cell: Cell) -> str:
    """How ``cell``'s steps were clocked: its ``options.timing``; ``null`` there is the device's default (a run
    that left ``--timing`` out and recorded it unresolved); absent, a cell from before the option existed,
    when every step was synchronised (``per-step``)."""
    from fwbench.config import default_timing_mode

    if "timing" not in cell.options:
        return LEGACY_TIMING_MODE
    mode = cell.options["timing"]
    return mode if isinstance(mode, str) else default_timing_mode(cell.device)


def timing_difference(base_doc: dict[str, Any], base: list[Cell], cur_doc: dict[str, Any], cur: list[Cell]) -> str:
    """How the timing policy of a cell differs between the sides, e.g. ``baseline per-step, current windowed;
    max_seconds 15 → 5``, or ``""``: timing mode, CUDA graphs, then the workload's effective ``[timing]``."""
    b, c = base[0], cur[0]
    parts = []
    bm, cm = timing_mode(b), timing_mode(c)
    if bm != cm:
        parts.append(f"baseline {bm}, current {cm}")
    bg, cg = bool(b.options.get("cuda_graphs", False)), bool(c.options.get("cuda_graphs", False))
    if bg != cg:
        parts.append(f"CUDA graphs: baseline {'on' if bg else 'off'}, current {'on' if cg else 'off'}")
    bt, ct = _timing_table(base_doc, b.workload), _timing_table(cur_doc, c.workload)
    if bt is not None and ct is not None:
        parts += [f"{k} {_number(bt[k])} → {_number(ct[k])}" for k in TIMING_KEYS
                  if k in bt and k in ct and bt[k] != ct[k]]
    return "; ".join(parts)


def timing_note(policy: str, cells: list[Key]) -> str:
    """The note line of one timing-policy difference and the compared cells it applies to."""
    named = ", ".join("/".join(k) for k in cells[:MAX_NOTED_CELLS])
    more = f" and {len(cells) - MAX_NOTED_CELLS} more" if len(cells) > MAX_NOTED_CELLS else ""
    return (f"timing differs: {policy} ({named}{more}); compared anyway, but part of a change there may be the "
            "timing policy's, not the code's")


def _timing_table(doc: dict[str, Any], workload: str) -> dict[str, Any] | None:
    spec = (doc.get("workloads") or {}).get(workload)
    timing = spec.get("timing") if isinstance(spec, dict) else None
    return timing if isinstance(timing, dict) else None


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _speed_definition(doc: dict[str, Any], workload: str) -> dict[str, Any] | None:
    spec = (doc.get("workloads") or {}).get(workload)
    if not isinstance(spec, dict):
        return None
    # through JSON, so that a document fresh from a run (tuples) equals one read from disk (lists)
    return json.loads(json.dumps({k: spec.get(k) for k in SPEED_KEYS}, default=str))


def _gpu_models(env: dict[str, Any]) -> list[str]:
    return sorted(str(g.get("name")) for g in env.get("gpus") or [] if isinstance(g, dict))


def _show(v: Any) -> str:
    return "none" if v is None else repr(v) if isinstance(v, str) else str(v)
