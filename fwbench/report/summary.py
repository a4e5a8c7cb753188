"""The answer first: per (workload, device[, machine]), the fastest runner and how the others compare (pure).

Like hyperfine's "X ran 2.5 ± 0.1 times faster than Y": each runner's typical step time as a multiple of
the fastest runner's, with the 95% CI of ``fwbench compare``'s ratio (:func:`fwbench.estimate.ratio`),
and whether the difference is *real* (the CI excludes 1) or *within noise*. Parity, noisy cells (CI wider
than :data:`fwbench.estimate.WIDE_CI`, or a busy machine) and cells that failed are named too.

:func:`summarise` builds a :class:`Summary` from combined cells (:mod:`fwbench.report.combined`);
:func:`markdown` renders it for the report (en, zh), :func:`terminal` for the end of ``fwbench run`` and
``fwbench show``. The Chinese phrases live here, beside the English ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from fwbench.estimate import WIDE_CI, Estimate, Ratio, ratio
from fwbench.report.combined import Combined, ratio_words, spread, step_text
from fwbench.report.terminal import text
from fwbench.textsafe import md_text

REASON_CHARS = 80

PHRASES = {
    "en": {
        "title": "Summary",
        "intro": ("Per workload and device: the fastest runner by typical step time (repeats combined), and each "
                  "other runner's step time as a multiple of it with its 95% CI: *real* when the CI excludes 1, "
                  "*within noise* otherwise. *noisy*: CI wider than ±{wide:.0%} or a busy machine; ~: uncertain."),
        "fastest": "fastest, {step}, {n} process{es}{within}",
        "only": "the only runner measured, {step}, {n} process{es}{within}",
        "within_process": ": CI within the process only",
        "partial": "{k} of {n} processes failed",
        "parity_some": "parity ✓ {k} of {n} matched; not checked: {names}",
        "noisy_word": "noisy",
        "slower": "{x}× slower (95% CI {lo}–{hi})",
        "faster": "{x}× faster (95% CI {lo}–{hi})",
        "real": "real difference",
        "within": "within noise",
        "noisy": "noisy: {spread}",
        "busy": "busy machine",
        "no_samples": "no step samples",
        "parity_ok": "parity ✓ all matched",
        "parity_bad": "parity ✗ mismatch: {names}",
        "parity_none": "parity not checked",
        "none": "No cells in these results.",
        "comma": ", ",
        "semicolon": "; ",
    },
    "zh": {
        "title": "摘要",
        "intro": ("按工作负载和设备:典型步长最快的运行器(重复已合并),以及其他运行器步长相对它的倍数和 95% 置信区间:"
                  "区间不含 1 为*差异真实*,否则为*在噪声范围内*。*噪声大*:置信区间宽于 ±{wide:.0%} 或机器繁忙;"
                  "~:不确定。"),
        "fastest": "最快,{step},{n} 个进程{within}",
        "only": "唯一测得的运行器,{step},{n} 个进程{within}",
        "within_process": ",置信区间仅反映进程内噪声",
        "partial": "{n} 个进程中 {k} 个失败",
        "parity_some": "一致性 ✓ {n} 个中 {k} 个一致;未检查:{names}",
        "noisy_word": "噪声大",
        "slower": "慢 {x}×(95% CI {lo}–{hi})",
        "faster": "快 {x}×(95% CI {lo}–{hi})",
        "real": "差异真实",
        "within": "在噪声范围内",
        "noisy": "噪声大:{spread}",
        "busy": "机器繁忙",
        "no_samples": "无计时样本",
        "parity_ok": "一致性 ✓ 全部一致",
        "parity_bad": "一致性 ✗ 不一致:{names}",
        "parity_none": "未做一致性检查",
        "none": "这些结果中没有单元。",
        "comma": ",",
        "semicolon": ";",
    },
}


# what one timed "step" of an inference scenario is, named in the block's title
SCENARIO_WORDS = {
    "en": {"latency": "latency: per request, fastest by median request time (p50)",
           "throughput": "throughput: inference at this batch"},
    "zh": {"latency": "延迟:每个请求,按请求时间中位数(p50)排最快", "throughput": "吞吐量:此批大小的推理"},
}


@dataclass(frozen=True)
class Line:
    """One runner of a block: its estimate, and its ratio to the fastest runner (``None`` for the fastest)."""

    runner: str
    status: str
    estimate: Estimate | None
    ratio: Ratio | None
    fastest: bool
    parity: str
    reason: str = ""
    busy: bool = False
    failed: int = 0       # processes of this runner that did not succeed (the estimate is of the others)
    processes: int = 0    # all its processes

    @property
    def noisy(self) -> bool:
        return bool(self.estimate and self.estimate.noisy)

    @property
    def real(self) -> bool:
        """The difference from the fastest runner is real: its CI excludes 1."""
        return bool(self.ratio and self.ratio.apart)


@dataclass(frozen=True)
class Block:
    """One (workload, device[, machine]): fastest runner first, then the others slowest last, failures at the end."""

    workload: str
    device: str
    machine: str | None
    lines: tuple[Line, ...]
    scenario: str = "train"  # latency: each "step" is one request at batch 1, the typical one its median (p50)

    @property
    def fastest(self) -> Line | None:
        return next((line for line in self.lines if line.fastest), None)

    @property
    def measured(self) -> int:
        """How many runners have an estimate."""
        return sum(1 for line in self.lines if line.estimate is not None)

    @property
    def mismatched(self) -> list[str]:
        return [line.runner for line in self.lines if line.parity == "mismatch"]

    @property
    def parity_checked(self) -> bool:
        return any(line.parity in ("ok", "reference", "mismatch") for line in self.lines)


@dataclass(frozen=True)
class Summary:
    blocks: tuple[Block, ...]


def short_reason(reason: str) -> str:
    """The first line of a reason, cut to :data:`REASON_CHARS` (the full text is in the tables below)."""
    first = " ".join(str(reason or "").strip().splitlines()[:1]).strip() if reason else ""
    return first if len(first) <= REASON_CHARS else first[: REASON_CHARS - 1] + "…"


def summarise(groups: list[Combined]) -> Summary:
    """A :class:`Summary` of combined cells (:func:`fwbench.report.combined.combine`), blocks in first-seen order."""
    keys = list(dict.fromkeys((g.workload, g.device, g.machine) for g in groups))
    blocks = []
    for key in keys:
        members = [g for g in groups if (g.workload, g.device, g.machine) == key]
        ok = sorted((g for g in members if g.ok), key=lambda g: g.estimate.centre_s)  # type: ignore[union-attr]
        best = ok[0] if ok else None
        lines = [Line(g.name, g.status, g.estimate, None if best is None or g is best else ratio(best.cells, g.cells),
                      g is best, g.parity, "", g.busy, len(g.failed), len(g.records)) for g in ok]
        lines += [Line(g.name, g.status, None, None, False, g.parity, short_reason(g.first.get("reason") or ""))
                  for g in members if not g.ok]
        blocks.append(Block(*key, tuple(lines), str(members[0].first.get("scenario") or "train")))
    return Summary(tuple(blocks))


# ---- text -----------------------------------------------------------------------------------------------
def ratio_phrase(r: Ratio, lang: str) -> str:
    """``2.4× slower (95% CI 2.1–2.7), real difference``, rounded to the CI; ``~`` first when either cell is noisy."""
    p = PHRASES[lang]
    t = ratio_words(r)
    out = p["slower" if t.slower else "faster"].format(x=t.x, lo=t.low, hi=t.high)
    return ("~" if t.uncertain else "") + out + p["comma"] + p["real" if t.apart else "within"]


def line_text(line: Line, lang: str, alone: bool = False) -> str:
    """What follows the runner's name on its line (plain text); ``alone``: no other runner was measured."""
    p = PHRASES[lang]
    e = line.estimate
    if e is None:
        return line.status + (f": {line.reason}" if line.reason else "") if line.status != "ok" else p["no_samples"]
    within = p["within_process"] if e.method == "steps" else ""
    parts = [p["only" if alone else "fastest"].format(step=step_text(e), n=e.processes,
                                                      es="" if e.processes == 1 else "es", within=within)
             if line.fastest else ratio_phrase(line.ratio, lang) if line.ratio else step_text(e)]
    if e.wide:  # the fastest line shows its own spread already
        parts.append(p["noisy_word"] if line.fastest else p["noisy"].format(spread=spread(e)))
    if line.busy:
        parts.append(p["busy"])
    if line.failed:
        parts.append(p["partial"].format(k=line.failed, n=line.processes))
    return p["semicolon"].join(parts)


def block_title(block: Block, lang: str) -> str:
    p = PHRASES[lang]
    where = f"{block.workload} — {block.device}" + (f", {block.machine}" if block.machine else "")
    if block.scenario != "train":  # the variant workload's scenario, and what its "step" is
        where += f" ({SCENARIO_WORDS[lang].get(block.scenario, block.scenario)})"
    bad = block.mismatched
    unchecked = [line.runner for line in block.lines if line.parity not in ("ok", "reference", "mismatch")]
    if bad:
        parity = p["parity_bad"].format(names=", ".join(bad))
    elif not block.parity_checked:
        parity = p["parity_none"]
    elif unchecked:
        parity = p["parity_some"].format(k=len(block.lines) - len(unchecked), n=len(block.lines),
                                         names=", ".join(unchecked))
    else:
        parity = p["parity_ok"]
    return f"{where}: {parity}"


def markdown(summary: Summary, lang: str) -> list[str]:
    """The report's Summary section: a heading, one bold line per block, one bullet per runner."""
    p = PHRASES[lang]
    out = [f"## {p['title']}", "", p["intro"].format(wide=WIDE_CI), ""]
    if not summary.blocks:
        return out + [p["none"], ""]
    for block in summary.blocks:
        out += [f"**{md_text(block_title(block, lang))}**", ""]
        for line in block.lines:
            name = md_text(line.runner)
            text_ = md_text(line_text(line, lang, block.measured == 1))
            out.append(f"- {'**' + name + '**' if line.fastest else name}: {text_}")
        out.append("")
    return out


def terminal(summary: Summary) -> list[Text]:
    """The summary as rich lines (English): a title, then a block per (workload, device); user text escaped."""
    if not summary.blocks:
        return []
    out = [Text("Summary", style="bold")]
    width = max(len(line.runner) for b in summary.blocks for line in b.lines)
    for i, block in enumerate(summary.blocks):
        if i:
            out.append(Text(""))
        out.append(text(block_title(block, "en"), style="bold red" if block.mismatched else "bold"))
        for line in block.lines:
            style = ("green" if line.fastest else "red" if line.estimate is None
                     else "yellow" if line.noisy or (line.ratio and line.ratio.uncertain) else "")
            row = text("  " + line.runner.ljust(width) + "  ")
            row.append_text(text(line_text(line, "en", block.measured == 1), style=style))
            out.append(row)
    return out
