"""Does the harness add anything? fwbench's `torch` runner vs a plain hand-written PyTorch loop, same CNN.

Both run in fresh processes with the same thread count, alternating A/B for several rounds so that
machine drift hits both alike. Each side reports the median of per-step times measured the same way a
user would (perf_counter around one step, loss fetched with .item()). Prints the ratio of medians
fwbench / hand-written; the target is 0.97-1.05.

    python benchmarks/harness_torch.py [--rounds 3] [--steps 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HAND_WRITTEN = r"""
import sys, time, statistics, torch
from torch import nn
steps, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
batches = [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(8)]
times = []
for i in range(steps + 5):
    x, y = batches[i % 8]
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    loss.item()
    if i >= 5:
        times.append(time.perf_counter() - t0)
print(statistics.median(times))
"""


def fwbench_median(steps: int, threads: int, tmp: Path) -> float:
    out = tmp / "run.json"
    cmd = [sys.executable, "-m", "fwbench", "run", "-r", "torch", "-w", "cnn", "--threads", str(threads),
           "--out", str(out)]
    # fixed step count, like the hand-written loop: min = max = steps, no time cap
    wl = tmp / "cnn_fixed.toml"
    src = (Path(__file__).resolve().parent.parent / "fwbench" / "workloads" / "cnn.toml").read_text()
    src = src.replace("min_steps = 30", f"min_steps = {steps}").replace("max_steps = 2000", f"max_steps = {steps}")
    src = src.replace("max_seconds = 15.0", "max_seconds = 3600.0")
    wl.write_text(src)
    cmd[cmd.index("cnn")] = str(wl)
    subprocess.run(cmd, check=True, capture_output=True)
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["status"] == "ok", cell.get("reason")
    return cell["summary"]["median"]


def hand_median(steps: int, threads: int) -> float:
    p = subprocess.run([sys.executable, "-c", HAND_WRITTEN, str(steps), str(threads)], check=True,
                       capture_output=True, text=True)
    return float(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            ours.append(fwbench_median(a.steps, a.threads, Path(tmp)))
            theirs.append(hand_median(a.steps, a.threads))
            print(f"round {r + 1}: fwbench {ours[-1] * 1e3:.2f} ms  hand-written {theirs[-1] * 1e3:.2f} ms", flush=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"median step: fwbench torch {statistics.median(ours) * 1e3:.2f} ms, "
          f"hand-written {statistics.median(theirs) * 1e3:.2f} ms, ratio {ratio:.3f} (target 0.97-1.05)")


if __name__ == "__main__":
    main()
