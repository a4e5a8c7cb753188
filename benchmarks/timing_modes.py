"""Do per-step and windowed timing agree where synchronisation costs nothing? (issue 19, on a CPU)

On a CPU every framework computes synchronously, so a per-step host sync (fetching the loss) costs
nothing, and the two timing modes must give the same step time. A windowed mean that came out lower would
show a bug in the windowed loop: steps it did not wait for, or a clock read before the barrier. A higher
mean would show overhead that the loop added. On a GPU the same comparison measures the sync cost.

Each round runs ``fwbench run`` once per mode on the same cells (``-r torch -r tf-graph -w cnn -w mlp`` by
default, one thread, no time-to-target). The two modes alternate within a round, and which goes first
alternates between rounds, so that drift and other load hit both alike. For each cell it prints:
- each mode's median step time over the rounds (the geometric mean of the rounds' medians);
- the ratio windowed / per-step with a 95% t interval over the rounds' paired log ratios;
- whether that interval holds 1.0 ("agree": within noise).

    python benchmarks/timing_modes.py                      # 3 rounds, torch and tf-graph on cnn and mlp
    python benchmarks/timing_modes.py --rounds 5 -r torch -w cnn --device cuda
    python benchmarks/timing_modes.py --quick              # a smoke run: 2 rounds of --quick runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("per-step", "windowed")


def run(mode: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "fwbench", "run", "--timing", mode, "--threads", str(args.threads),
           "--device", args.device, "--no-target", "-o", str(out), "--force"]
    cmd += [x for r in args.runner for x in ("-r", r)] + [x for w in args.workload for x in ("-w", w)]
    cmd += ["--quick"] if args.quick else []
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def medians(doc: dict) -> dict[tuple[str, str], tuple[float, dict]]:
    """(workload, runner) -> (median step time, the cell's timing record) of each ok cell."""
    return {(c["workload"], c["runner"]): (c["summary"]["median"], c.get("timing") or {})
            for c in doc["cells"] if c["status"] == "ok" and c.get("summary")}


def t_interval(logs: list[float]) -> tuple[float, float, float]:
    """Geometric-mean ratio and its 95% t interval from per-round log ratios."""
    from scipy import stats

    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), math.nan, math.nan
    half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-r", "--runner", action="append", default=None)
    p.add_argument("-w", "--workload", action="append", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    args.runner = args.runner or ["torch", "tf-graph"]
    args.workload = args.workload or ["cnn", "mlp"]
    if args.quick:
        args.rounds = min(args.rounds, 2)
    per_round: list[dict[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="fwbench-timing-modes-") as tmp:
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            got = {mode: medians(run(mode, args, Path(tmp) / f"r{r}-{mode}.json")) for mode in order}
            per_round.append(got)
            print(f"round {r + 1}/{args.rounds} done ({' then '.join(order)})", file=sys.stderr)
    cells = sorted(set.intersection(*(set(rd[m]) for rd in per_round for m in MODES)))
    print(f"{'cell':24} {'per-step':>10} {'windowed':>10} {'k':>4}  windowed / per-step (95% CI)")
    for cell in cells:
        ps = [rd["per-step"][cell][0] for rd in per_round]
        wd = [rd["windowed"][cell][0] for rd in per_round]
        k = per_round[-1]["windowed"][cell][1].get("window_steps")
        ratio, lo, hi = t_interval([math.log(w / s) for w, s in zip(wd, ps)])
        agree = "agree (within noise)" if lo <= 1.0 <= hi else "DIFFER"
        gm = lambda xs: math.exp(statistics.fmean(map(math.log, xs)))  # noqa: E731
        print(f"{'/'.join(cell):24} {gm(ps) * 1e3:8.2f}ms {gm(wd) * 1e3:8.2f}ms {k!s:>4}  "
              f"{ratio:.3f} ({lo:.3f}–{hi:.3f}) {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
