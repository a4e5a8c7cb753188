"""Which estimator should the A/B gate use on this machine? Analyse `fwbench ab` results files with each one.

For every file and every estimator (median, p10, min) this prints, per cell: the paired ratio B / A, the
minimum detectable change (MDC, the slowdown the paired test would flag with 80% probability at alpha),
the verdict, and the noise decomposition; then a summary line per estimator: the median and largest MDC
and the share of cells judged (no change, faster or slower, rather than inconclusive). On an A/A file
(both sides the same environment) every "slower" or "faster" is a false alarm.

    python benchmarks/ab_estimators.py results/aa.json [results/ab.json ...] [--threshold 5%] [--alpha 0.01]

It only reads results files (no timing here), so its output is reproducible from the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fwbench import ab, results  # noqa: E402
from fwbench.gate import parse_threshold  # noqa: E402
from fwbench import stats  # noqa: E402
from fwbench.stats import ESTIMATORS  # noqa: E402


def unpaired_mdc(doc: dict, key: tuple, estimator: str, alpha: float) -> float | None:
    """The MDC of the same processes compared as two unpaired groups (what two separate `fwbench run
    --repeats R` would give): Student's t on the logs of the process estimates, 2R - 2 degrees of freedom."""
    sides = ab.rounds_by_cell(doc)[key]
    ea = [float(stats.process_estimate(ab.steps(c), estimator)) for c in sides["A"].values() if c.ok]
    eb = [float(stats.process_estimate(ab.steps(c), estimator)) for c in sides["B"].values() if c.ok]
    if len(ea) < 2 or len(eb) < 2:
        return None
    *_, se, df = stats.t_log_ratio(np.array(ea), np.array(eb))
    return float(stats.min_detectable_change(se, alpha, 0.8, df))


def rounds_needed(mdc: float, n: int, alpha: float, target: float = 0.10, power: float = 0.8) -> str:
    """Rounds at which this cell's paired test would reach an MDC of ``target``, if the spread of its
    per-round log ratios stayed what it was over ``n`` rounds (``se = sd / sqrt(n)``, df = n - 1)."""
    from scipy.stats import t

    crit = lambda df: t.ppf(1 - alpha / 2, df) + t.ppf(power, df)
    sd = np.log1p(mdc) / crit(n - 1) * np.sqrt(n)
    for r in range(3, 1001):
        if np.expm1(crit(r - 1) * sd / np.sqrt(r)) <= target:
            return str(r)
    return "> 1000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threshold", default="5%")
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()
    thr = parse_threshold(args.threshold)
    for path in args.files:
        doc = results.read(path)
        if not results.is_ab(doc):
            sys.exit(f"{path}: not an `fwbench ab` results file")
        print(f"\n## {path.name}: {'; '.join(ab.side_notes(doc))}")
        print(f"threshold {thr:.0%}, alpha {args.alpha:g}\n")
        print("| estimator | cell | B / A | MDC | unpaired MDC | rounds for MDC ≤ 10% | verdict | step jitter | within | "
              "between processes | between rounds |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        summary = []
        for est in ESTIMATORS:
            res = ab.compare_sides(doc, thr, args.alpha, est)
            for c in res.cells:
                v = res.variance.get(c.key)
                parts = [f"{x * 100:.1f}%" if x is not None else "-" for x in
                         (v.step, v.within, v.between_processes, v.between_rounds)] if v else ["-"] * 4
                ratio = "-" if c.ratio is None else f"{(c.ratio - 1) * 100:+.1f}%"
                mdc = "-" if c.mdc is None else f"{c.mdc * 100:.1f}%"
                need = "-" if c.mdc is None else rounds_needed(c.mdc, c.n_base, args.alpha)
                um = unpaired_mdc(doc, c.key, est, args.alpha)
                um_text = "-" if um is None else f"{um * 100:.1f}%"
                print(f"| {est} | {c.workload}/{c.runner} | {ratio} | {mdc} | {um_text} | {need} | {c.verdict} | "
                      + " | ".join(parts) + " |")
            mdcs = [c.mdc for c in res.cells if c.mdc is not None]
            judged = sum(c.verdict in ("no change", "faster", "slower") for c in res.cells)
            summary.append(f"| {est} | {np.median(mdcs) * 100:.1f}% | {max(mdcs) * 100:.1f}% | "
                           f"{sum(m <= 0.10 for m in mdcs)}/{len(res.cells)} | {judged}/{len(res.cells)} | "
                           f"{res.count('slower')} slower, {res.count('faster')} faster |" if mdcs else f"| {est} | - |")
        print("\n| estimator | median MDC | largest MDC | cells with MDC ≤ 10% | cells judged | verdicts |")
        print("|---|---|---|---|---|---|")
        print("\n".join(summary))


if __name__ == "__main__":
    main()
