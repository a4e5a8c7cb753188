"""The cross-framework parity check: did every runner do the same math? (pure functions)

Every cell records, from the shared initial weights and the shared batches with dropout removed, the
loss on the first batch (``initial_loss``) and the loss after K optimizer steps (``kstep_loss``). Within
one workload and device, each runner is compared with a reference runner (``torch`` where it ran):

- ``initial_loss`` must agree within rtol = atol = 1e-4 (fp32: the same weights, the same batch; only
  summation order differs);
- ``kstep_loss`` within rtol = atol = 2e-3: K steps of Adam amplify rounding differences a little, and
  frameworks place Adam's epsilon slightly differently (Keras adds it to sqrt(v), PyTorch to
  sqrt(v)/sqrt(1-beta2^t)).

- the batch-norm moving statistics after the K steps (``bn_stats``: per batch-norm node its moving means,
  then its moving variances), where the network has batch norm, within the K-step tolerance. Each cell
  records the largest absolute difference from the reference (``bn_max_abs_diff``), and each group the
  largest of its cells. PyTorch feeds the unbiased batch variance (n/(n-1)) into its moving variance where
  Keras and TensorFlow use the biased one: over a convolution's n = batch x height x width values the
  difference is far below the tolerance, but a batch norm over flat features with a small batch can show it
  (see ``docs/workloads.md``).

An inference cell (the latency, throughput and cold-start scenarios) records instead the first rows of its
logits on the shared batch 0 (``logits``); it must agree with the reference runner's within
``atol + rtol * max |reference|`` (:data:`OUTPUT_TOLERANCES`; fp32: 1e-5 + 1e-4 x the largest logit), and records
``max_abs_diff`` and ``tolerance``. This is how a deployed runtime (ONNX Runtime, LiteRT, AOTInductor) shows
that its export of the shared weights computes what the framework computes.

Per cell ``parity.status`` is ``reference``, ``ok``, ``mismatch`` (with ``detail``) or ``n/a`` (no losses,
e.g. a failed cell, or the only runner of its group). Reduced precision widens both tolerances
(``TOLERANCES``).
"""

from __future__ import annotations

import math
from typing import Any

TOLERANCES = {  # precision -> (initial rtol=atol, K-step rtol=atol)
    "fp32": (1e-4, 2e-3),
    "bf16": (2e-2, 5e-2),
    "fp16": (1e-2, 3e-2),
}
EXCLUDED_FAMILIES = ("fake",)
# Output parity of inference cells: max |Δ logits| <= atol + rtol * max |reference logits| (per precision)
OUTPUT_TOLERANCES = {"fp32": (1e-5, 1e-4), "bf16": (1e-2, 2e-2), "fp16": (5e-3, 1e-2)}


def output_difference(reference: Any, logits: Any, precision: str = "fp32") -> tuple[float, float, str]:
    """(max |Δ|, the tolerance, a problem or "") of ``logits`` against the reference runner's ``reference``
    (nested lists or arrays of one shape: the first rows of the same batch's logits)."""
    atol, rtol = OUTPUT_TOLERANCES.get(precision, OUTPUT_TOLERANCES["fp32"])
    a, b = _flat(logits), _flat(reference)
    if a is None or b is None or _shape(logits) != _shape(reference):
        return math.inf, atol, f"logits of shape {_shape(logits)} vs the reference's {_shape(reference)}"
    if not all(x is not None and math.isfinite(x) for x in a):
        return math.inf, atol, "logits are not finite"
    tol = atol + rtol * max((abs(y) for y in b if y is not None and math.isfinite(y)), default=0.0)
    worst = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    return worst, tol, "" if worst <= tol else f"max |Δ logits| {worst:.3g} > tolerance {tol:.3g}"


def _flat(v: Any) -> list[float] | None:
    if v is None or isinstance(v, (str, bytes, dict, bool)):
        return None
    if not hasattr(v, "__len__") and hasattr(v, "__float__"):  # a Python or NumPy scalar
        return [float(v)]
    try:
        items = list(v)
    except TypeError:
        return None
    out: list[float] = []
    for x in items:
        f = _flat(x)
        if f is None:
            return None
        out += f
    return out


def _shape(v: Any) -> list[int]:
    shape = []
    while isinstance(v, (list, tuple)) or hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
        shape.append(len(v))
        if not len(v):
            break
        v = v[0]
    return shape


def close(a: float, b: float, tol: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol + tol * abs(b)


def _batchnorm_difference(p: dict[str, Any], rp: dict[str, Any], tol: float) -> tuple[float, str] | None:
    """(largest |difference| of the moving statistics, a problem or ""), or None where either cell lacks them."""
    a, b = p.get("bn_stats"), rp.get("bn_stats")
    if not a or not b:
        return None
    if len(a) != len(b) or p.get("bn_channels") != rp.get("bn_channels"):
        return math.inf, "batch-norm statistics of another shape than the reference's"
    if not all(x is not None and y is not None and math.isfinite(x) and math.isfinite(y) for x, y in zip(a, b)):
        return math.inf, "batch-norm statistics are not finite"
    worst = max(abs(x - y) for x, y in zip(a, b))
    bad = next((i for i, (x, y) in enumerate(zip(a, b)) if not close(x, y, tol)), None)
    if bad is None:
        return worst, ""
    return worst, f"batch-norm moving {_stat_name(bad, p)} {a[bad]:.6g} vs {b[bad]:.6g} (largest difference {worst:.3g})"


def _stat_name(index: int, p: dict[str, Any]) -> str:
    """Which node's statistic the flat index ``index`` of ``bn_stats`` is."""
    offset = 0
    for node, c in zip(p.get("bn_nodes") or [], p.get("bn_channels") or []):
        if index < offset + 2 * c:
            kind = "mean" if index - offset < c else "variance"
            return f"{kind} of {node!r}, channel {(index - offset) % c}"
        offset += 2 * c
    return f"statistic {index}"


def evaluate(cells: list[dict[str, Any]], reference: str = "torch", precision: str = "fp32") -> dict[str, Any]:
    """Set ``cell['parity']['status']`` on every cell and return the run-level summary.

    Returns ``{"reference", "tolerances", "groups": [...], "mismatches": [cell ids], "ok": bool}``.
    """
    t_init, t_k = TOLERANCES.get(precision, TOLERANCES["fp32"])
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for cell in cells:
        p = cell.get("parity")
        if not isinstance(p, dict):
            continue
        p["status"], p["detail"] = "n/a", ""
        if cell.get("family") in EXCLUDED_FAMILIES or (p.get("initial_loss") is None and not p.get("logits")):
            continue
        groups.setdefault((cell["workload"], cell["device"], cell.get("repeat", 0)), []).append(cell)
    summary: dict[str, Any] = {"reference": reference, "precision": precision,
                               "tolerances": {"initial_loss": t_init, "kstep_loss": t_k,
                                              "output_atol": OUTPUT_TOLERANCES.get(precision, OUTPUT_TOLERANCES["fp32"])[0],
                                              "output_rtol": OUTPUT_TOLERANCES.get(precision, OUTPUT_TOLERANCES["fp32"])[1]},
                               "groups": [], "mismatches": []}
    for (workload, device, repeat), members in groups.items():
        if len(members) < 2:
            continue
        ref = next((c for c in members if c["runner"] == reference), members[0])
        rp = ref["parity"]
        rp["status"] = "reference"
        group_ok = True
        group_bn: float | None = None
        for cell in members:
            if cell is ref:
                continue
            p = cell["parity"]
            problems = []
            if p.get("logits") or rp.get("logits"):  # an inference cell: its outputs against the reference's
                worst, tol, problem = output_difference(rp.get("logits"), p.get("logits"), precision)
                p["max_abs_diff"], p["tolerance"], p["reference"] = worst, tol, ref["runner"]
                problems += [f"{problem} ({ref['runner']})"] if problem else []
            elif not close(p["initial_loss"], rp["initial_loss"], t_init):
                problems.append(f"initial loss {p['initial_loss']:.6g} vs {rp['initial_loss']:.6g} ({ref['runner']})")
            if p.get("kstep_loss") is not None and rp.get("kstep_loss") is not None \
                    and not close(p["kstep_loss"], rp["kstep_loss"], t_k):
                problems.append(f"loss after {p.get('k')} steps {p['kstep_loss']:.6g} vs {rp['kstep_loss']:.6g}")
            bn = _batchnorm_difference(p, rp, t_k)
            if bn is not None:
                p["bn_max_abs_diff"], problem = bn
                group_bn = max(group_bn or 0.0, bn[0])
                if problem:
                    problems.append(problem)
            p["status"] = "mismatch" if problems else "ok"
            p["detail"] = "; ".join(problems)
            if problems:
                group_ok = False
                summary["mismatches"].append(cell["id"])
        summary["groups"].append({"workload": workload, "device": device, "repeat": repeat,
                                  "reference": ref["runner"], "ok": group_ok,
                                  "runners": [c["runner"] for c in members], "bn_max_abs_diff": group_bn})
    summary["ok"] = not summary["mismatches"]
    return summary
