"""The verdict of an A/B document (``fwbench ab``): each cell's rounds paired, side B against side A (pure).

In round ``i`` a cell ran on side A and on side B back to back, each in a fresh worker process (the order
alternates between rounds, see :mod:`fwbench.ab_run`). Whatever the machine did during that round (CPU
frequency, neighbours, thermal state) is common to both processes, so it cancels in the per-round log
ratio ``d_i = log e_Bi - log e_Ai``, where ``e`` is a process's estimate (its median step time, its 10th
percentile or its minimum: :data:`fwbench.stats.ESTIMATORS`). The ratio B / A is ``exp(mean d)`` with a
paired t-interval (``R - 1`` degrees of freedom), the p-values of all cells are adjusted together with
Benjamini–Hochberg, and the verdict rule is :func:`fwbench.compare.decide` (``ratio`` > 1: B is slower).

A round takes part only when both of its processes succeeded and neither was flagged ``noisy`` (the
machine was busy while it was timed); a cell with fewer than :data:`MIN_ROUNDS` such rounds is
``inconclusive`` and says why. Each cell also gets its noise decomposed (:func:`fwbench.stats.variance_parts`).
"""

from __future__ import annotations

from typing import Any

from fwbench.cells import Cell
from fwbench.compare import (DEFAULT_ALPHA, DEFAULT_THRESHOLD, MDC_POWER, CellVerdict, Comparison, Key,
                             check_settings, decide, noisy)
from fwbench.results import cells as typed_cells

SIDES = ("A", "B")
MIN_ROUNDS = 3
DEFAULT_ESTIMATOR = "median"


def rounds_by_cell(doc: dict[str, Any]) -> dict[Key, dict[str, dict[int, Cell]]]:
    """``(workload, runner, device)`` -> side -> round -> cell, in the order cells first appear."""
    out: dict[Key, dict[str, dict[int, Cell]]] = {}
    for cell in typed_cells(doc):
        side = cell.get("side")
        if side in SIDES:
            out.setdefault((cell.workload, cell.runner, cell.device), {s: {} for s in SIDES})[side][cell.repeat] = cell
    return out


def steps(cell: Cell) -> Any:
    import numpy as np

    x = np.asarray(cell.step_s, dtype=float)
    return x[x > 0]


def compare_sides(doc: dict[str, Any], threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                  estimator: str = DEFAULT_ESTIMATOR) -> Comparison:
    """One paired verdict per cell of an A/B document (A is the baseline, B the current side)."""
    import numpy as np

    from fwbench import stats
    from fwbench.compare import centre

    check_settings(threshold, alpha, estimator)
    verdicts: dict[Key, CellVerdict] = {}
    pending: list[tuple[Key, tuple[float, ...], list[Any], list[Any], str]] = []
    variance: dict[Key, stats.VarianceParts] = {}
    groups = rounds_by_cell(doc)
    for key, sides in groups.items():
        w, r, d = key
        a, b = sides["A"], sides["B"]
        if not any(c.ok for c in a.values()) or not any(c.ok for c in b.values()):
            side = "both" if not any(c.ok for c in a.values()) and not any(c.ok for c in b.values()) else \
                "current" if not any(c.ok for c in b.values()) else "baseline"
            first_bad = next((c for c in (list(b.values()) + list(a.values())) if not c.ok), None)
            why = f"no successful process on side {'B' if side == 'current' else 'A' if side == 'baseline' else 'A or B'}"
            if first_bad is not None:
                why += f" ({first_bad.status}" + (f": {first_bad.reason}" if first_bad.reason else "") + ")"
            verdicts[key] = CellVerdict(w, r, d, "missing", why, missing_in=side)
            continue
        clean, dropped_noisy, dropped_failed = [], 0, 0
        for i in sorted(set(a) & set(b)):
            ca, cb = a[i], b[i]
            if not (ca.ok and cb.ok and len(steps(ca)) and len(steps(cb))):
                dropped_failed += 1
            elif noisy(ca) or noisy(cb):
                dropped_noisy += 1
            else:
                clean.append(i)
        dropped_failed += len(set(a) ^ set(b))
        why = ", ".join(x for x in (f"{dropped_noisy} round(s) left out: machine busy (noisy)" if dropped_noisy else "",
                                    f"{dropped_failed} round(s) left out: a side failed" if dropped_failed else "") if x)
        a_steps, b_steps = [steps(a[i]) for i in clean], [steps(b[i]) for i in clean]
        if len(clean) >= 2:
            variance[key] = stats.variance_parts(a_steps, b_steps, estimator)
        if len(clean) < MIN_ROUNDS:
            verdicts[key] = CellVerdict(w, r, d, "inconclusive", "; ".join(
                x for x in (f"only {len(clean)} clean round(s), {MIN_ROUNDS} needed", why) if x),
                n_base=len(clean), n_current=len(clean), method="paired")
            continue
        ea = np.array([stats.process_estimate(x, estimator) for x in a_steps])
        eb = np.array([stats.process_estimate(x, estimator) for x in b_steps])
        test = stats.paired_log_ratio(ea, eb, confidence=1.0 - alpha)
        pending.append((key, test, a_steps, b_steps, why))
    qs = stats.benjamini_hochberg(np.array([t[3] for _, t, *_ in pending])) if pending else []
    for (key, (ratio, lo, hi, p, se, df), a_steps, b_steps, why), q in zip(pending, qs):
        mdc = float(stats.min_detectable_change(se, alpha, MDC_POWER, df))
        v = decide(ratio, float(q), mdc, threshold, alpha)
        verdicts[key] = CellVerdict(*key, v, why, ratio, lo, hi, p, float(q), mdc, "paired", len(a_steps),
                                    len(b_steps), centre(a_steps, "paired", estimator),
                                    centre(b_steps, "paired", estimator))
    return Comparison([verdicts[k] for k in groups], threshold, alpha, side_notes(doc), estimator, True, variance)


def side_notes(doc: dict[str, Any]) -> list[str]:
    """What differs between the two sides' environments (their interpreters' versions and variables)."""
    sides = doc.get("ab", {}).get("sides", {})
    if set(sides) != set(SIDES):
        return []
    a, b = sides["A"], sides["B"]
    diffs = []
    if a["python"] != b["python"]:
        diffs.append(f"interpreter {a['python']} vs {b['python']}")
    ea, eb = a["environment"], b["environment"]
    if ea.get("python") != eb.get("python"):
        diffs.append(f"Python {ea.get('python')} vs {eb.get('python')}")
    va, vb = ea.get("versions") or {}, eb.get("versions") or {}
    diffs += [f"{k} {va.get(k, 'absent')} vs {vb.get(k, 'absent')}" for k in sorted(set(va) | set(vb))
              if va.get(k) != vb.get(k)]
    env_a, env_b = a.get("env") or {}, b.get("env") or {}
    diffs += [f"{k}={env_a.get(k, '(unset)')} vs {k}={env_b.get(k, '(unset)')}"
              for k in sorted(set(env_a) | set(env_b)) if env_a.get(k) != env_b.get(k)]
    if not diffs:
        return ["A/A: both sides ran the same interpreter with the same variables; any verdict other than "
                "no change or inconclusive is a false alarm"]
    return ["the sides differ in: " + "; ".join(diffs)]


def describe_side(side: dict[str, Any]) -> str:
    """``/usr/bin/python3 (Python 3.11.2; torch 2.13.0) TF_ENABLE_ONEDNN_OPTS=0``."""
    env = side.get("environment", {})
    versions = env.get("versions") or {}
    fw = "; ".join(f"{k} {versions[k]}" for k in ("torch", "tensorflow", "keras", "jax") if k in versions)
    extra = " ".join(f"{k}={v}" for k, v in (side.get("env") or {}).items())
    return f"{side['python']} (Python {env.get('python', '?')}" + (f"; {fw}" if fw else "") + ")" \
        + (f" {extra}" if extra else "")
