"""How often does ``fwbench compare`` cry wolf on this machine, and how often does it catch a real slowdown?

Runs real cells back to back with ``fwbench run`` (fresh worker processes, real timers) and compares them
with :func:`fwbench.compare.compare`, exactly as the CI gate does:

* **A/A**: the same cell run twice in a row; any "slower" verdict is a false alarm.
* **A/B**: the same cell, then a genuinely slower version of it run right after: for the ``torch``
  runner the batch is 10% larger (10% more arithmetic per step, same network); for the ``fake`` runner
  each step sleeps 10% longer (``FWBENCH_FAKE_STEP_MS``). A "slower" verdict is a detection.

Each round runs ``base, base, slow`` so that every A/A pair and every A/B pair was measured back to back.
Results are analysed twice: with all ``--repeats`` processes (between-process statistics) and with only
the first process of each cell (``--repeats 1``, pooled steps). The realised slowdown is printed too
(pooled median ratio over all rounds), since a larger batch does not cost exactly 10% more.

    python benchmarks/gate_quality.py --rounds 6             # collect into a temp folder and analyse
    python benchmarks/gate_quality.py --analyze DIR          # analyse runs collected earlier
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fwbench import results  # noqa: E402

WORKLOAD = """
name = "gate-mlp"
description = "gate benchmark MLP 256-256-10, batch {batch}"
input_shape = [256]
classes = 10
batch_size = {batch}
seed = 0
[timing]
warmup = 5
min_steps = 30
max_steps = 1000
min_seconds = 0.5
max_seconds = 1.5
target_ci = 0.02
[[layers]]
type = "dense"
units = 256
activation = "relu"
[[layers]]
type = "dense"
units = 256
activation = "relu"
[[layers]]
type = "dense"
units = 10
"""
BASE_BATCH, SLOW_BATCH = 128, 141  # 141/128 = 1.10
FAKE_MS = 2.0


def run_once(runner: str, kind: str, out: Path, repeats: int, workdir: Path) -> None:
    env = dict(os.environ)
    if runner == "fake":
        env["FWBENCH_FAKE_STEP_MS"] = str(FAKE_MS * (1.1 if kind == "slow" else 1.0))
    env["FWBENCH_WORKLOADS"] = str(workdir / kind)
    cmd = [sys.executable, "-m", "fwbench", "run", "-r", runner, "-w", "gate-mlp", "--repeats", str(repeats),
           "--threads", "1", "-o", str(out)]
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=900)


def collect(folder: Path, runners: list[str], rounds: int, repeats: int, first: int = 0) -> None:
    for kind, batch in (("base", BASE_BATCH), ("slow", SLOW_BATCH)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        (folder / kind / "gate-mlp.toml").write_text(WORKLOAD.format(batch=batch))
    for runner in runners:
        for r in range(first, first + rounds):
            for j, kind in enumerate(("base", "base", "slow")):
                out = folder / f"{runner}-r{r:02d}-{j}-{kind}.json"
                t0 = time.perf_counter()
                run_once(runner, kind, out, repeats, folder)
                print(f"  {out.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def first_process_only(doc: dict) -> dict:
    d = copy.deepcopy(doc)
    d["cells"] = [c for c in d["cells"] if c.get("repeat", 0) == 0]
    return d


def verdicts(base: dict, current: dict, threshold: float, alpha: float) -> list[dict]:
    from fwbench.compare import compare

    # the slow variant has a larger batch by design: compare it even though the workload definition differs
    return [r.to_dict() for r in compare(base, current, threshold, alpha, allow_mismatch=True).cells]


def analyse(folder: Path, threshold: float, alpha: float) -> dict:
    report: dict = {}
    for runner in sorted({p.name.split("-r")[0] for p in folder.glob("*-r*-*.json")}):
        rounds = sorted({p.name.split("-")[1] for p in folder.glob(f"{runner}-r*.json")})
        docs = {}
        for rd in rounds:
            try:
                docs[rd] = [results.read(folder / f"{runner}-{rd}-{j}-{k}.json")
                            for j, k in enumerate(("base", "base", "slow"))]
            except Exception as exc:  # an incomplete round (interrupted collection) is left out
                print(f"skipping {runner} {rd}: {exc}", file=sys.stderr)
        if not docs:
            continue
        for mode, view in (("processes", lambda d: d), ("steps (first process only)", first_process_only)):
            aa = [verdicts(view(a), view(b), threshold, alpha) for a, b, _ in docs.values()]
            ab = [verdicts(view(b), view(s), threshold, alpha) for _, b, s in docs.values()]
            aa_cells = [c for v in aa for c in v if c["verdict"] not in ("missing", "incomparable")]
            ab_cells = [c for v in ab for c in v if c["verdict"] not in ("missing", "incomparable")]
            count = lambda cells, what: sum(c["verdict"] == what for c in cells)  # noqa: E731
            report[f"{runner} / {mode}"] = {
                "a/a comparisons": len(aa_cells),
                "a/a false alarms (slower)": count(aa_cells, "slower"),
                "a/a inconclusive": count(aa_cells, "inconclusive"),
                "a/a ratios": [round(c["ratio"], 4) for c in aa_cells],
                "a/b comparisons": len(ab_cells),
                "a/b detected (slower)": count(ab_cells, "slower"),
                "a/b inconclusive": count(ab_cells, "inconclusive"),
                "a/b ratios": [round(c["ratio"], 4) for c in ab_cells],
                "mdc (median)": round(float(np.median([c["mdc"] for c in aa_cells + ab_cells])), 4)
                if aa_cells + ab_cells else None,
            }
        pooled = {k: np.concatenate([np.asarray(c["step_s"]) for d in docs.values() for i, doc in enumerate(d)
                                     if (k == "slow") == (i == 2) for c in doc["cells"] if c["status"] == "ok"])
                  for k in ("base", "slow")}
        if all(len(v) for v in pooled.values()):
            report[f"{runner} / realised slowdown"] = round(float(np.median(pooled["slow"]) / np.median(pooled["base"])), 4)
    return report


def print_report(report: dict, threshold: float, alpha: float) -> None:
    print(f"gate: threshold {threshold:.0%}, alpha {alpha}")
    for key, r in report.items():
        if not isinstance(r, dict):
            print(f"{key}: x{r}")
            continue
        fp = r["a/a false alarms (slower)"] / max(r["a/a comparisons"], 1)
        det = r["a/b detected (slower)"] / max(r["a/b comparisons"], 1)
        print(f"{key}: A/A false alarms {r['a/a false alarms (slower)']}/{r['a/a comparisons']} ({fp:.0%}), "
              f"inconclusive {r['a/a inconclusive']}; A/B detected {r['a/b detected (slower)']}/{r['a/b comparisons']} "
              f"({det:.0%}), inconclusive {r['a/b inconclusive']}; median MDC {r['mdc (median)']}")
        print(f"    A/A ratios {r['a/a ratios']}\n    A/B ratios {r['a/b ratios']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--first-round", type=int, default=0, help="number of the first round (to add rounds to --dir)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runner", action="append", default=None, help="torch and/or fake (default: both)")
    ap.add_argument("--dir", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument("--analyze", type=Path, default=None, help="only analyse runs collected earlier in this folder")
    ap.add_argument("--threshold", type=float, nargs="*", default=None, help="thresholds to report (default 0.05 0.10)")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--collect-only", action="store_true", help="collect, do not analyse")
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    a = ap.parse_args()
    folder = a.analyze or a.dir or Path(tempfile.mkdtemp(prefix="fwbench-gate-"))
    if a.analyze is None:
        print(f"collecting into {folder}", file=sys.stderr)
        collect(folder, a.runner or ["fake", "torch"], a.rounds, a.repeats, a.first_round)
        if a.collect_only:
            return 0
    everything = {}
    for thr in a.threshold or [0.05, 0.10]:
        rep = analyse(folder, thr, a.alpha)
        print_report(rep, thr, a.alpha)
        everything[f"threshold {thr}"] = rep
    if a.json:
        a.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
