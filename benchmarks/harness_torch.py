"""Does the harness add anything? fwbench's torch runners vs plain hand-written PyTorch loops, same networks.

Three models, and for each two pairs, each fwbench's own cell (``fwbench run``, one worker process, its
session's step) against the loop a user would write around the same network:

- ``cnn``: the bundled ``cnn.toml`` (Adam, batch 64) as an ``nn.Sequential``;
- ``resnet20``: the bundled ``resnet20.toml`` (SGD momentum 0.9, batch 128) as a hand-written ``nn.Module``
  (``BasicBlock`` / ``ResNet20`` classes as in torchvision, ``ReLU(inplace=True)``), loaded with the same
  shared weights (``fwbench.weights.init_params``, transposed by hand) and computing the same math
  (TensorFlow's ``same`` padding at stride 2: ``ZeroPad2d((0, 1, 0, 1))`` before the conv);
- ``transformer``: the bundled ``transformer.toml`` (Adam 3e-3, batch 32 of 64 tokens) as a nanoGPT-style
  ``nn.Module``: ``nn.Embedding`` plus a position ``nn.Parameter``, pre-LN blocks with one packed
  ``Linear(d, 3d)`` for q/k/v, ``F.scaled_dot_product_attention(is_causal=True)``, an output ``Linear`` and a
  ``Linear-GELU-Linear`` MLP; the shared weights converted by hand (Keras's ``[d, heads, key_dim]`` q/k/v
  kernels flattened head-major, transposed and stacked), checked by an assertion that its initial loss on
  the first batch matches ``fwbench.reference`` within 1e-4 relative; per-token cross-entropy, the
  workload's ``markov`` batches;

and the pairs:

- ``torch``: eager PyTorch;
- ``torch-compile``: ``model = torch.compile(model)`` (default mode, inductor); loss, backward and the
  optimizer step stay outside the compiled region, as in fwbench's ``torch-compile`` runner.

Every side runs in a fresh process with the same thread count (``torch.set_num_threads``) and a fixed
number of timed steps after the workload's warm-up steps (the first of which pays the compilation). The
sides alternate within each round, and which side goes first alternates between rounds, so that drift and
load from other processes hit both alike. Per step: perf_counter around the step, loss fetched with
``.item()``. For each pair it prints the ratio fwbench / hand-written of the median step (target
1.00 ± 0.03), the median of the per-round ratios with their spread (lowest-highest), and the ratio of the
10th percentiles (the steps least disturbed by other load).

    python benchmarks/harness_torch.py                          # everything: 5 rounds x 200 steps, 2 threads
    python benchmarks/harness_torch.py --model resnet20 --pair torch --steps 50
    python benchmarks/harness_torch.py --pair torch-compile     # only the torch.compile pairs
    python benchmarks/harness_torch.py --model transformer --quick
    python benchmarks/harness_torch.py --quick                  # a smoke run: 2 rounds x 3 steps
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
MODELS = ("cnn", "resnet20", "transformer")
WARMUP = {"cnn": 5, "resnet20": 3, "transformer": 3}  # the workloads' warm-up steps; the hand loops discard as many
# the bundled workload's timing, replaced by a fixed step count (min = max = steps, no time cap)
TIMING = {"cnn": ("min_steps = 30", "max_steps = 2000", "max_seconds = 15.0", "warmup = 5"),
          "resnet20": ("min_steps = 10", "max_steps = 500", "max_seconds = 20.0", "warmup = 3"),
          "transformer": ("min_steps = 10", "max_steps = 500", "max_seconds = 15.0", "warmup = 3")}

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

HAND_RESNET = r"""
import json, sys, time
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        # TensorFlow's "same" at stride 2 puts the extra pixel at the bottom/right, hence the explicit pad
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=0 if stride == 2 else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(self.pad(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def load_shared_weights(model, params):
    # fwbench's shared weights, Keras layout, in the same order as this model's conv / bn / linear modules
    mods = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    params = [p for p in params if p]
    assert len(mods) == len(params)
    with torch.no_grad():
        for m, p in zip(mods, params):
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.from_numpy(p["kernel"].transpose(3, 2, 0, 1).copy()))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.from_numpy(p["kernel"].T.copy()))
                m.bias.copy_(torch.from_numpy(p["bias"]))
            else:
                for name, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                  ("running_var", "moving_variance")):
                    getattr(m, name).copy_(torch.from_numpy(p[key]))


if __name__ == "__main__":
    from fwbench.weights import init_params
    from fwbench.workload import load_file

    toml, compiled = sys.argv[1], sys.argv[5] == "1"
    steps, threads, warmup = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = load_file(toml)
    model = ResNet20()
    load_shared_weights(model, init_params(spec))
    if compiled:
        model = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    n = spec.batch_size
    batches = [(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))) for _ in range(8)]
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


HAND_TRANSFORMER = r"""
import json, sys, time
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def attention(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab=256, context=64, d=128, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(context, d))
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos[:idx.shape[1]]
        return self.head(self.ln_f(self.blocks(x)))


def load_shared_weights(model, params):
    # fwbench's shared weights, Keras layout: embedding, position table, then per block layernorm,
    # multi-head attention, layernorm, dense, dense; the final layernorm and the head
    p = iter([q for q in params if q])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    with torch.no_grad():
        model.tok.weight.copy_(t(next(p)["embeddings"]))
        model.pos.copy_(t(next(p)["embeddings"]))

        def layernorm(m, q):
            m.weight.copy_(t(q["gamma"]))
            m.bias.copy_(t(q["beta"]))

        def linear(m, q):
            m.weight.copy_(t(q["kernel"].T))
            m.bias.copy_(t(q["bias"]))

        for blk in model.blocks:
            layernorm(blk.ln1, next(p))
            a = next(p)
            d, h, k = a["query_kernel"].shape
            # [d, heads, key_dim] -> [d, heads*key_dim] (head-major, as view(b, t, heads, key_dim) splits it),
            # transposed to Linear's [out, in]; q, k, v stacked on the output axis as split(d) reads them
            blk.qkv.weight.copy_(t(np.concatenate([a[f"{n}_kernel"].reshape(d, h * k).T
                                                   for n in ("query", "key", "value")])))
            blk.qkv.bias.copy_(t(np.concatenate([a[f"{n}_bias"].reshape(h * k) for n in ("query", "key", "value")])))
            blk.proj.weight.copy_(t(a["output_kernel"].reshape(h * k, d).T))
            blk.proj.bias.copy_(t(a["output_bias"]))
            layernorm(blk.ln2, next(p))
            linear(blk.mlp[0], next(p))
            linear(blk.mlp[2], next(p))
        layernorm(model.ln_f, next(p))
        linear(model.head, next(p))
    assert next(p, None) is None


if __name__ == "__main__":
    from fwbench import reference
    from fwbench.data import DataSource
    from fwbench.weights import init_params
    from fwbench.workload import load_file

    toml, compiled = sys.argv[1], sys.argv[5] == "1"
    steps, threads, warmup = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = load_file(toml)
    params = init_params(spec)
    model = GPT()
    load_shared_weights(model, params)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in DataSource(spec).batches(8)]
    # the conversion by hand must reproduce fwbench's reference: the initial loss on the first batch
    x0, y0 = batches[0]
    with torch.no_grad():
        mine = F.cross_entropy(model(x0).reshape(-1, 256), y0.reshape(-1)).item()
    ref = reference.cross_entropy(reference.forward(spec, params, x0.numpy()), y0.numpy())
    assert abs(mine - ref) <= 1e-4 * abs(ref), f"initial loss {mine} vs reference {ref}"
    print(f"initial loss {mine:.8f} reference {ref:.8f} rel {abs(mine - ref) / abs(ref):.1e}", file=sys.stderr)
    if compiled:
        model = torch.compile(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-7)
    times = []
    for i in range(steps + warmup):
        x, y = batches[i % 8]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
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


def bundled_toml(model: str) -> Path:
    """The bundled workload file, wherever this fwbench keeps its workloads (no framework is imported)."""
    try:
        from fwbench.workload import available_workloads

        return Path(available_workloads()[model])
    except (ImportError, KeyError, TypeError):
        root = Path(__file__).resolve().parent.parent
        return next((p for p in (root / "fwbench" / "workloads" / f"{model}.toml", root / "workloads" / f"{model}.toml")
                     if p.is_file()), root / "fwbench" / "workloads" / f"{model}.toml")


def fixed_workload(model: str, steps: int, tmp: Path) -> Path:
    """The bundled workload with a fixed step count (min = max = steps, no time cap), like the hand-written loop."""
    src = bundled_toml(model).read_text()
    min_steps, max_steps, max_seconds, warmup = TIMING[model]
    for old, new in ((min_steps, f"min_steps = {steps}"), (max_steps, f"max_steps = {steps}"),
                     (max_seconds, "max_seconds = 3600.0"), (warmup, f"warmup = {WARMUP[model]}")):
        assert old in src, f"workloads/{model}.toml no longer has {old!r}; update this script"
        src = src.replace(old, new)
    path = tmp / f"{model}_fixed.toml"
    path.write_text(src)
    return path


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd[:6])} ...\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


def fwbench_steps(runner: str, workload: Path, threads: int, out: Path) -> list[float]:
    # --no-target: a workload with a [target] (transformer) would otherwise train to it after the timing
    cmd = [sys.executable, "-m", "fwbench", "run", "-r", runner, "-w", str(workload), "--threads", str(threads),
           "--no-target", "--out", str(out)]
    run(cmd)
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["status"] == "ok", cell.get("reason")
    return [float(s) for s in cell["step_s"]]


def hand_steps(model: str, runner: str, workload: Path, steps: int, threads: int) -> list[float]:
    compiled = "1" if runner == "torch-compile" else "0"
    if model == "cnn":
        cmd = [sys.executable, "-c", HAND_WRITTEN, str(steps), str(threads), str(WARMUP[model]), compiled]
    else:
        script = HAND_RESNET if model == "resnet20" else HAND_TRANSFORMER
        cmd = [sys.executable, "-c", script, str(workload), str(steps), str(threads), str(WARMUP[model]), compiled]
    p = run(cmd)
    return [float(s) for s in json.loads(p.stdout.strip().splitlines()[-1])]


def p10(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 10]


def summary(label: str, t: PairTimes) -> str:
    fw = [s for r in t.fwbench for s in r]
    hw = [s for r in t.hand for s in r]
    f, h = statistics.median(fw), statistics.median(hw)
    per_round = [statistics.median(a) / statistics.median(b) for a, b in zip(t.fwbench, t.hand)]
    return (f"{label}: median step fwbench {f * 1e3:.2f} ms, hand-written {h * 1e3:.2f} ms, "
            f"ratio {f / h:.3f} (target 1.00 ± 0.03); per-round ratios: median {statistics.median(per_round):.3f}, "
            f"spread {min(per_round):.3f}-{max(per_round):.3f} over {len(per_round)} rounds "
            f"({', '.join(f'{r:.3f}' for r in per_round)}); 10th percentiles {p10(fw) * 1e3:.2f} vs "
            f"{p10(hw) * 1e3:.2f} ms = {p10(fw) / p10(hw):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=(*MODELS, "all"), default="all",
                    help="which network: cnn, resnet20, transformer, or all (default)")
    ap.add_argument("--pair", choices=(*PAIRS, "all"), default="all",
                    help="which pair to run: torch (eager), torch-compile, or all (default)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds; each runs every side of every pair once (5)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per side per round, after warm-up (200)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads on both sides (default 2)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds x 3 steps unless given")
    a = ap.parse_args()
    rounds = a.rounds if a.rounds is not None else (2 if a.quick else 5)
    steps = a.steps if a.steps is not None else (3 if a.quick else 200)
    cases = [(m, p) for m in (MODELS if a.model == "all" else (a.model,))
             for p in (PAIRS if a.pair == "all" else (a.pair,))]
    times = {c: PairTimes() for c in cases}
    with tempfile.TemporaryDirectory() as tmp:
        workloads = {m: fixed_workload(m, steps, Path(tmp)) for m in {m for m, _ in cases}}
        for r in range(rounds):
            for model, runner in cases:
                out = Path(tmp) / f"{model}-{runner}-{r}.json"
                sides = [lambda: fwbench_steps(runner, workloads[model], a.threads, out),
                         lambda: hand_steps(model, runner, workloads[model], steps, a.threads)]
                first, second = sides if r % 2 == 0 else sides[::-1]
                x, y = first(), second()
                fw, hw = (x, y) if r % 2 == 0 else (y, x)
                times[(model, runner)].fwbench.append(fw)
                times[(model, runner)].hand.append(hw)
                print(f"round {r + 1} {model} {runner}: fwbench {statistics.median(fw) * 1e3:.2f} ms  "
                      f"hand-written {statistics.median(hw) * 1e3:.2f} ms", flush=True)
    print()
    for model, runner in cases:
        print(summary(f"{model} {runner}", times[(model, runner)]))


if __name__ == "__main__":
    main()
