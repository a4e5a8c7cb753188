"""Per-scenario views of inference cells: latency percentiles, throughput across batch sizes, cold start (pure).

A cell's ``scenario`` is ``latency``, ``throughput`` or ``cold-start`` (absent: ``train``, shown by the
performance tables alone); its ``base_workload`` (absent: ``workload``) groups the variant workloads of one
sweep (``cnn@throughput-b16``, ``cnn@throughput-b64``) into one table. Every builder here takes a
:class:`~fwbench.report.corpus.Corpus` and returns :class:`ScenarioTable` rows of plain text (the renderers
escape them: :mod:`fwbench.report.markdown`, :mod:`fwbench.cli.console`) with the raw numbers beside them.

* **latency** (one table per base workload, device and batch): each runner's requests pooled over its
  processes, :func:`fwbench.quantiles.latency_summary` of them: p50, p90, p99 with their distribution-free
  intervals (the coverage printed where the level was out of reach), the max, the request count.
* **throughput** (one table per base workload and device): samples/s per batch from
  :func:`fwbench.estimate.cell_estimate` of the step time (samples/s = batch / step, bounds inverted); the
  best batch per runner, "within noise" of the second best when their intervals overlap; a second table of
  the peak memory per point. Points that ran out of memory or were skipped say so; their reasons are listed.
* **cold start** (one table per base workload and device): the median total over the fresh processes with
  :func:`fwbench.quantiles.quantile`'s interval (5 processes: [min, max] at 93.75%), and the phases' medians.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fwbench import units
from fwbench.estimate import cell_estimate
from fwbench.quantiles import latency_summary, quantile
from fwbench.report.combined import sources
from fwbench.report.corpus import Corpus, Record

INFERENCE_SCENARIOS = ("latency", "throughput", "cold-start")
PHASES = ("process_start_s", "import_s", "build_s", "first_call_s")
NO_ENERGY = "energy: not available (no RAPL / NVML)"
FAILED_WORDS = {"en": {"oom": "out of memory", "skipped": "skipped"}, "zh": {"oom": "内存不足", "skipped": "已跳过"}}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "section": "Inference scenarios",
        "latency": "{w} — {d}, latency at batch {b} (per request, processes pooled)",
        "throughput": "{w} — {d}, throughput across batch sizes (samples/s, 95% CI)",
        "memory": "{w} — {d}, peak memory across batch sizes",
        "cold-start": "{w} — {d}, cold start (fresh process to first result)",
        "runner": "runner", "max": "max", "requests": "requests", "processes": "processes", "parity": "parity",
        "energy": "energy / request", "status": "status", "source": "source (cell id)", "best": "best batch",
        "batch": "batch {b}", "total": "total (median, CI)", "process_start_s": "process start",
        "import_s": "import", "build_s": "build / load", "first_call_s": "first call",
        "best_noise": "{b} (within noise of {o})", "ci": "{p} CI",
        "latency_note": ("p50 / p90 / p99: the requests of every process pooled (fwbench.quantiles.latency_summary); "
                         "each with its distribution-free 95% interval (order statistics), or the coverage it "
                         "actually has where the samples are too few for 95%. Fastest p50 first."),
        "throughput_note": ("samples/s = batch / step time (fwbench.estimate.cell_estimate, repeats combined), its "
                            "95% CI's bounds inverted; best batch: the highest samples/s, \"within noise\" when its "
                            "CI overlaps the runner's second best."),
        "memory_note": "peak memory per point: the largest peak_device_bytes (dev) or else peak_rss_bytes (RSS).",
        "cold_note": ("total: spawn to the first inference result; median over the fresh processes with its "
                      "interval (fwbench.quantiles.quantile; with 5 processes [min, max] at 93.75%); the phases "
                      "are their medians. Sorted by median total."),
        "failure": "{runner} batch {b}: {why}",
    },
    "zh": {
        "section": "推理场景",
        "latency": "{w} — {d},批大小 {b} 的延迟(每个请求,进程合并)",
        "throughput": "{w} — {d},不同批大小的吞吐量(样本/秒,95% 置信区间)",
        "memory": "{w} — {d},不同批大小的峰值内存",
        "cold-start": "{w} — {d},冷启动(新进程到首个结果)",
        "runner": "运行器", "max": "最大值", "requests": "请求数", "processes": "进程数", "parity": "一致性",
        "energy": "每请求能耗", "status": "状态", "source": "来源(单元 id)", "best": "最佳批大小",
        "batch": "批 {b}", "total": "总计(中位数,置信区间)", "process_start_s": "进程启动",
        "import_s": "导入", "build_s": "构建/加载", "first_call_s": "首次调用",
        "best_noise": "{b}(与 {o} 在噪声范围内)", "ci": "{p} 置信区间",
        "latency_note": ("p50 / p90 / p99:所有进程的请求合并(fwbench.quantiles.latency_summary);各附无分布假设的 "
                         "95% 区间(顺序统计量),样本太少达不到 95% 时给出实际覆盖率。按 p50 从快到慢排列。"),
        "throughput_note": ("样本/秒 = 批大小 / 步长(fwbench.estimate.cell_estimate,重复合并),95% 置信区间上下界取倒数;"
                            "最佳批大小:样本/秒最高者,其置信区间与该运行器次优者重叠时注明“在噪声范围内”。"),
        "memory_note": "各点峰值内存:最大的 peak_device_bytes(dev),否则 peak_rss_bytes(RSS)。",
        "cold_note": ("总计:从启动进程到首个推理结果;各新进程的中位数及其区间(fwbench.quantiles.quantile;5 个进程时为 "
                      "[最小, 最大],覆盖率 93.75%);各阶段为其中位数。按总计中位数排列。"),
        "failure": "{runner} 批 {b}:{why}",
    },
}
ENERGY_UNAVAILABLE = {"en": NO_ENERGY, "zh": "能耗:不可用(无 RAPL / NVML)"}


def scenario(rec: Record | Any) -> str:
    """A cell's scenario; cells of files from before scenarios are ``train``."""
    return rec.get("scenario") or "train"


def base_workload(rec: Record | Any) -> str:
    return rec.get("base_workload") or rec["workload"]


@dataclass
class ScenarioTable:
    """One table of a scenario: headers and rows of plain text, the raw numbers per row, the lines under it."""

    kind: str            # "latency", "throughput", "memory" or "cold-start"
    workload: str        # the base workload
    device: str
    title: str
    headers: list[str]
    rows: list[list[str]]        # the last column is the source (cell ids)
    values: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- grouping

def _cells(corpus: Corpus, kind: str) -> list[Record]:
    return [r for r in corpus.cells if scenario(r) == kind]


def _by(records: list[Record], key: Any) -> dict[Any, list[Record]]:
    out: dict[Any, list[Record]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out


def runner_groups(records: list[Record]) -> dict[str, list[Record]]:
    """Runner -> its processes, in first-seen order; a runner found in several files is one group per file,
    named ``runner [file]`` (processes are combined within one file only, as everywhere)."""
    files: dict[str, set[str]] = {}
    for r in records:
        files.setdefault(r["runner"], set()).add(r.file)
    return _by(records, lambda r: r["runner"] + (f" [{r.file}]" if len(files[r["runner"]]) > 1 else ""))


def short_reason(rec: Record, limit: int = 160) -> str:
    text = " ".join(str(rec.get("reason") or "").split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return rec["status"] + (f": {text}" if text else "")


def coverage_text(c: float) -> str:
    """``0.9375`` -> ``93.75%``, ``0.62`` -> ``62%``."""
    return f"{c * 100:.2f}".rstrip("0").rstrip(".") + "%"


def interval_text(value: float, low: float, high: float, attained: bool, coverage: float, lang: str) -> str:
    """``1.2 ms (1.1–1.3 ms)``; ``1.2 ms (1.1–1.4 ms, 62% CI)`` where the interval falls short of 95%."""
    inner = units.span(low, high)
    if not attained:
        inner += ", " + TEXT[lang]["ci"].format(p=coverage_text(coverage))
    return f"{units.seconds(value)} ({inner})"


def parity_text(recs: list[Record]) -> str:
    """Output parity of a runner's processes: ``mismatch: detail`` when any mismatched, else ``ok`` /
    ``reference``, ``-`` where not checked."""
    found = [(r.get("parity") or {}) for r in recs]
    bad = [p for p in found if p.get("status") == "mismatch"]
    if bad:
        return "mismatch" + (f": {bad[0]['detail']}" if bad[0].get("detail") else "")
    status = next((p.get("status") for p in found if p.get("status") in ("ok", "reference")), None)
    return status or "-"


def _energy(recs: list[Record]) -> float | None:
    """Joules per request (sample) over the processes that measured energy; ``None`` where none did."""
    got = [r["energy"] for r in recs if r.ok and (r.get("energy") or {}).get("available")]
    joules = sum(e.get("joules") or 0.0 for e in got)
    samples = sum(e.get("samples") or 0 for e in got)
    if samples:
        return joules / samples
    per = [e["j_per_sample"] for e in got if e.get("j_per_sample") is not None]
    return sum(per) / len(per) if per else None


def _energy_reasons(recs: list[Record], lang: str) -> list[str]:
    if lang != "en":
        return [ENERGY_UNAVAILABLE[lang]] if recs else []
    return list(dict.fromkeys(str((r.get("energy") or {}).get("reason") or NO_ENERGY) for r in recs))


# ---------------------------------------------------------------- latency

@dataclass(frozen=True)
class LatencyRow:
    runner: str
    records: tuple[Record, ...]
    summary: dict[str, Any] | None   # latency_summary of the pooled requests

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r.ok and (r.get("step_s") or r.get("latency"))]

    def p(self, name: str) -> dict[str, Any] | None:
        return next((q for q in (self.summary or {}).get("percentiles", []) if q["name"] == name), None)


def latency_rows(records: list[Record]) -> list[LatencyRow]:
    """Per runner: its requests pooled over its processes, summarised; fastest p50 first, failures last."""
    rows = []
    for runner, recs in runner_groups(records).items():
        pooled = [s for r in recs if r.ok for s in (r.get("step_s") or [])]
        stored = [r.get("latency") for r in recs if r.ok and isinstance(r.get("latency"), dict)]
        # without the requests (a file trimmed of step_s), one process's stored summary is still exact
        summary = latency_summary(pooled) if pooled else stored[0] if len(stored) == 1 else None
        rows.append(LatencyRow(runner, tuple(recs), summary))
    return sorted(rows, key=lambda r: (r.summary is None, r.p("p50")["value"] if r.summary else 0.0))


def latency_groups(corpus: Corpus) -> dict[tuple[str, str, int], list[Record]]:
    """(base workload, device, batch) -> latency cells, in first-seen order."""
    return _by(_cells(corpus, "latency"), lambda r: (base_workload(r), r["device"], r.get("batch_size") or 1))


def latency_tables(corpus: Corpus, lang: str = "en") -> list[ScenarioTable]:
    t = TEXT[lang]
    out = []
    for (w, d, b), records in latency_groups(corpus).items():
        rows = latency_rows(records)
        energy = {row.runner: _energy(list(row.records)) for row in rows}
        has_energy = any(v is not None for v in energy.values())
        head = [t["runner"], "p50", "p90", "p99", t["max"], t["requests"], t["processes"], t["parity"]]
        head += [t["energy"]] if has_energy else []
        head += [t["status"], t["source"]]
        texts, values = [], []
        for row in rows:
            s = row.summary
            cells = [row.runner]
            for name in ("p50", "p90", "p99"):
                q = row.p(name)
                cells.append(interval_text(q["value"], q["low"], q["high"], q["attained"], q["coverage"], lang)
                             if q else "-")
            failed = [r for r in row.records if not r.ok]
            status = "ok" if s else short_reason(failed[0] if failed else row.records[0])
            if s and failed:
                status += f" ({len(failed)} of {len(row.records)}: {short_reason(failed[0], 100)})"
            cells += [units.seconds(s["max"]) if s else "-", str(s["n"]) if s else "0", str(len(row.ok)),
                      parity_text(list(row.records))]
            cells += [f"{energy[row.runner]:.3g} J" if energy[row.runner] is not None else "-"] if has_energy else []
            cells += [status, sources(list(row.records))]
            texts.append(cells)
            values.append({"runner": row.runner, "batch_size": b, "processes": len(row.ok),
                           "latency": s, "energy_j_per_request": energy[row.runner], "parity": parity_text(list(row.records)),
                           "source": sources(list(row.records))})
        lacking = [r for row in rows for r in row.ok if not (r.get("energy") or {}).get("available")]
        notes = [t["latency_note"]] + _energy_reasons(lacking, lang)
        out.append(ScenarioTable("latency", w, d, t["latency"].format(w=w, d=d, b=b), head, texts, values, notes))
    return out


# ---------------------------------------------------------------- throughput sweep

@dataclass(frozen=True)
class Point:
    """One (runner, batch) of a sweep: samples/s with its CI, peak memory, or why it has none."""

    batch: int
    records: tuple[Record, ...]
    rate: float | None = None
    rate_low: float | None = None
    rate_high: float | None = None
    peak_bytes: int | None = None
    peak_kind: str = "host"          # "device" or "host" (RSS)
    status: str = "ok"               # "ok", or the first process's status where none succeeded


@dataclass(frozen=True)
class SweepLine:
    runner: str
    points: tuple[Point, ...]        # by batch, ascending

    @property
    def measured(self) -> list[Point]:
        return [p for p in self.points if p.rate is not None]

    def best(self) -> tuple[Point | None, Point | None]:
        """The point with the highest samples/s and, when their CIs overlap, the second best (else ``None``)."""
        ranked = sorted(self.measured, key=lambda p: -p.rate)  # type: ignore[operator]
        if not ranked:
            return None, None
        best = ranked[0]
        second = ranked[1] if len(ranked) > 1 else None
        if second is not None and best.rate_low is not None and second.rate_high is not None \
                and best.rate_low <= second.rate_high:
            return best, second
        return best, None


@dataclass(frozen=True)
class Sweep:
    workload: str                    # the base workload
    device: str
    batches: tuple[int, ...]
    lines: tuple[SweepLine, ...]


def _point(batch: int, recs: list[Record]) -> Point:
    ok = [r for r in recs if r.ok and r.get("step_s")]
    est = cell_estimate([r.data for r in ok]) if ok else None  # type: ignore[misc]
    dev = [r.get("peak_device_bytes") for r in recs if r.get("peak_device_bytes")]
    rss = [r.get("peak_rss_bytes") for r in recs if r.get("peak_rss_bytes")]
    peak, kind = (max(dev), "device") if dev else (max(rss), "host") if rss else (None, "host")
    if est is None or est.centre_s <= 0:
        status = "ok" if any(r.ok for r in recs) else recs[0]["status"]
        return Point(batch, tuple(recs), peak_bytes=peak, peak_kind=kind, status=status)
    high = batch / est.low_s if est.low_s > 0 else None
    return Point(batch, tuple(recs), batch / est.centre_s, batch / est.high_s, high, peak, kind)


def sweeps(corpus: Corpus) -> list[Sweep]:
    """Per (base workload, device) in first-seen order: each runner's points by batch size."""
    out = []
    for (w, d), records in _by(_cells(corpus, "throughput"), lambda r: (base_workload(r), r["device"])).items():
        batches = tuple(sorted({r.get("batch_size") or 1 for r in records}))
        lines = []
        for runner, recs in runner_groups(records).items():
            at = _by(recs, lambda r: r.get("batch_size") or 1)
            lines.append(SweepLine(runner, tuple(_point(b, at[b]) for b in batches if b in at)))
        out.append(Sweep(w, d, batches, tuple(lines)))
    return out


def rate_text(p: Point) -> str:
    if p.rate is None:
        return "-"
    if p.rate_low is None or p.rate_high is None:
        return units.rate(p.rate)
    return f"{units.rate(p.rate)} ({units.rate(p.rate_low)}–{units.rate(p.rate_high)})"


def point_text(p: Point, lang: str) -> str:
    if p.rate is not None:
        return rate_text(p)
    return FAILED_WORDS[lang].get(p.status, p.status)


def best_text(line: SweepLine, lang: str) -> str:
    best, near = line.best()
    if best is None:
        return "-"
    return TEXT[lang]["best_noise"].format(b=best.batch, o=near.batch) if near else str(best.batch)


def mem_text(p: Point) -> str:
    if p.peak_bytes is None:
        return "-"
    return units.nbytes(p.peak_bytes) + (" dev" if p.peak_kind == "device" else " RSS")


def _best_rate(line: SweepLine) -> float:
    best = line.best()[0]
    return -best.rate if best and best.rate else float("inf")


def throughput_tables(corpus: Corpus, lang: str = "en") -> list[ScenarioTable]:
    """Two tables per sweep: samples/s per batch with the best batch, and peak memory per batch."""
    t = TEXT[lang]
    out = []
    for s in sweeps(corpus):
        cols = [t["batch"].format(b=b) for b in s.batches]
        rate_rows, mem_rows, values, failures = [], [], [], []
        order = sorted(s.lines, key=_best_rate)  # highest best-batch samples/s first, unmeasured last
        for line in order:
            at = {p.batch: p for p in line.points}
            src = sources([r for p in line.points for r in p.records])
            rate_rows.append([line.runner] + [point_text(at[b], lang) if b in at else "" for b in s.batches]
                             + [best_text(line, lang), src])
            mem_rows.append([line.runner] + [mem_text(at[b]) if b in at else "" for b in s.batches] + [src])
            best, near = line.best()
            values.append({"runner": line.runner, "best_batch": best.batch if best else None,
                           "within_noise_of": near.batch if near else None,
                           "points": [{"batch_size": p.batch, "samples_per_s": p.rate, "ci_low": p.rate_low,
                                       "ci_high": p.rate_high, "peak_bytes": p.peak_bytes, "peak_kind": p.peak_kind,
                                       "status": p.status, "source": sources(list(p.records))} for p in line.points]})
            for p in line.points:
                bad = [r for r in p.records if not r.ok]
                if bad and (p.rate is None or len(bad) < len(p.records)):
                    failures.append(t["failure"].format(runner=line.runner, b=p.batch, why=short_reason(bad[0])))
        w, d = s.workload, s.device
        out.append(ScenarioTable("throughput", w, d, t["throughput"].format(w=w, d=d),
                                 [t["runner"]] + cols + [t["best"], t["source"]], rate_rows, values,
                                 [t["throughput_note"]] + failures))
        out.append(ScenarioTable("memory", w, d, t["memory"].format(w=w, d=d), [t["runner"]] + cols + [t["source"]],
                                 mem_rows, [], [t["memory_note"]]))
    return out


# ---------------------------------------------------------------- cold start

@dataclass(frozen=True)
class ColdRow:
    runner: str
    records: tuple[Record, ...]
    total: Any        # fwbench.quantiles.Quantile of the totals, or None
    phases: dict[str, float | None]

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r.ok and isinstance(r.get("cold_start"), dict)]


def cold_rows(records: list[Record]) -> list[ColdRow]:
    rows = []
    for runner, recs in runner_groups(records).items():
        ok = [r["cold_start"] for r in recs if r.ok and isinstance(r.get("cold_start"), dict)]
        totals = [c["total_s"] for c in ok if c.get("total_s") is not None]
        phases = {}
        for k in PHASES:
            xs = [c[k] for c in ok if c.get(k) is not None]
            phases[k] = quantile(xs, 0.5).value if xs else None
        rows.append(ColdRow(runner, tuple(recs), quantile(totals, 0.5, "median") if totals else None, phases))
    return sorted(rows, key=lambda r: (r.total is None, r.total.value if r.total else 0.0))


def cold_start_tables(corpus: Corpus, lang: str = "en") -> list[ScenarioTable]:
    t = TEXT[lang]
    out = []
    for (w, d), records in _by(_cells(corpus, "cold-start"), lambda r: (base_workload(r), r["device"])).items():
        head = [t["runner"], t["total"]] + [t[k] for k in PHASES] + [t["processes"], t["status"], t["source"]]
        texts, values = [], []
        for row in cold_rows(records):
            q = row.total
            failed = [r for r in row.records if not r.ok]
            status = "ok" if q else short_reason(failed[0] if failed else row.records[0])
            if q and failed:
                status += f" ({len(failed)} of {len(row.records)}: {short_reason(failed[0], 100)})"
            texts.append([row.runner, interval_text(q.value, q.low, q.high, q.attained, q.coverage, lang) if q else "-"]
                         + [units.seconds(row.phases[k]) for k in PHASES]
                         + [str(len(row.ok)), status, sources(list(row.records))])
            values.append({"runner": row.runner, "processes": len(row.ok), "total": q.to_dict() if q else None,
                           **{f"median_{k}": row.phases[k] for k in PHASES}, "source": sources(list(row.records))})
        out.append(ScenarioTable("cold-start", w, d, t["cold-start"].format(w=w, d=d), head, texts, values,
                                 [t["cold_note"]]))
    return out


def scenario_tables(corpus: Corpus, lang: str = "en") -> list[ScenarioTable]:
    """Every scenario table of ``corpus``: latency, then throughput (and memory), then cold start."""
    return latency_tables(corpus, lang) + throughput_tables(corpus, lang) + cold_start_tables(corpus, lang)
