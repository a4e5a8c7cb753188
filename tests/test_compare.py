"""fwbench compare / export / run --baseline: verdicts, exit codes, renderers, and real end-to-end gates."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke
from fwbench.compare import compare, decide

ENV = {"cpu": "Test CPU 9000", "gpus": [], "versions": {"torch": "2.13.0"}}


def cell(workload: str = "w", runner: str = "fake", device: str = "cpu", repeat: int = 0, factor: float = 1.0,
         seed: int = 0, cv: float = 0.05, n: int = 40, status: str = "ok", **extra) -> dict:
    rng = np.random.default_rng(seed)
    steps = (0.01 * factor * rng.lognormal(0, cv, n)).tolist() if status == "ok" else []
    c = {"id": f"{workload}/{runner}/{device}/{repeat}", "workload": workload, "runner": runner, "device": device,
         "repeat": repeat, "status": status, "reason": "" if status == "ok" else "boom", "step_s": steps,
         "mode": "train", "batch_size": 8, "threads": 2, "options": {"channels_last": False}, "versions": {},
         "summary": {"median": 0.01, "ci_low": 0.0099, "ci_high": 0.0101, "n": n} if steps else None}
    c.update(extra)
    return c


def doc(cells: list[dict], env: dict | None = None, workloads: dict | None = None) -> dict:
    return {"schema_version": 1, "fwbench_version": "0.1.0", "run_id": "r", "created": "", "config": {},
            "environment": copy.deepcopy(env or ENV), "workloads": workloads or {}, "parity": {}, "cells": cells}


def repeated(factor: float = 1.0, seed: int = 0, processes: int = 3, **kw) -> list[dict]:
    return [cell(repeat=k, factor=factor, seed=seed * 100 + k, **kw) for k in range(processes)]


def verdict_of(base: dict, cur: dict, **kw) -> str:
    (v,) = compare(base, cur, **kw).cells
    return v.verdict


# ---------------------------------------------------------------- verdicts

def test_decision_rule() -> None:
    assert decide(1.10, 0.001, 0.03, 0.05, 0.01) == "slower"
    assert decide(1.10, 0.02, 0.03, 0.05, 0.01) == "inconclusive"  # beyond threshold, not significant
    assert decide(1.03, 0.001, 0.03, 0.05, 0.01) == "no change"  # significant but within threshold
    assert decide(0.90, 0.001, 0.03, 0.05, 0.01) == "faster"
    assert decide(1.00, 0.9, 0.08, 0.05, 0.01) == "inconclusive"  # could not have seen 5%
    assert decide(1.00, 0.9, 0.03, 0.05, 0.01) == "no change"


def test_same_noise_is_no_change_and_thirty_percent_is_slower() -> None:
    base = doc(repeated(seed=1))
    assert verdict_of(base, doc(repeated(seed=2))) == "no change"
    result = compare(base, doc(repeated(1.3, seed=3)))
    (v,) = result.cells
    assert v.verdict == "slower" and v.method == "processes" and v.ratio == pytest.approx(1.3, rel=0.05)
    assert v.ci_low < v.ratio < v.ci_high and v.q >= v.p
    assert result.exit_code() == 1


def test_one_process_pools_steps_and_says_so() -> None:
    result = compare(doc([cell(seed=1)]), doc([cell(seed=2, factor=1.3)]))
    assert result.cells[0].method == "steps" and result.cells[0].verdict == "slower"
    assert any("--repeats 3" in n for n in result.notes)


def test_process_that_was_slow_throughout_is_not_a_regression() -> None:
    """One of three current processes 12% slow on every step: pooled steps would call it significant;
    between-process statistics see one odd process and do not cry wolf."""
    cur = repeated(seed=2)
    cur[1] = cell(repeat=1, factor=1.12, seed=7)
    assert verdict_of(doc(repeated(seed=1)), doc(cur)) in ("no change", "inconclusive")


def test_noisy_cell_is_inconclusive_with_its_mdc() -> None:
    result = compare(doc([cell(seed=1, cv=0.5, n=10)]), doc([cell(seed=2, cv=0.5, n=10)]))
    (v,) = result.cells
    assert v.verdict == "inconclusive" and v.mdc > 0.05
    assert result.exit_code() == 0 and result.exit_code(fail_on_inconclusive=True) == 3


def test_bh_adjusts_across_cells() -> None:
    base = doc([cell(workload=f"w{i}", seed=i) for i in range(6)])
    cur = doc([cell(workload=f"w{i}", seed=10 + i, factor=1.08 if i == 0 else 1.0) for i in range(6)])
    cells = compare(base, cur).cells
    assert all(c.q >= c.p for c in cells)
    ps = np.array([c.p for c in cells])
    assert cells[int(np.argmin(ps))].q == pytest.approx(min(1.0, ps.min() * 6))


def test_missing_cells_both_ways_and_failed_cells() -> None:
    base = doc([cell("a"), cell("b"), cell("c")])
    cur = doc([cell("a", seed=5), cell("c", status="crashed"), cell("d")])
    result = compare(base, cur)
    by = {c.workload: c for c in result.cells}
    assert [c.workload for c in result.cells] == ["a", "b", "c", "d"]
    assert by["b"].verdict == "missing" and by["b"].missing_in == "current"
    assert by["c"].verdict == "missing" and "current crashed (boom)" in by["c"].detail
    assert by["d"].verdict == "missing" and by["d"].missing_in == "baseline" and "new" in by["d"].detail
    assert result.exit_code() == 0 and result.exit_code(fail_on_missing=True) == 1
    only_new = compare(doc([cell("a")]), doc([cell("a", seed=5), cell("d")]))
    assert only_new.exit_code(fail_on_missing=True) == 0  # a new cell is never a failure


def test_zero_step_times_are_left_out() -> None:
    zeros = cell(seed=2)
    zeros["step_s"] = [0.0] * 5 + zeros["step_s"]
    assert verdict_of(doc([cell()]), doc([zeros])) == "no change"
    empty = cell(seed=2)
    empty["step_s"] = [0.0, 0.0]
    (v,) = compare(doc([cell()]), doc([empty])).cells
    assert v.verdict == "missing" and "no step samples" in v.detail


@pytest.mark.parametrize("change, expected", [
    (lambda e, c: e.update(cpu="Other CPU"), "CPU model: 'Test CPU 9000' vs 'Other CPU'"),
    (lambda e, c: c.update(versions={"torch": "2.14.0"}), "torch version: none vs '2.14.0'"),
    (lambda e, c: c.update(threads=4), "threads: 2 vs 4"),
    (lambda e, c: c.update(options={"channels_last": True}), "option channels_last: False vs True"),
    (lambda e, c: c.update(batch_size=16), "batch size: 8 vs 16"),
])
def test_incomparable_names_the_keys(change, expected) -> None:
    base = doc([cell()])
    cur = doc([cell(seed=3)])
    change(cur["environment"], cur["cells"][0])
    (v,) = compare(base, cur).cells
    assert v.verdict == "incomparable" and expected in v.detail
    (v,) = compare(base, cur, allow_mismatch=True).cells
    assert v.verdict == "no change" and expected in v.detail


def test_gpu_model_matters_for_cuda_cells_only() -> None:
    env_a = dict(ENV, gpus=[{"name": "NVIDIA H100"}])
    env_b = dict(ENV, gpus=[{"name": "NVIDIA A100"}])
    (v,) = compare(doc([cell(device="cuda")], env_a), doc([cell(device="cuda", seed=2)], env_b)).cells
    assert v.verdict == "incomparable" and "GPU model: 'NVIDIA H100' vs 'NVIDIA A100'" in v.detail
    assert verdict_of(doc([cell()], env_a), doc([cell(seed=2)], env_b)) == "no change"


def test_workload_definition_and_new_options() -> None:
    spec = {"name": "w", "input_shape": [4], "layers": [{"type": "dense", "units": 3}], "batch_size": 8,
            "timing": {"max_steps": 10}, "description": "x"}
    other_timing = dict(spec, timing={"max_steps": 99}, description="y", input_shape=(4,))
    assert verdict_of(doc([cell()], workloads={"w": spec}), doc([cell(seed=2)], workloads={"w": other_timing})) == "no change"
    wider = dict(spec, layers=[{"type": "dense", "units": 30}])
    (v,) = compare(doc([cell()], workloads={"w": spec}), doc([cell(seed=2)], workloads={"w": wider})).cells
    assert v.verdict == "incomparable" and "workload definition differs (layers)" in v.detail
    # an option that only the newer fwbench records does not make an old baseline incomparable
    newer = doc([cell(seed=2, options={"channels_last": False, "precision": "fp32"})])
    assert verdict_of(doc([cell()]), newer) == "no change"


def _timing_notes(result) -> list[str]:
    return [n for n in result.notes if n.startswith("timing differs")]


def test_a_different_timing_policy_is_compared_and_noted() -> None:
    """Timing mode, CUDA graphs and the workload's effective [timing] change how steps are clocked, not the
    work: the cell is compared (never incomparable) and one note line names what differs."""
    spec = {"name": "w", "input_shape": [4], "layers": [{"type": "dense", "units": 3}], "batch_size": 8,
            "timing": {"warmup": 5, "max_seconds": 15.0, "target_ci": 0.02}}
    shorter = dict(spec, timing={"warmup": 5, "max_seconds": 5.0, "target_ci": 0.05})
    base = doc([cell(options={"channels_last": False, "timing": "per-step", "cuda_graphs": False})],
               workloads={"w": spec})
    cur = doc([cell(seed=2, options={"channels_last": False, "timing": "windowed", "cuda_graphs": True})],
              workloads={"w": shorter})
    result = compare(base, cur)
    (v,) = result.cells
    assert v.verdict == "no change" and "option" not in v.detail
    assert _timing_notes(result) == [
        "timing differs: baseline per-step, current windowed; CUDA graphs: baseline off, current on; "
        "max_seconds 15 → 5; target_ci 0.02 → 0.05 (w/fake/cpu); compared anyway, but part of a change there may "
        "be the timing policy's, not the code's"]
    assert not _timing_notes(compare(base, doc([cell(seed=2, options=base["cells"][0]["options"])],
                                               workloads={"w": spec})))


def test_timing_mode_null_is_the_devices_default_and_absent_is_per_step() -> None:
    env = dict(ENV, gpus=[{"name": "NVIDIA H100"}])
    legacy = doc([cell(device="cuda")], env)  # written before options.timing existed: every step synchronised
    default = doc([cell(device="cuda", seed=2, options={"channels_last": False, "timing": None})], env)
    result = compare(legacy, default)
    assert result.cells[0].verdict == "no change"
    assert _timing_notes(result)[0].startswith("timing differs: baseline per-step, current windowed (w/fake/cuda)")
    cpu_default = doc([cell(seed=2, options={"channels_last": False, "timing": None})])
    assert not _timing_notes(compare(doc([cell()]), cpu_default))  # per-step on cpu either way


def test_one_timing_note_per_difference_names_its_cells() -> None:
    names = [f"w{i}" for i in range(6)]
    base = doc([cell(w, options={"timing": "per-step"}) for w in names] + [cell("x", options={"timing": "per-step"})])
    cur = doc([cell(w, seed=2, options={"timing": "windowed"}) for w in names]
              + [cell("x", seed=2, options={"timing": "per-step", "cuda_graphs": True})])
    notes = _timing_notes(compare(base, cur))
    assert len(notes) == 2
    assert "(w0/fake/cpu, w1/fake/cpu, w2/fake/cpu, w3/fake/cpu and 2 more)" in notes[0]
    assert notes[1].startswith("timing differs: CUDA graphs: baseline off, current on (x/fake/cpu)")


def test_json_dict_has_rounded_numbers() -> None:
    d = compare(doc(repeated(seed=1)), doc(repeated(1.3, seed=2))).to_dict()
    assert d["counts"]["slower"] == 1
    assert all(len(repr(v).replace("-", "").lstrip("0.")) <= 12 for v in d["cells"][0].values() if isinstance(v, float))


# ---------------------------------------------------------------- CLI

def write(tmp_path: Path, name: str, d: dict) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


NO_LONG_FLOATS = re.compile(r"\d\.\d{7,}|\d{8,}")


def test_cli_exit_codes_and_formats(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    base = write(tmp_path, "base.json", doc(repeated(seed=1) + [cell("noisy", seed=4, cv=0.5, n=10)]))
    same = write(tmp_path, "same.json", doc(repeated(seed=2) + [cell("noisy", seed=5, cv=0.5, n=10)]))
    slow = write(tmp_path, "slow.json", doc(repeated(1.3, seed=3) + [cell("noisy", seed=6, cv=0.5, n=10)]))
    r = invoke(cli, "compare", base, same)
    assert r.exit_code == 0, r.output
    assert "no regression" in r.output
    r = invoke(cli, "compare", base, same, "--fail-on-inconclusive")
    assert r.exit_code == 3
    r = invoke(cli, "compare", base, slow, "--format", "markdown")
    assert r.exit_code == 1
    assert "| ✗ | w | fake | cpu |" in r.output and "| ? | noisy |" in r.output and "|:-:|" in r.output
    assert "minimum detectable change" in r.output
    assert not NO_LONG_FLOATS.search(r.output.replace(str(tmp_path), "")), r.output
    r = invoke(cli, "compare", base, slow, "--format", "json", "--threshold", "50%")
    assert r.exit_code == 0  # a 30% slowdown is within a 50% threshold
    out = json.loads(r.output)
    assert out["exit_code"] == 0 and out["threshold"] == 0.5 and out["cells"][0]["verdict"] == "no change"


def test_cli_input_errors_exit_2(cli, tmp_path) -> None:
    good = write(tmp_path, "good.json", doc([cell()]))
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "cells": [')
    newer = write(tmp_path, "newer.json", dict(doc([cell()]), schema_version=99))
    other = write(tmp_path, "other.json", doc([cell("zzz")]))
    for args, words in (((good, str(bad)), "truncated"), ((good, str(tmp_path / "nope.json")), "no such file"),
                        ((newer, good), "newer"), ((good, other), "nothing to compare"),
                        ((good, good, "--threshold", "lots"), "--threshold"),
                        ((good, good, "--format", "html"), "--format")):
        r = invoke(cli, "compare", *args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.output and "Traceback" not in r.output


def test_step_summary_is_appended(cli, tmp_path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base = write(tmp_path, "b.json", doc(repeated(seed=1)))
    slow = write(tmp_path, "s.json", doc(repeated(1.3, seed=2)))
    assert invoke(cli, "compare", base, slow, "--format", "json").exit_code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "### fwbench compare: ✗ regression" in text
    assert "| ✗ | w | fake | cpu |" in text and not NO_LONG_FLOATS.search(text.replace(str(tmp_path), ""))


def test_export_formats(cli, tmp_path) -> None:
    d = doc(repeated(seed=1) + [cell("broken", status="failed")])
    path = write(tmp_path, "r.json", d)
    r = invoke(cli, "export", path)
    assert r.exit_code == 0, r.output
    entries = json.loads(r.output)
    assert [e["name"] for e in entries] == ["w/fake/cpu step time"]  # failed cells are not plotted as times
    e = entries[0]
    assert e["unit"] == "ms" and isinstance(e["value"], float) and 9 < e["value"] < 11 and e["range"].startswith("± ")
    out = tmp_path / "r.csv"
    assert invoke(cli, "export", path, "--format", "csv", "-o", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("workload,runner,device,status,processes,steps,median_ms")
    assert lines[1].startswith("w,fake,cpu,ok,3,120,") and lines[2].startswith("broken,fake,cpu,failed,0,0,")
    assert invoke(cli, "export", path, "--format", "xml").exit_code == 2


# ---------------------------------------------------------------- real runs, end to end

def _run(cli, out: Path, *extra: str):
    return invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--repeats", "3", "-o", str(out), *extra)


@pytest.mark.slow
def test_fake_runner_gate_end_to_end(cli, workload_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "5")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    a, b, slow = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "slow.json"
    assert _run(cli, a).exit_code == 0
    r = _run(cli, b, "--baseline", str(a))  # back to back: the same cells again
    assert r.exit_code == 0, r.output
    assert invoke(cli, "compare", str(a), str(b)).exit_code == 0
    monkeypatch.setenv("FWBENCH_FAKE", "slow")  # every step 30% slower
    r = _run(cli, slow, "--baseline", str(a))
    assert r.exit_code == 1, r.output
    assert "regression" in r.output
    r = invoke(cli, "compare", str(a), str(slow), "--format", "json")
    assert r.exit_code == 1 and json.loads(r.output)["counts"]["slower"] == 1
    # a crash in the run under test fails the gate, as it fails the run
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=raise")
    assert _run(cli, tmp_path / "c.json", "--baseline", str(a)).exit_code == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = _run(cli, tmp_path / "d.json", "--baseline", str(bad))
    assert r.exit_code == 2 and "bad.json" in r.output and not (tmp_path / "d.json").exists()


@pytest.mark.slow
def test_torch_runner_gate_end_to_end(cli, workload_dir, tmp_path, monkeypatch) -> None:
    """Real PyTorch steps: two back-to-back runs are no regression; the same results 30% slower are one."""
    pytest.importorskip("torch")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = ("-r", "torch", "-w", "tinymlp", "--repeats", "3", "--threads", "1")
    assert invoke(cli, "run", *args, "-o", str(a)).exit_code == 0
    r = invoke(cli, "run", *args, "-o", str(b), "--baseline", str(a))
    assert r.exit_code == 0, r.output
    slower = json.loads(b.read_text())
    for c in slower["cells"]:
        c["step_s"] = [1.3 * s for s in c["step_s"]]
    s = tmp_path / "slower.json"
    s.write_text(json.dumps(slower))
    r = invoke(cli, "compare", str(b), str(s), "--format", "json")
    (v,) = json.loads(r.output)["cells"]
    if r.exit_code != 1:
        # Only acceptable on a machine so loaded that identical processes differ by tens of percent: the
        # gate must then say it cannot resolve 30%, never "no change".
        assert v["verdict"] == "inconclusive" and v["mdc"] > 0.3, r.output
    else:
        assert v["verdict"] == "slower" and v["ratio"] == pytest.approx(1.3, rel=1e-6)
