"""Does the harness add anything? fwbench's torch runners vs plain hand-written PyTorch loops, same CNN.

Two pairs, each fwbench's own cell (``fwbench run``, one worker process, its session's step) against the
loop a user would write around the same CNN (the bundled ``cnn.toml``: Adam, batch 64, ``.item()`` per step):

- ``torch``: eager PyTorch;
- ``torch-compile``: ``model = torch.compile(model)`` (default mode, inductor); loss, backward and the
  optimizer step stay outside the compiled region, as in fwbench's ``torch-compile`` runner.

Every side runs in a fresh process with the same thread count (``torch.set_num_threads``) and a fixed
number of timed steps after 5 warm-up steps (the first of which pays the compilation). The sides
alternate within each round, and which side goes first alternates between rounds, so that drift and
load from other processes hit both alike. Per step: perf_counter around the step, loss fetched with
``.item()``. For each pair it prints the ratio fwbench / hand-written of the median step (target
1.00 ± 0.03), the median of the per-round ratios, and the ratio of the 10th percentiles (the steps least
disturbed by other load).

    python benchmarks/harness_torch.py                       # both pairs, 5 rounds x 200 steps, 2 threads
    python benchmarks/harness_torch.py --pair torch-compile  # only the torch.compile pair
    python benchmarks/harness_torch.py --rounds 5 --steps 60 # a short look on a busy machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PAIRS = ("torch", "torch-compile")  # fwbench runner names; the hand loop compiles for "torch-compile"
WARMUP = 5  # cnn.toml's warm-up steps; the hand loop discards as many

HAND_WRITTEN = r"""
import json, sys, time, torch
from torch import nn
steps, threads, warmup, compiled = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
torch.set_num_threads(threads)
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Linear(64, 10))
if compiled:
    model = torch.compile(model)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
batches = [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(8)]
times = []
for i in range(steps + warmup):
    x, y = batches[i % 8]
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    loss.item()
    if i >= warmup:
        times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


@dataclass
class PairTimes:
    """Raw per-step seconds of both sides of one pair, kept per round."""

    fwbench: list[list[float]] = field(default_factory=list)
    hand: list[list[float]] = field(default_factory=list)


def cnn_toml() -> Path:
    """The bundled cnn.toml, wherever this fwbench keeps its workloads (no framework is imported)."""
    try:
        from fwbench.workload import available_workloads

        return Path(available_workloads()["cnn"])
    except (ImportError, KeyError, TypeError):
        root = Path(__file__).resolve().parent.parent
        return next((p for p in (root / "fwbench" / "workloads" / "cnn.toml", root / "workloads" / "cnn.toml")
                     if p.is_file()), root / "fwbench" / "workloads" / "cnn.toml")


def fixed_workload(steps: int, tmp: Path) -> Path:
    """cnn.toml with a fixed step count (min = max = steps, no time cap), like the hand-written loop."""
    src = cnn_toml().read_text()
    for old, new in (("min_steps = 30", f"min_steps = {steps}"), ("max_steps = 2000", f"max_steps = {steps}"),
                     ("max_seconds = 15.0", "max_seconds = 3600.0"), ("warmup = 5", f"warmup = {WARMUP}")):
        assert old in src, f"workloads/cnn.toml no longer has {old!r}; update this script"
        src = src.replace(old, new)
    path = tmp / "cnn_fixed.toml"
    path.write_text(src)
    return path


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd[:6])} ...\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


def fwbench_steps(runner: str, workload: Path, threads: int, out: Path) -> list[float]:
    cmd = [sys.executable, "-m", "fwbench", "run", "-r", runner, "-w", str(workload), "--threads", str(threads),
           "--out", str(out)]
    run(cmd)
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["status"] == "ok", cell.get("reason")
    return [float(s) for s in cell["step_s"]]


def hand_steps(runner: str, steps: int, threads: int) -> list[float]:
    compiled = "1" if runner == "torch-compile" else "0"
    p = run([sys.executable, "-c", HAND_WRITTEN, str(steps), str(threads), str(WARMUP), compiled])
    return [float(s) for s in json.loads(p.stdout.strip().splitlines()[-1])]


def p10(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 10]


def summary(runner: str, t: PairTimes) -> str:
    fw = [s for r in t.fwbench for s in r]
    hw = [s for r in t.hand for s in r]
    f, h = statistics.median(fw), statistics.median(hw)
    per_round = [statistics.median(a) / statistics.median(b) for a, b in zip(t.fwbench, t.hand)]
    return (f"{runner}: median step fwbench {f * 1e3:.2f} ms, hand-written {h * 1e3:.2f} ms, "
            f"ratio {f / h:.3f} (target 1.00 ± 0.03); median of per-round ratios {statistics.median(per_round):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in per_round)}); 10th percentiles {p10(fw) * 1e3:.2f} vs "
            f"{p10(hw) * 1e3:.2f} ms = {p10(fw) / p10(hw):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", choices=(*PAIRS, "all"), default="all",
                    help="which pair to run: torch (eager), torch-compile, or all (default)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; each runs every side of every pair once")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per side per round (after 5 warm-up)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads on both sides (default 2)")
    a = ap.parse_args()
    pairs = PAIRS if a.pair == "all" else (a.pair,)
    times = {p: PairTimes() for p in pairs}
    with tempfile.TemporaryDirectory() as tmp:
        workload = fixed_workload(a.steps, Path(tmp))
        for r in range(a.rounds):
            for runner in pairs:
                out = Path(tmp) / f"{runner}-{r}.json"
                sides = [lambda: fwbench_steps(runner, workload, a.threads, out),
                         lambda: hand_steps(runner, a.steps, a.threads)]
                first, second = sides if r % 2 == 0 else sides[::-1]
                x, y = first(), second()
                fw, hw = (x, y) if r % 2 == 0 else (y, x)
                times[runner].fwbench.append(fw)
                times[runner].hand.append(hw)
                print(f"round {r + 1} {runner}: fwbench {statistics.median(fw) * 1e3:.2f} ms  "
                      f"hand-written {statistics.median(hw) * 1e3:.2f} ms", flush=True)
    print()
    for runner in pairs:
        print(summary(runner, times[runner]))


if __name__ == "__main__":
    main()
