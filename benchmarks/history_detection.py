"""Detection and false-alarm rates of `fwbench history check`'s step detection on seeded synthetic series.

Each series: ``--commits`` per-run centres (default 30) with log-normal noise at a given CV; "step" series
are multiplied by ``1 + size`` from a random position (uniform in [3, n-3], so both segments have a few
runs); "flat" series have no step. For each (CV, size) it prints, over ``--series`` seeded series:

* step series: the share where a step was found within +-1 commit of the true position with the right
  sign ("detected"), and the share with any other, spurious step;
* flat series: the share with any change point ("any alarm"), and the share where `history check` would
  exit 1 (the newest commit starts a slowdown step above the threshold, default 5%).

A last block puts the step on the newest commit, the case `history check` exits 1 on.

    python benchmarks/history_detection.py [--series 300] [--commits 30] [--threshold 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fwbench.history.changepoints import PENALTY_FACTOR, SIGMA_FLOOR, detect

CVS = (0.02, 0.05, 0.10)
SIZES = (0.05, 0.10, 0.20)


def series(rng: np.random.Generator, n: int, cv: float, size: float, at: int) -> list[float]:
    sd = np.sqrt(np.log1p(cv * cv))  # log-normal with this coefficient of variation
    x = np.exp(rng.normal(0.0, sd, n))
    x[at:] *= 1.0 + size
    return [float(v) for v in x]


def exits_1(values: list[float], threshold: float) -> bool:
    step = detect(values).step_at(len(values) - 1)
    return step is not None and step.ratio > 1.0 + threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n, m = args.commits, args.series
    t0 = time.perf_counter()
    print(f"{m} seeded series per row, {n} commits, log-normal noise; PELT penalty {PENALTY_FACTOR:g}*ln(n), "
          f"noise floor {SIGMA_FLOOR:.1%}; exit-1 threshold {args.threshold:.0%}\n")
    print("| noise CV | step | detected (±1 commit, right sign) | spurious other step | exit 1 |")
    print("|---|---|---|---|---|")
    for cv in CVS:
        for size in (*SIZES, 0.0):
            rng = np.random.default_rng([args.seed, int(cv * 1000), int(size * 1000)])
            found = spurious = fail = 0
            for _ in range(m):
                at = int(rng.integers(3, n - 2)) if size else n
                x = series(rng, n, cv, size, at)
                steps = detect(x).steps
                hit = [s for s in steps if abs(s.index - at) <= 1 and s.ratio > 1.0]
                found += bool(hit)
                spurious += any(s not in hit[:1] for s in steps)
                fail += exits_1(x, args.threshold)
            label = f"+{size:.0%}" if size else "flat"
            det = f"{found / m:.1%}" if size else "—"
            print(f"| {cv:.0%} | {label} | {det} | {spurious / m:.1%} | {fail / m:.1%} |")
    print("\nStep on the newest commit (one run after it): exit 1 rate\n")
    print("| noise CV | " + " | ".join(f"+{s:.0%}" for s in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for cv in CVS:
        rates = []
        for size in SIZES:
            rng = np.random.default_rng([args.seed, 7, int(cv * 1000), int(size * 1000)])
            rates.append(sum(exits_1(series(rng, n, cv, size, n - 1), args.threshold) for _ in range(m)) / m)
        print(f"| {cv:.0%} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
