"""Verdicts on the source document's claims (pure): one rule per (table, row, column), applied to the
values the row's evidence measured, giving *supported*, *contradicted*, *mixed* or *not measured* and one
short sentence of why. docs/report.md ("Verdict rules") states every rule in words; keep the two in step.

A rule sees the whole row (both columns' :class:`~fwbench.report.model.Evidence`), because some claims are
two sides of one measurement (graph mode faster <-> eager mode slower). Speed comparisons count only
differences whose 95% CI excludes 1 (:attr:`fwbench.estimate.Ratio.apart`): "beyond noise".
"""

from __future__ import annotations

from typing import Any, Callable

from fwbench.report.labels import phrase
from fwbench.report.model import Evidence

SUPPORTED, CONTRADICTED, MIXED, NOT_MEASURED = "supported", "contradicted", "mixed", "not_measured"
FIRST_STEP_MARGIN = 1.5  # a graph runner's first step must take this many times its eager counterpart's
KERAS3_BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3's training back ends (Theano and CNTK are not)
STATIC = ("torch-compile", "tf-graph", "tf-xla")
DYNAMIC = ("torch", "tf-eager")

Verdict = tuple[str, str]
Row = dict[str, Evidence]
Rule = Callable[[Row, str], Verdict]


def tally(flags: list[bool]) -> str:
    """All true: supported; none: contradicted; some: mixed."""
    return SUPPORTED if all(flags) else CONTRADICTED if not any(flags) else MIXED


def _x(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def _span(xs: list[float]) -> str:
    lo, hi = min(xs), max(xs)
    return f"{_x(lo)}×" if _x(lo) == _x(hi) else f"{_x(lo)}–{_x(hi)}×"


def _names(xs: list[str]) -> str:
    return ", ".join(xs)


# ---------------------------------------------------------------- readable values (debug-value probe)

def reads(ev: Evidence, runners: tuple[str, ...]) -> dict[str, bool]:
    """Runner -> whether the debug-value probe read a concrete value inside its training step."""
    return {r: bool(ev.values[f"{r}:debug_value"]) for r in runners if f"{r}:debug_value" in ev.values}


def _why_reads(lang: str, found: dict[str, bool]) -> str:
    yes, no = [r for r, v in found.items() if v], [r for r, v in found.items() if not v]
    parts = ([phrase(lang, "why_read_yes", runners=_names(yes))] if yes else []) + \
            ([phrase(lang, "why_read_no", runners=_names(no))] if no else [])
    return phrase(lang, "why_sep").join(parts)


def _no_data(lang: str, what: str) -> Verdict:
    return NOT_MEASURED, phrase(lang, "why_no_data", what=what)


def all_read(col: str, runners: tuple[str, ...], want: bool = True) -> Rule:
    """Supported when every runner's step reads a value (``want``) / none does (not ``want``)."""
    def rule(row: Row, lang: str) -> Verdict:
        found = reads(row[col], runners)
        if not found:
            return _no_data(lang, "debug-value")
        return tally([v == want for v in found.values()]), _why_reads(lang, found)
    return rule


def eager_not_graph(col: str, eager: str, graph: str) -> Rule:
    """Supported when ``eager`` reads a value and ``graph`` does not; contradicted when ``eager`` does not."""
    def rule(row: Row, lang: str) -> Verdict:
        found = reads(row[col], (eager, graph))
        if eager not in found:
            return _no_data(lang, f"debug-value ({eager})")
        if not found[eager]:
            return CONTRADICTED, _why_reads(lang, found)
        return (MIXED if found.get(graph, True) else SUPPORTED), _why_reads(lang, found)
    return rule


def eager_reads(row: Row, lang: str) -> Verdict:
    """PyTorch's dynamic graph: the eager ``torch`` runner ran, and its training step read a concrete value."""
    if not row["pytorch"].values.get("torch:ran"):
        return _no_data(lang, "torch")
    return all_read("pytorch", ("torch",))(row, lang)


def graph_both(row: Row, lang: str) -> Verdict:
    """TensorFlow's static graph and eager mode: tf-eager reads a value, tf-graph's traced step does not."""
    found = reads(row["tensorflow"], ("tf-eager", "tf-graph"))
    if len(found) < 2:
        return _no_data(lang, "debug-value (tf-eager, tf-graph)")
    return tally([found["tf-eager"], not found["tf-graph"]]), _why_reads(lang, found)


def torch_debugging(row: Row, lang: str) -> Verdict:
    """A value readable in torch's eager step, and a shape error that names the shapes."""
    ev = row["pytorch"]
    found = reads(ev, ("torch",))
    if not found:
        return _no_data(lang, "debug-value (torch)")
    why = _why_reads(lang, found)
    if not found["torch"]:
        return CONTRADICTED, why
    names = ev.values.get("torch:names_shapes")
    if names is None:
        return SUPPORTED, why
    yn = phrase(lang, "yes" if names else "no")
    return (SUPPORTED if names else MIXED), why + phrase(lang, "why_sep") + phrase(lang, "why_shape_names", yn=yn)


# ---------------------------------------------------------------- speed (repeats combined, CIs)

def _direction(c: dict[str, Any]) -> int:
    """+1: faster beyond noise; -1: slower beyond noise; 0: within noise."""
    if c["low"] is None or c["high"] is None:
        return 0
    return 1 if c["low"] > 1.0 else -1 if c["high"] < 1.0 else 0


def graph_faster(row: Row, lang: str) -> Verdict:
    """Graph mode vs its eager counterpart on every (workload, device): faster everywhere beyond noise:
    supported; slower everywhere: contradicted; else mixed. Both columns of the row read it."""
    comps = row["static"].values.get("graph_vs_eager") or []
    if not comps:
        return _no_data(lang, "graph vs eager")
    dirs = [_direction(c) for c in comps]
    faster = [c["speedup"] for c, d in zip(comps, dirs) if d > 0]
    if len(faster) == len(comps):
        return SUPPORTED, phrase(lang, "why_speed_all", span=_span(faster))
    if dirs.count(-1) == len(comps):
        return CONTRADICTED, phrase(lang, "why_speed_none")
    return MIXED, phrase(lang, "why_speed_some", f=len(faster), n=len(comps), s=dirs.count(-1), w=dirs.count(0))


def accelerated(col: str) -> Rule:
    """A GPU/TPU cell against the same runner on CPU, per workload, beyond noise."""
    def rule(row: Row, lang: str) -> Verdict:
        comps = row[col].values.get("over_cpu") or []
        if not comps:
            return NOT_MEASURED, phrase(lang, "why_no_accel")
        devices = _names(sorted({c["device"] for c in comps}))
        dirs = [_direction(c) for c in comps]
        faster = [c["speedup"] for c, d in zip(comps, dirs) if d > 0]
        if len(faster) == len(comps):
            return SUPPORTED, phrase(lang, "why_accel_all", devices=devices, span=_span(faster))
        if dirs.count(-1) == len(comps):
            return CONTRADICTED, phrase(lang, "why_accel_none", devices=devices)
        return MIXED, phrase(lang, "why_accel_some", devices=devices, f=len(faster), n=len(comps))
    return rule


# ---------------------------------------------------------------- first steps, retraces

def first_step_cost(row: Row, lang: str) -> Verdict:
    """Graph runners' first step (tracing / compiling) against their eager counterpart's first step."""
    cases = row["static"].values.get("first_steps") or []
    if not cases:
        return _no_data(lang, "first_step_s")
    ratios = [c["graph_first_s"] / c["eager_first_s"] for c in cases if c["eager_first_s"] > 0]
    if not ratios:
        return _no_data(lang, "first_step_s")
    longer = [r >= FIRST_STEP_MARGIN for r in ratios]
    verdict = tally(longer)
    if verdict == SUPPORTED:
        return verdict, phrase(lang, "why_first_all", m=FIRST_STEP_MARGIN, span=_span(ratios))
    return verdict, phrase(lang, "why_first_some", m=FIRST_STEP_MARGIN, k=sum(longer), n=len(ratios))


def retraces(col: str, runners: tuple[str, ...], want: bool) -> Rule:
    """Whether a new batch size (shape-change) or sequence length (seq-length) made each runner retrace:
    every one (``want`` True) / none (``want`` False) is supported."""
    def rule(row: Row, lang: str) -> Verdict:
        values = row[col].values
        found: dict[str, bool] = {}
        for r in runners:
            counts = [values.get(f"{r}:retraces_on_new_shape"), values.get(f"{r}:retraces_on_new_length")]
            counts = [c for c in counts if c is not None]
            if counts:
                found[r] = any(c > 0 for c in counts)
        if not found:
            return _no_data(lang, "shape-change")
        yes, no = [r for r, v in found.items() if v], [r for r, v in found.items() if not v]
        why = phrase(lang, "why_sep").join(([phrase(lang, "why_retrace_yes", runners=_names(yes))] if yes else [])
                        + ([phrase(lang, "why_retrace_no", runners=_names(no))] if no else []))
        return tally([v == want for v in found.values()]), why
    return rule


# ---------------------------------------------------------------- exports, distributed, back ends

def exports(col: str) -> Rule:
    """Every export format that ran reproduces the model's outputs: supported; none: contradicted."""
    def rule(row: Row, lang: str) -> Verdict:
        ev = row[col]
        ok = [k.split(":")[0] for k, v in ev.values.items() if k.endswith(":reproduces") and v]
        bad = [k for k, v in ev.values.items() if k.endswith(":reproduces") and not v]
        failed = sum(f.status == "failed" for f in ev.findings)
        skipped = sum(f.status == "skipped" for f in ev.findings)
        n = len(ok) + len(bad) + failed
        if not n:
            return _no_data(lang, "export")
        why = phrase(lang, "why_export", k=len(ok), n=n) + (phrase(lang, "why_skipped", m=skipped) if skipped else "")
        return tally([True] * len(ok) + [False] * (n - len(ok))), why + phrase(lang, "why_targets")
    return rule


def distributed(col: str) -> Rule:
    """Every data-parallel run of the family succeeded: supported; none: contradicted; else mixed."""
    def rule(row: Row, lang: str) -> Verdict:
        ev = row[col]
        ok = sum(1 for k in ev.values if k.endswith(":scaling_efficiency"))
        failed = sum(f.status == "failed" for f in ev.findings)
        if not ok + failed:
            return _no_data(lang, "distributed")
        return tally([True] * ok + [False] * failed), phrase(lang, "why_distributed", k=ok, n=ok + failed)
    return rule


def keras_backends(row: Row, lang: str) -> Verdict:
    """Several back ends ran, but the named Theano and CNTK are not Keras 3 back ends: mixed; one ran:
    contradicted (nothing backs "several", and the list is wrong)."""
    ran = row["keras"].values.get("keras_backends_ran") or []
    if not ran:
        return _no_data(lang, "keras, keras-torch, keras-jax")
    why = phrase(lang, "why_backends", ran=_names(ran), keras3=_names(list(KERAS3_BACKENDS)))
    return (MIXED if len(ran) > 1 else CONTRADICTED), why


def tf_only(row: Row, lang: str) -> Verdict:
    names = row["tensorflow"].values.get("tf_runners_ran") or []
    if not names:
        return _no_data(lang, "tf-eager")
    return SUPPORTED, phrase(lang, "why_tf_only", names=_names(names))


def price_only(key: str) -> Rule:
    """The row's evidence measures something else than the claim (run-time cost, not development speed)."""
    def rule(row: Row, lang: str) -> Verdict:
        return NOT_MEASURED, phrase(lang, key)
    return rule


# (table, row) -> column -> rule. Rows not listed are opinions: "not measured".
RULES: dict[tuple[str, str], dict[str, Rule]] = {
    ("pytorch_tensorflow", "graph"): {"pytorch": eager_reads, "tensorflow": graph_both},
    ("pytorch_tensorflow", "debugging"): {"pytorch": torch_debugging,
                                          "tensorflow": eager_not_graph("tensorflow", "tf-eager", "tf-graph")},
    ("pytorch_tensorflow", "hardware"): {"pytorch": accelerated("pytorch"), "tensorflow": accelerated("tensorflow")},
    ("pytorch_tensorflow", "deployment"): {"pytorch": exports("pytorch"), "tensorflow": exports("tensorflow")},
    ("pytorch_tensorflow", "distributed"): {"pytorch": distributed("pytorch"), "tensorflow": distributed("tensorflow")},
    ("keras_tensorflow", "api_level"): {"keras": price_only("why_api_price"),
                                        "tensorflow": price_only("why_api_control")},
    ("keras_tensorflow", "backends"): {"keras": keras_backends, "tensorflow": tf_only},
    ("keras_tensorflow", "distributed"): {"keras": distributed("keras"), "tensorflow": distributed("tensorflow")},
    ("keras_tensorflow", "debugging"): {"keras": all_read("keras", ("keras",)),
                                        "tensorflow": eager_not_graph("tensorflow", "tf-eager", "tf-graph")},
    ("keras_tensorflow", "hardware"): {"keras": accelerated("keras"), "tensorflow": accelerated("tensorflow")},
    ("static_dynamic", "construction"): {"static": first_step_cost, "dynamic": first_step_cost},
    ("static_dynamic", "flexibility"): {"static": retraces("static", STATIC + ("keras-jax",), True),
                                        "dynamic": retraces("dynamic", DYNAMIC, False)},
    ("static_dynamic", "optimisation"): {"static": graph_faster, "dynamic": graph_faster},
    ("static_dynamic", "debugging"): {"static": all_read("static", ("torch-compile", "tf-graph"), want=False),
                                      "dynamic": all_read("dynamic", DYNAMIC)},
}


def judge(table: str, row: str, evidence: Row, lang: str) -> None:
    """Set ``verdict`` and ``why`` on every column's evidence of one row."""
    rules = RULES.get((table, row), {})
    for col, ev in evidence.items():
        if ev.status == "not_measured" or col not in rules:
            ev.verdict, ev.why = NOT_MEASURED, phrase(lang, "why_opinion")
        elif ev.status != "measured":
            ev.verdict, ev.why = NOT_MEASURED, phrase(lang, "why_" + ev.status)
        else:
            ev.verdict, ev.why = rules[col](evidence, lang)
