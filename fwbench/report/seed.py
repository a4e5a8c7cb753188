"""The source document's three comparison tables, each cell filled with measured evidence (pure).

Which measurement backs which row is listed in :data:`EVIDENCE` (DESIGN §5); rows without an entry are
opinions no measurement can back, shown with the document's claim marked "not measured". Evidence
missing from the given results names the command that would produce it.
"""

from __future__ import annotations

import copy
import shlex
import statistics

from typing import Callable

from fwbench import units
from fwbench.report.corpus import Corpus, Record, source
from fwbench.report.derived import break_even_steps
from fwbench.report.labels import ROWS, TABLES, phrase
from fwbench.report.model import Evidence, SeedRow, SeedTable
from fwbench.report.perf import median
from fwbench.report.scenarios import base_workload, scenario
from fwbench.report.scenario_evidence import best_batch, deployed_latency
from fwbench.report.probe_text import describe_probe, error_kind, probe_detail
from fwbench.report.speeds import centre, group, group_source, ratio_text, speed_ratio
from fwbench.report.verdicts import judge

# Each framework family's eager runner and its graph-mode runners.
EAGER_GRAPH = {"torch": ("torch", ("torch-compile",)), "tensorflow": ("tf-eager", ("tf-graph", "tf-xla"))}
STATIC = ("torch-compile", "tf-graph", "tf-xla")
DYNAMIC = ("torch", "tf-eager")
EAGER_OF = {"torch-compile": "torch", "tf-graph": "tf-eager", "tf-xla": "tf-eager"}
KERAS_BACKENDS = {"keras": "tensorflow", "keras-torch": "torch", "keras-jax": "jax"}
FAMILY_RUNNERS = {"torch": ("torch", "torch-compile"), "tensorflow": ("tf-eager", "tf-graph", "tf-xla"),
                  "keras": tuple(KERAS_BACKENDS)}
EXPORTS = {"torch": ("export-torch", "export-onnx", "export-torchscript"),
           "tensorflow": ("export-savedmodel", "export-tflite", "export-tf2onnx")}
EXPORT_RUNNER = {"torch": "torch", "tensorflow": "tf-graph"}
DEVICES = ("cpu", "cuda", "tpu")

Fill = Callable[[Evidence, Corpus, str], None]


def need(ev: Evidence, corpus: Corpus, runners: tuple[str, ...] | list[str], workload: str | None = None,
         extra: str = "") -> None:
    """Ask for a run of ``runners`` on ``workload`` (default: the workloads these results hold)."""
    workloads = [workload] if workload else (corpus.workloads() or ["cnn"])
    # a scenario's variant workload (``cnn@latency``) is run by naming its base workload
    bases = {r["workload"]: base_workload(r) for r in corpus.cells}
    workloads = list(dict.fromkeys(bases.get(w, w) for w in workloads))
    # the names are user data: shell-quoted, so a suggested command is safe to paste
    ev.need_run(runners, " ".join(f"-w {shlex.quote(w)}" for w in workloads) + extra)


def _label(corpus: Corpus, workload: str, device: str) -> str:
    """``cnn``, or ``cnn/cuda`` when the results hold more than one device."""
    devices = {d for _, d in corpus.groups()}
    return workload if len(devices) == 1 else f"{workload}/{device}"


def _t(rec: Record) -> str:
    return units.seconds(median(rec))


def _failed(ev: Evidence, lang: str, rec: Record, what: str) -> None:
    """A cell or probe that did not succeed: its status and the kind of its reason, one short line; the
    full reason goes to the report's appendix."""
    status = rec["status"]
    reason = " ".join(str(rec.get("reason") or "").split())
    key = "skipped_short" if status == "skipped" else "failed_short"
    kind = error_kind(reason) if reason else status
    ev.fail(phrase(lang, key, what=what, status=status, kind=kind), [source(rec, "status", "reason")],
            detail=reason if reason != kind else "", status="skipped" if status == "skipped" else "failed")


def compare_runners(ev: Evidence, corpus: Corpus, lang: str, base: str, other: str) -> None:
    """Per (workload, device): how many times faster ``other`` is than ``base``, repeats combined, with its
    CI (``values["graph_vs_eager"]``, read by the verdict rules)."""
    seen = False
    for workload, device in corpus.groups():
        a, b = group(corpus, base, workload, device), group(corpus, other, workload, device)
        if not a and not b:
            continue
        seen = True
        label = _label(corpus, workload, device)
        for recs, name in ((a, base), (b, other)):
            if not recs:
                need(ev, corpus, [name], workload)
            elif not any(r.ok for r in recs):
                _failed(ev, lang, recs[0], f"{label} {name}")
            else:
                ev.values[f"{name}:ran"] = True
        got = speed_ratio(a, b) if a and b else None
        if got is None:
            continue
        x, lo, hi, uncertain = got
        ta, tb = units.seconds(centre(a)), units.seconds(centre(b))
        text = phrase(lang, "vs_short", a=base, b=other, ratio=ratio_text(lang, x, lo, hi, uncertain), ta=ta, tb=tb)
        ev.add(f"{label}: {text}", [group_source(a, "step_s"), group_source(b, "step_s")],
               **{f"{label}:{other}_vs_{base}": x})
        ev.values.setdefault("graph_vs_eager", []).append(
            {"workload": workload, "device": device, "eager": base, "graph": other, "speedup": x, "low": lo,
             "high": hi, "uncertain": uncertain})
    if not seen:
        need(ev, corpus, [base, other])


def graph_vs_eager(family: str) -> Fill:
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        eager, graphs = EAGER_GRAPH[family]
        for g in graphs:
            compare_runners(ev, corpus, lang, eager, g)
    return fill


def static_steps(ev: Evidence, corpus: Corpus, lang: str) -> None:
    for runner in STATIC:
        compare_runners(ev, corpus, lang, EAGER_OF[runner], runner)


def dynamic_steps(ev: Evidence, corpus: Corpus, lang: str) -> None:
    _steady(ev, corpus, lang, DYNAMIC)


def _steady(ev: Evidence, corpus: Corpus, lang: str, runners: tuple[str, ...]) -> None:
    seen = False
    for runner in runners:
        for workload, device in corpus.groups():
            recs = group(corpus, runner, workload, device)
            if not recs:
                continue
            seen = True
            label = _label(corpus, workload, device)
            t = centre(recs)
            if t:
                ev.add(f"{label}: " + phrase(lang, "steady", runner=runner, t=units.seconds(t)),
                       [group_source(recs, "step_s")], **{f"{label}:{runner}_median_s": t})
            else:
                _failed(ev, lang, recs[0], f"{label} {runner}")
    if not seen:
        need(ev, corpus, runners)


def _first_and_steady(corpus: Corpus, rec: Record) -> tuple[float, float, list[Record], list[str]]:
    """A cell's first step (median over its repeats, as the performance table shows it), its steady step
    time (the repeats combined), the repeats, and the sources of both."""
    recs = group(corpus, rec["runner"], rec["workload"], rec["device"])
    firsts = [r["first_step_s"] for r in recs if r.ok and r.get("first_step_s") is not None]
    first = float(statistics.median(firsts)) if firsts else rec["first_step_s"]
    return first, centre(recs) or 0.0, recs, [group_source(recs, "first_step_s", "step_s")]


def first_steps(runners: tuple[str, ...], with_break_even: bool) -> Fill:
    """First-step (trace / compile) cost of ``runners``; for graph runners, their break-even point (only
    where their steady steps differ beyond noise)."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        seen = False
        for runner in runners:
            for workload, device in corpus.groups():
                rec = corpus.cell(runner, workload, device)
                if rec is None:
                    continue
                seen = True
                label = _label(corpus, workload, device)
                if not median(rec) or rec.get("first_step_s") is None:
                    _failed(ev, lang, rec, f"{label} {runner}")
                    continue
                first, steady, recs, sources = _first_and_steady(corpus, rec)
                text = phrase(lang, "first_step", runner=runner, t=units.seconds(first), s=units.seconds(steady))
                values = {f"{label}:{runner}_first_step_s": first}
                eager_name = EAGER_OF.get(runner)
                eager = corpus.cell(eager_name, workload, device) if (with_break_even and eager_name) else None
                if with_break_even and eager_name and eager is None:
                    need(ev, corpus, [eager_name], workload)
                if eager is not None and median(eager) and eager.get("first_step_s") is not None:
                    eager_first, eager_steady, eager_recs, eager_sources = _first_and_steady(corpus, eager)
                    r = speed_ratio(eager_recs, recs)
                    if r is not None and r[1] is not None and r[1] <= 1.0 <= r[2]:  # the CI holds 1
                        n = None
                        text += ", " + phrase(lang, "no_steady_gain", eager=eager_name)
                    else:
                        n = break_even_steps(eager_first, eager_steady, first, steady)
                        text += ", " + (phrase(lang, "break_even", eager=eager_name, n=n) if n
                                        else phrase(lang, "never_pays", eager=eager_name))
                    sources += eager_sources
                    values[f"{label}:{runner}_break_even_steps"] = n
                    ev.values.setdefault("first_steps", []).append(
                        {"workload": workload, "device": device, "graph": runner, "eager": eager_name,
                         "graph_first_s": first, "eager_first_s": eager_first})
                ev.add(f"{label}: {text}", sources, **values)
        if not seen:
            need(ev, corpus, runners)
    return fill


def probe_findings(probe: str, runners: tuple[str, ...]) -> Fill:
    """The probe ``probe`` for each of ``runners`` (debugging, shape errors, shape changes)."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        for runner in runners:
            rec = corpus.probe(probe, runner)
            if rec is None:
                ev.need_probe(probe, runner)
            elif not rec.ok:
                _failed(ev, lang, rec, f"{probe} ({runner})")
            else:
                text, fields, values = describe_probe(rec, lang)
                ev.add(text, [source(rec, *fields)], detail=probe_detail(rec), **values)
    return fill


def probe_if_run(probe: str, runners: tuple[str, ...]) -> Fill:
    """Like :func:`probe_findings`, but silent where the probe was not run (it needs a particular workload,
    e.g. ``seq-length`` a token one), so a results file without it asks for nothing."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        found = {r: corpus.probe(probe, r) for r in runners}
        present = tuple(r for r, rec in found.items() if rec is not None and rec.get("status") != "skipped")
        if present:
            probe_findings(probe, present)(ev, corpus, lang)
    return fill


def combine(*fills: Fill) -> Fill:
    """One cell filled by several evidence sources in turn."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        for f in fills:
            f(ev, corpus, lang)
    return fill


def exports(family: str) -> Fill:
    return combine(*(probe_findings(p, (EXPORT_RUNNER[family],)) for p in EXPORTS[family]))


def hardware(family: str) -> Fill:
    """Devices the family's runners ran on, speedup over CPU where both ran, devices this machine lacks."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        runners = FAMILY_RUNNERS[family]
        cells = [r for r in corpus.cells if r["runner"] in runners]
        if not cells:
            need(ev, corpus, runners[:1])
            return
        ran = [d for d in DEVICES if any(r.ok and r["device"] == d for r in cells)]
        if ran:
            ev.add(phrase(lang, "ran_on", devices=", ".join(ran)),
                   [source(r, "device", "status") for r in cells if r.ok][:3], **{f"{family}:devices": ran})
        for r in cells:
            if not r.ok and r["device"] != "cpu":
                _failed(ev, lang, r, f"{r['runner']} {r['device']}")
        done = set()
        for r in cells:
            key = (r["runner"], r["workload"], r["device"])
            if r["device"] == "cpu" or key in done:
                continue
            done.add(key)
            cpu, acc = group(corpus, r["runner"], r["workload"], "cpu"), group(corpus, *key)
            got = speed_ratio(cpu, acc) if cpu and acc else None
            if got is None:
                continue
            x, lo, hi, uncertain = got
            ev.add(f"{r['workload']} {r['runner']}: " + phrase(lang, "over_cpu_ci", device=r["device"],
                                                               ratio=ratio_text(lang, x, lo, hi, uncertain)),
                   [group_source(cpu, "step_s"), group_source(acc, "step_s")],
                   **{f"{r['workload']}:{r['runner']}:{r['device']}_over_cpu": x})
            ev.values.setdefault("over_cpu", []).append({"workload": r["workload"], "runner": r["runner"],
                                                         "device": r["device"], "speedup": x, "low": lo, "high": hi})
        for label, doc in corpus.docs[:1]:
            env = doc.get("environment", {})
            present = {"cuda": bool(env.get("gpus")), "tpu": bool(env.get("tpu"))}
            for device in ("cuda", "tpu"):
                if family == "torch" and device == "tpu":
                    continue
                if not present[device]:
                    ev.add(phrase(lang, "no_device", device=device),
                           [f"{label}#environment: {'gpus' if device == 'cuda' else 'tpu'}"])
                elif device not in ran:
                    need(ev, corpus, runners[:1], extra=f" -d {shlex.quote(device)}")
    return fill


def keras_price(ev: Evidence, corpus: Corpus, lang: str) -> None:
    """Keras (TensorFlow back end) step time against the hand-written ``tf.function`` step."""
    seen = False
    for workload, device in corpus.groups():
        k, g = corpus.cell("keras", workload, device), corpus.cell("tf-graph", workload, device)
        if k is None:
            continue
        seen = True
        label = _label(corpus, workload, device)
        if not k.ok:
            _failed(ev, lang, k, f"{label} keras")
        elif g is None:
            need(ev, corpus, ["tf-graph"], workload)
        elif median(k) and median(g):
            ks, gs = group(corpus, "keras", workload, device), group(corpus, "tf-graph", workload, device)
            tk, tg = centre(ks), centre(gs)
            x = tk / tg if tk and tg else median(k) / median(g)
            ev.add(f"{label}: " + phrase(lang, "keras_price", runner="keras", t=units.seconds(tk), ratio=x),
                   [group_source(ks, "step_s"), group_source(gs, "step_s")], **{f"{label}:keras_over_tf_graph": x})
    if not seen:
        need(ev, corpus, ["keras", "tf-graph"])


def tf_graph_step(ev: Evidence, corpus: Corpus, lang: str) -> None:
    _steady(ev, corpus, lang, ("tf-graph",))


def keras_backends(ev: Evidence, corpus: Corpus, lang: str) -> None:
    ran, sources = [], []
    for runner, backend in KERAS_BACKENDS.items():
        cells = list(corpus.runner_cells(runner))
        ok = [c for c in cells if c.ok]
        if ok:  # the step time every other table shows: the first workload's repeats combined
            recs = group(corpus, runner, ok[0]["workload"], ok[0]["device"])
            ran.append(f"{backend} ({runner} {units.seconds(centre(recs))})")
            sources.append(group_source(recs, "status", "step_s"))
        for c in cells:
            if not c.ok:
                _failed(ev, lang, c, runner)
        if not cells:
            need(ev, corpus, [runner])
    if ran:
        ev.add(phrase(lang, "backends_ran", names=", ".join(ran)), sources, keras_backends=ran,
               keras_backends_ran=[b for r, b in KERAS_BACKENDS.items() if any(c.ok for c in corpus.runner_cells(r))])


def tf_backends(ev: Evidence, corpus: Corpus, lang: str) -> None:
    ok = [r for name in FAMILY_RUNNERS["tensorflow"] for r in corpus.runner_cells(name) if r.ok]
    if not ok:
        need(ev, corpus, ["tf-eager"])
        return
    names = sorted({r["runner"] for r in ok}, key=FAMILY_RUNNERS["tensorflow"].index)
    ev.add(phrase(lang, "only_tf", names=", ".join(names)), [source(ok[0], "runner", "status")], tf_runners_ran=names)


def distributed(runners: tuple[str, ...]) -> Fill:
    """Data-parallel cells (``distributed.world_size`` > 1): ranks, engine back end, global throughput and
    scaling efficiency against the 1-worker run of the same invocation."""
    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        cells = [r for r in corpus.cells if r["runner"] in runners
                 and ((r.get("distributed") or {}).get("world_size") or 1) > 1]
        for r in cells:
            d = r["distributed"]
            label = f"{r['workload']} {r['runner']}"
            if not r.ok:
                _failed(ev, lang, r, f"{label} x{d['world_size']}")
                continue
            eff = d.get("scaling_efficiency")
            text = phrase(lang, "distributed", runner=label, workers=d["world_size"], backend=d.get("backend") or "?",
                          rate=units.rate(d.get("global_samples_per_s")))
            if eff is not None:
                text += phrase(lang, "efficiency", eff=eff)
            ev.add(text, [source(r, "distributed.world_size", "distributed.backend", "distributed.global_samples_per_s",
                                 "distributed.scaling_efficiency")],
                   **{f"{label}:scaling_efficiency": eff})
        if not cells:
            need(ev, corpus, runners[:1], "ddp")
    return fill


# (table, row) -> column -> how to fill it. Rows not listed are marked "not measured".
EVIDENCE: dict[tuple[str, str], dict[str, Fill]] = {
    ("pytorch_tensorflow", "graph"): {
        "pytorch": combine(graph_vs_eager("torch"), probe_findings("debug-value", ("torch",))),
        "tensorflow": combine(graph_vs_eager("tensorflow"), probe_findings("debug-value", ("tf-eager", "tf-graph")))},
    ("pytorch_tensorflow", "debugging"): {
        "pytorch": combine(probe_findings("debug-value", ("torch", "torch-compile")),
                           probe_findings("shape-error", ("torch",))),
        "tensorflow": combine(probe_findings("debug-value", ("tf-eager", "tf-graph")),
                              probe_findings("shape-error", ("tf-eager",)))},
    ("pytorch_tensorflow", "hardware"): {"pytorch": combine(hardware("torch"), best_batch("torch")),
                                         "tensorflow": combine(hardware("tensorflow"), best_batch("tensorflow"))},
    ("pytorch_tensorflow", "deployment"): {"pytorch": combine(exports("torch"), deployed_latency("torch")),
                                           "tensorflow": combine(exports("tensorflow"), deployed_latency("tensorflow"))},
    ("pytorch_tensorflow", "distributed"): {"pytorch": distributed(FAMILY_RUNNERS["torch"]),
                                            "tensorflow": distributed(FAMILY_RUNNERS["tensorflow"])},
    ("keras_tensorflow", "api_level"): {"keras": keras_price, "tensorflow": tf_graph_step},
    ("keras_tensorflow", "backends"): {"keras": keras_backends, "tensorflow": tf_backends},
    ("keras_tensorflow", "distributed"): {"keras": distributed(FAMILY_RUNNERS["keras"]),
                                          "tensorflow": distributed(FAMILY_RUNNERS["tensorflow"])},
    ("keras_tensorflow", "debugging"): {"keras": probe_findings("debug-value", ("keras",)),
                                        "tensorflow": probe_findings("debug-value", ("tf-eager", "tf-graph"))},
    ("keras_tensorflow", "hardware"): {"keras": combine(hardware("keras"), best_batch("keras")),
                                       "tensorflow": combine(hardware("tensorflow"), best_batch("tensorflow"))},
    ("static_dynamic", "construction"): {
        "static": combine(first_steps(STATIC, True), probe_if_run("seq-length", STATIC + ("keras-jax",))),
        "dynamic": combine(first_steps(DYNAMIC, False), probe_if_run("seq-length", DYNAMIC))},
    ("static_dynamic", "flexibility"): {
        "static": combine(probe_findings("shape-change", STATIC), probe_if_run("seq-length", STATIC + ("keras-jax",))),
        "dynamic": combine(probe_findings("shape-change", DYNAMIC), probe_if_run("seq-length", DYNAMIC))},
    ("static_dynamic", "optimisation"): {"static": static_steps, "dynamic": dynamic_steps},
    ("static_dynamic", "debugging"): {"static": probe_findings("debug-value", ("torch-compile", "tf-graph")),
                                      "dynamic": probe_findings("debug-value", ("torch", "tf-eager"))},
}


def train_view(corpus: Corpus) -> Corpus:
    """``corpus`` with its training cells only (``scenario`` absent or ``train``), ``full`` the whole corpus.

    The document's rows are read from training runs, as before inference scenarios existed: a sweep's
    out-of-memory point or a latency variant must not turn "graph mode vs eager" into a failure or a mix of
    batch sizes. The scenarios' own lines (:mod:`fwbench.report.scenario_evidence`: deployment latency,
    best batch) read ``full``."""
    view = copy.copy(corpus)
    view.cells = [r for r in corpus.cells if scenario(r) == "train"]
    view.full = corpus  # type: ignore[attr-defined]
    return view


def seed_tables(corpus: Corpus, lang: str) -> list[SeedTable]:
    """The document's three tables with the document's claims and the measured evidence per cell."""
    zh = lang == "zh"
    corpus = train_view(corpus)
    tables = []
    for key, (title_en, title_zh, columns) in TABLES.items():
        rows = []
        for row_key, label_en, label_zh, claims in ROWS[key]:
            fills = EVIDENCE.get((key, row_key), {})
            evidence = {}
            for col, _, _ in columns:
                ev = Evidence()
                if col in fills:
                    fills[col](ev, corpus, lang)
                else:
                    ev.not_measured = True
                evidence[col] = ev
            judge(key, row_key, evidence, lang)
            rows.append(SeedRow(row_key, label_zh if zh else label_en,
                                {c: claims[c][1 if zh else 0] for c, _, _ in columns}, evidence))
        tables.append(SeedTable(key, title_zh if zh else title_en,
                                [(c, lz if zh else le) for c, le, lz in columns], rows))
    return tables
