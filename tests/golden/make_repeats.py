"""Build tests/golden/repeats.json from a fake --repeats 3 run (see tests/golden/README.md)."""
import copy, json, sys
import numpy as np
sys.path.insert(0, ".")
from fwbench import stats

src = json.load(open(sys.argv[1]))
base = [c for c in src["cells"]]
out = copy.deepcopy(src)
out["config"]["runners"] = ["torch", "tf-graph", "keras", "keras-jax", "tf-eager"]
out["config"]["argv"] = ["run", "-r", "torch", "-r", "tf-graph", "-r", "keras", "-r", "keras-jax", "-r", "tf-eager",
                         "-w", "tinymlp", "--repeats", "3", "--quick", "-o", "repeats.json"]
cells = []

def summary(x):
    x = np.asarray(x)
    m, lo, hi = (float(v) for v in stats.bootstrap_median_ci(x))
    return {"n": len(x), "median": m, "ci_low": lo, "ci_high": hi, "mean": float(x.mean()), "stdev": float(x.std(ddof=1)),
            "min": float(x.min()), "max": float(x.max())}

def make(runner, rep, steps, parity, peak, family):
    c = copy.deepcopy(base[rep % 3])
    c.update(id=f"tinymlp/{runner}/cpu/{rep}", runner=runner, family=family, repeat=rep,
             step_s=[round(s, 9) for s in steps], warmup_s=[round(steps[0] * 1.1, 9)] * 2,
             first_step_s=round(steps[0] * 40, 9), summary=summary(steps))
    c["samples_per_s"] = c["batch_size"] / c["summary"]["median"]
    c["samples_per_s_ci"] = [c["batch_size"] / c["summary"]["ci_high"], c["batch_size"] / c["summary"]["ci_low"]]
    c["parity"] = {**c["parity"], **parity}
    c["flops_per_step"] = 2_000_000
    c["achieved_flops"] = 2_000_000 / c["summary"]["median"]
    c["peak_flops"] = peak
    c["mfu"] = c["achieved_flops"] / peak
    c["calibration"] = {"peak_flops": peak, "method": "numpy fp32 matmul", "dtype": "fp32", "n": 256, "samples": 9,
                        "per_sample": 1, "best_s": 0.01, "seconds": 0.5, "note": ""}
    c["settings"] = {}
    return c

ok = {"status": "ok", "detail": ""}
for rep in range(3):
    s = np.array(base[rep]["step_s"])
    cells.append(make("torch", rep, list(s * 4.5), {"status": "reference"}, 1.34e11, "torch"))
for rep in range(3):
    s = np.array(base[rep]["step_s"])
    cells.append(make("tf-graph", rep, list(s * 1.8), ok, 3.02e11, "tensorflow"))
for rep in range(3):
    s = np.array(base[(rep + 1) % 3]["step_s"])
    cells.append(make("keras", rep, list(s * (1.8 + 0.03 * (rep - 1))), ok, 2.9e11, "keras"))
s = np.array(base[0]["step_s"]) * 3.0 * np.array([1.0, 1.9, 0.6, 2.4, 1.0] * 4)
cells.append(make("keras-jax", 0, list(s), {"status": "mismatch",
                  "detail": "K-step loss 2.31 vs reference 2.19 (tolerance 0.002)"}, 2.0e11, "keras"))
bad = {k: v for k, v in copy.deepcopy(base[0]).items()
       if k in ("workload", "device", "mode", "batch_size", "threads", "options", "versions")}
bad.update(id="tinymlp/tf-eager/cpu/0", runner="tf-eager", family="tensorflow", repeat=0, status="failed",
           reason="RuntimeError: the worker exited with code 1 after step 3\nTraceback (most recent call last): ...")
cells.append(bad)
out["cells"] = cells
out["parity"] = {**src["parity"], "groups": [{"workload": "tinymlp", "device": "cpu", "repeat": 0, "reference": "torch",
                 "ok": False, "runners": ["torch", "tf-graph", "keras", "keras-jax"]}],
                 "mismatches": ["tinymlp/keras-jax/cpu/0"], "ok": False}
out["run_id"] = "20261202-000000-repeats"
out["created"] = "2026-12-02T00:00:00Z"
for k in ("hostname",):
    out["environment"][k] = "fixture-host"
print(json.dumps(out, indent=1))
