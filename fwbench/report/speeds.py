"""Step times and speed ratios of cells with their repeats combined (:mod:`fwbench.estimate`), for the seed
tables: one number per (workload, runner, device), a ratio with its 95% CI, and where each comes from (pure).
"""

from __future__ import annotations

from fwbench.report.corpus import Corpus, Record, source
from fwbench.report.derived import speedup
from fwbench.report.labels import phrase
from fwbench.report.perf import median


def centre(recs: list[Record]) -> float | None:
    """The step time (s) of a cell's repeats combined (:func:`fwbench.estimate.cell_estimate`), else the
    first successful repeat's median."""
    from fwbench.estimate import cell_estimate

    ok = [r for r in recs if r.ok]
    est = cell_estimate([r.data for r in ok]) if ok else None  # type: ignore[misc]
    return est.centre_s if est else median(ok[0]) if ok else None


def group(corpus: Corpus, runner: str, workload: str, device: str) -> list[Record]:
    """Every repeat (worker process) of ``runner`` on (workload, device), from the results file of the cell
    :meth:`Corpus.cell` picks, so repeats from different machines are never combined."""
    first = corpus.cell(runner, workload, device)
    if first is None:
        return []
    return [r for r in corpus.cells if r.file == first.file
            and (r["runner"], r["workload"], r["device"]) == (runner, workload, device)]


def group_source(recs: list[Record], *fields: str) -> str:
    """:func:`source` of one record, or ``file#cnn/torch/cpu/*: step_s`` for all repeats of a cell."""
    if len(recs) == 1:
        return source(recs[0], *fields)
    return f"{recs[0].file}#{recs[0].id.rsplit('/', 1)[0]}/*: {', '.join(fields)}"


def speed_ratio(base: list[Record], other: list[Record]) -> tuple[float, float | None, float | None, bool] | None:
    """How many times faster ``other`` is than ``base`` per step, with its 95% CI and whether either side is
    noisy: :func:`fwbench.estimate.ratio` on the repeats combined; without step samples the ratio of the
    medians with no CI (``None``: never counted as beyond noise)."""
    from fwbench.estimate import ratio

    ok_a, ok_b = [r.data for r in base if r.ok], [r.data for r in other if r.ok]
    r = ratio(ok_a, ok_b) if ok_a and ok_b else None  # type: ignore[arg-type]
    if r is not None:
        x, lo, hi = r.speedup
        return x, lo, hi, r.uncertain
    ma, mb = median(next((x for x in base if x.ok), None)), median(next((x for x in other if x.ok), None))
    return (speedup(ma, mb), None, None, True) if ma and mb else None


def ratio_text(lang: str, x: float, lo: float | None, hi: float | None, uncertain: bool) -> str:
    """``5.7× faster``, ``1.05× slower`` or ``same within noise``, digits as many as the CI supports (two
    decimals, marked uncertain, without a CI)."""
    from fwbench.estimate import Ratio
    from fwbench.report.combined import ratio_words

    if lo is None or hi is None:
        key, v = ("x_faster", x) if x >= 1 else ("x_slower", 1 / x)
        return phrase(lang, key, x=f"{v:.2f}") + phrase(lang, "uncertain")
    if lo <= 1.0 <= hi:
        return phrase(lang, "within_noise")
    words = ratio_words(Ratio(1 / x, 1 / hi, 1 / lo, "", uncertain))  # the digits every other table prints
    text = phrase(lang, "x_slower" if words.slower else "x_faster", x=words.x)
    return text + (phrase(lang, "uncertain") if uncertain else "")
