"""Evidence from the inference scenarios for the source document's tables (pure).

* **Deployment** rows: each deployed runtime's p50 latency at batch 1 against its framework's own eager
  runner on the same (base workload, device): "onnxruntime p50 0.41 ms vs torch 1.2 ms at batch 1"
  (onnxruntime, torch-export, openvino against torch; tflite against tf-eager and keras).
* **Hardware acceleration** rows: each runner's best batch of a throughput sweep with its samples/s.

The figures are those of the scenario tables (:mod:`fwbench.report.scenarios`): requests pooled over a
runner's processes, samples/s from the combined step estimate. The verdict rules of these rows are
unchanged (they read the export probes and the accelerator-over-CPU ratios); these lines add what users who
deploy ask.
"""

from __future__ import annotations

import shlex
from typing import Callable

from fwbench import units
from fwbench.report.corpus import Corpus
from fwbench.report.labels import phrase
from fwbench.report.model import Evidence
from fwbench.report.combined import sources
from fwbench.report.scenarios import latency_groups, latency_rows, parity_text, rate_text, short_reason, sweeps

# framework -> (its deployed runtimes, the framework's own eager runners they are read against)
DEPLOYED = {"torch": (("onnxruntime", "torch-export", "openvino"), ("torch",)),
            "tensorflow": (("tflite",), ("tf-eager", "keras"))}
# framework -> runners whose best batch the hardware-acceleration rows cite
SWEPT = {"torch": ("torch", "torch-compile", "onnxruntime", "torch-export", "openvino"),
         "tensorflow": ("tf-eager", "tf-graph", "tf-xla", "tflite"),
         "keras": ("keras", "keras-torch", "keras-jax")}

Fill = Callable[[Evidence, Corpus, str], None]


def _label(corpus: Corpus, workload: str, device: str) -> str:
    devices = {d for _, d in corpus.groups()}
    return workload if len(devices) == 1 else f"{workload}/{device}"


def deployed_latency(family: str) -> Fill:
    """Per (base workload, device) with latency cells at batch 1: each deployed runtime's p50 against the
    eager runner's p50 (``values["deployed_latency"]``)."""
    runtimes, eagers = DEPLOYED[family]

    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        corpus = getattr(corpus, "full", corpus)  # seed.train_view: the scenarios' cells too
        for (w, d, b), records in latency_groups(corpus).items():
            if b != 1:
                continue
            rows = {row.runner: row for row in latency_rows(records)}
            label = _label(corpus, w, d)
            for rt in (r for r in runtimes if r in rows):
                row = rows[rt]
                if row.summary is None:
                    first = next((r for r in row.records if not r.ok), row.records[0])
                    ev.fail(f"{label}: {rt} " + short_reason(first, 100), [sources(list(row.records)) + ": status, reason"],
                            status="skipped" if first["status"] == "skipped" else "failed")
                    continue
                p50 = row.p("p50")["value"]  # type: ignore[index]
                against = [(e, rows[e]) for e in eagers if e in rows and rows[e].summary]
                srcs = [sources(list(row.records)) + ": step_s"] + [sources(list(r.records)) + ": step_s" for _, r in against]
                if against:
                    others = ", ".join(f"{e} {units.seconds(r.p('p50')['value'])}" for e, r in against)  # type: ignore[index]
                    text = phrase(lang, "deploy_latency", runtime=rt, t=units.seconds(p50), others=others, b=b)
                else:
                    text = phrase(lang, "deploy_alone", runtime=rt, t=units.seconds(p50), b=b)
                    ev.need_run([eagers[0]], f"-w {shlex.quote(w)} --scenario latency"
                                + (f" -d {shlex.quote(d)}" if d != "cpu" else ""))
                if parity_text(list(row.records)).startswith("mismatch"):  # not the same model: say so beside its speed
                    text += phrase(lang, "deploy_mismatch")
                    srcs[0] = sources(list(row.records)) + ": step_s, parity"
                ev.add(f"{label}: {text}", srcs)
                ev.values.setdefault("deployed_latency", []).append(
                    {"workload": w, "device": d, "runtime": rt, "p50_s": p50,
                     "eager": {e: r.p("p50")["value"] for e, r in against}})  # type: ignore[index]
    return fill


def best_batch(family: str) -> Fill:
    """Per throughput sweep: each of the family's runners' best batch with its samples/s (``values["best_batch"]``)."""
    runners = SWEPT[family]

    def fill(ev: Evidence, corpus: Corpus, lang: str) -> None:
        corpus = getattr(corpus, "full", corpus)  # seed.train_view: the scenarios' cells too
        for s in sweeps(corpus):
            for line in s.lines:
                if line.runner not in runners:
                    continue
                best, near = line.best()
                if best is None:
                    continue  # every point failed: the sweep's table lists why
                text = phrase(lang, "best_batch", runner=line.runner, b=best.batch, rate=rate_text(best))
                text += phrase(lang, "best_near", b=near.batch) if near else ""
                ev.add(f"{s.workload} ({s.device}): {text}", [sources(list(best.records)) + ": step_s, batch_size"])
                ev.values.setdefault("best_batch", []).append(
                    {"workload": s.workload, "device": s.device, "runner": line.runner, "batch_size": best.batch,
                     "samples_per_s": best.rate, "within_noise_of": near.batch if near else None})
    return fill
