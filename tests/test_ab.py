"""fwbench ab: the paired statistics, the robust estimators, the schedule, the sides, and real A/A and A/B jobs."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from conftest import invoke
from fwbench import ab, ab_run, results, stats
from fwbench.errors import ResultsError, UsageError
from fwbench.job import Job

ENV = {"cpu": "Test CPU", "gpus": [], "versions": {"torch": "2.13.0"}, "python": "3.11.7"}


# ---------------------------------------------------------------- estimators and paired statistics

def test_process_estimates() -> None:
    x = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 8.0, 7.0, 6.0, 10.0])
    assert stats.process_estimate(x, "median") == 5.5
    assert stats.process_estimate(x, "min") == 1.0
    assert stats.process_estimate(x, "p10") == 1.0  # ceil(0.1 * 10) = 1st order statistic
    assert stats.process_estimate(np.arange(1.0, 21.0), "p10") == 2.0
    with pytest.raises(ValueError, match="estimator"):
        stats.process_estimate(x, "mean")


def test_order_statistic_bootstrap_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 0.2, 30)
    fast = stats.bootstrap_order_stat(x, 3, n_boot=40_000, seed=1)
    brute = np.sort(rng.choice(x, size=(40_000, 30)), axis=1)[:, 2]
    assert abs(fast.mean() / brute.mean() - 1) < 0.003
    assert abs(fast.std() / brute.std() - 1) < 0.05


def test_pooled_minimum_has_no_bootstrap_ci() -> None:
    with pytest.raises(ValueError, match="minimum"):
        stats.bootstrap_estimates(np.ones(10), "min")
    with pytest.raises(ValueError, match="minimum"):
        stats.compare_processes([np.ones(10)], [np.ones(10)], estimator="min")


def test_paired_log_ratio_is_scipys_paired_t_on_logs() -> None:
    rng = np.random.default_rng(3)
    a = rng.lognormal(0, 0.1, 6)
    b = a * rng.lognormal(0.05, 0.02, 6)
    ratio, lo, hi, p, se, df = stats.paired_log_ratio(a, b, confidence=0.99)
    ref = sps.ttest_rel(np.log(b), np.log(a))
    assert p == pytest.approx(ref.pvalue) and df == 5
    assert ratio == pytest.approx(np.exp(np.mean(np.log(b / a))))
    ci = ref.confidence_interval(0.99)
    assert (lo, hi) == pytest.approx((np.exp(ci.low), np.exp(ci.high)))


def test_pairing_cancels_what_a_round_shares() -> None:
    """A drift common to both processes of a round (here ±20%) hides a 10% difference from an unpaired test
    but not from the paired one."""
    rng = np.random.default_rng(7)
    rounds = rng.lognormal(0, 0.2, 5)
    a = rounds * rng.lognormal(0, 0.01, 5)
    b = 1.10 * rounds * rng.lognormal(0, 0.01, 5)
    *_, p_paired, _, _ = stats.paired_log_ratio(a, b)
    *_, p_unpaired, _, _ = stats.t_log_ratio(a, b)
    assert p_paired < 1e-3 < 0.1 < p_unpaired


@pytest.mark.parametrize("estimator", ["median", "p10", "min"])
def test_estimators_catch_a_slowdown_in_processes(estimator) -> None:
    rng = np.random.default_rng(11)
    base = [rng.lognormal(0, 0.05, 200) for _ in range(4)]
    cur = [1.2 * rng.lognormal(0, 0.05, 200) for _ in range(4)]
    test = stats.compare_processes(base, cur, confidence=0.99, estimator=estimator)
    assert test.method == "processes" and 1.1 < test.ratio < 1.3 and test.ci_low > 1.0 and test.p < 0.01


def test_low_estimators_resist_interference() -> None:
    """Interference only adds time (Chen & Revels): a process whose steps are hit 60% of the time moves its
    median, hardly its 10th percentile and not its minimum."""
    rng = np.random.default_rng(5)
    clean = rng.lognormal(0, 0.01, 400)
    hit = clean * np.where(rng.random(400) < 0.6, rng.uniform(1.0, 3.0, 400), 1.0)
    shift = {e: stats.process_estimate(hit, e) / stats.process_estimate(clean, e) - 1 for e in stats.ESTIMATORS}
    assert shift["median"] > 0.3 and shift["p10"] < 0.05 and shift["min"] < 0.01


def test_variance_parts_recover_known_components() -> None:
    rng = np.random.default_rng(2)
    r, n = 400, 50
    round_effect = rng.lognormal(0, 0.10, r)  # shared by both sides of a round
    a = [round_effect[i] * rng.lognormal(0, 0.03) * rng.lognormal(0, 0.02, n) for i in range(r)]
    b = [round_effect[i] * rng.lognormal(0, 0.03) * rng.lognormal(0, 0.02, n) * 1.5 for i in range(r)]
    parts = stats.variance_parts(a, b, "median", n_boot=200)
    assert parts.rounds == r
    assert parts.step == pytest.approx(0.02, rel=0.15)
    assert parts.within == pytest.approx(0.02 * 1.2533 / np.sqrt(n), rel=0.3)  # SE of a median
    assert parts.between_processes == pytest.approx(0.03, rel=0.2)
    assert parts.between_rounds == pytest.approx(0.10, rel=0.2)


# ---------------------------------------------------------------- the verdict of an A/B document

def ab_cell(side: str, rnd: int, factor: float = 1.0, workload: str = "w", runner: str = "fake", seed: int = 0,
            status: str = "ok", noisy: bool = False, shared: float = 1.0) -> dict:
    rng = np.random.default_rng(seed * 1000 + rnd * 2 + (side == "B"))
    steps = (0.01 * shared * factor * rng.lognormal(0, 0.02, 60)).tolist() if status == "ok" else []
    c = {"id": f"{side}:{workload}/{runner}/cpu/{rnd}", "workload": workload, "runner": runner, "device": "cpu",
         "repeat": rnd, "status": status, "reason": "" if status == "ok" else "boom", "step_s": steps, "side": side,
         "mode": "train", "batch_size": 8, "threads": 2, "options": {}, "versions": {}}
    if noisy:
        c["interference"] = {"noisy": True, "other_share": 0.9, "threshold": 0.25, "other_cpu_s": 0.9,
                             "own_cpu_s": 1.0, "wall_s": 1.0, "cores": 1}
    return c


def ab_doc(cells: list[dict], env_b: dict | None = None) -> dict:
    side = lambda label, env: {"label": label, "python": "/usr/bin/python3", "env": env or {}, "environment": ENV}
    return {"schema_version": 2, "fwbench_version": "0.1.0", "run_id": "ab", "created": "", "config": {},
            "environment": ENV, "workloads": {}, "parity": {}, "cells": cells,
            "ab": {"rounds": 5, "order": "alternating", "sides": {"A": side("A", {}), "B": side("B", env_b)}}}


def sides(factor: float = 1.0, rounds: int = 5, seed: int = 0, **kw) -> list[dict]:
    drift = np.random.default_rng(seed + 99).lognormal(0, 0.15, rounds)  # what each round's machine did
    return [ab_cell(s, i, factor if s == "B" else 1.0, seed=seed, shared=float(drift[i]), **kw)
            for i in range(rounds) for s in "AB"]


def test_a_a_is_no_change_and_a_slower_b_is_slower_despite_round_drift() -> None:
    (v,) = ab.compare_sides(results.check(ab_doc(sides(1.0)))).cells
    assert v.verdict == "no change" and v.method == "paired" and v.n_base == 5
    (v,) = ab.compare_sides(results.check(ab_doc(sides(1.15, seed=1)))).cells
    assert v.verdict == "slower" and 1.1 < v.ratio < 1.2
    (v,) = ab.compare_sides(results.check(ab_doc(sides(0.8, seed=2)))).cells
    assert v.verdict == "faster"


def test_noisy_and_failed_rounds_are_left_out() -> None:
    cells = sides(1.3, seed=3)
    cells[0] = ab_cell("A", 0, noisy=True, seed=3)
    cells[3] = ab_cell("B", 1, status="crashed", seed=3)
    result = ab.compare_sides(results.check(ab_doc(cells)))
    (v,) = result.cells
    assert v.n_base == 3 and v.verdict == "slower"
    assert "1 round(s) left out: machine busy" in v.detail and "1 round(s) left out: a side failed" in v.detail
    cells[5] = ab_cell("B", 2, noisy=True, seed=3)  # now only 2 clean rounds: never a verdict
    (v,) = ab.compare_sides(results.check(ab_doc(cells))).cells
    assert v.verdict == "inconclusive" and "only 2 clean round(s)" in v.detail


def test_a_side_that_failed_everywhere_is_missing_in_current() -> None:
    cells = [ab_cell(s, i, status="ok" if s == "A" else "failed") for i in range(3) for s in "AB"]
    result = ab.compare_sides(results.check(ab_doc(cells)))
    (v,) = result.cells
    assert v.verdict == "missing" and v.missing_in == "current" and "side B" in v.detail
    from fwbench.gate import exit_code

    assert exit_code(result) == 1  # nothing could be judged, and B lost every cell


def test_side_notes_name_the_difference() -> None:
    assert "A/A" in ab.side_notes(ab_doc([]))[0]
    note = ab.side_notes(ab_doc([], env_b={"TF_ENABLE_ONEDNN_OPTS": "0"}))[0]
    assert "TF_ENABLE_ONEDNN_OPTS=(unset) vs TF_ENABLE_ONEDNN_OPTS=0" in note


def test_side_view_and_readers(tmp_path) -> None:
    doc = results.check(ab_doc(sides(1.0, rounds=3)))
    a = results.side_view(doc, "A")
    assert {c["id"] for c in a["cells"]} == {f"w/fake/cpu/{i}" for i in range(3)} and "ab" not in a
    results.check(a)  # a plain, valid document
    path = tmp_path / "ab.json"
    results.save(path, doc)
    with pytest.raises(ResultsError, match="--side A"):
        results.read_side(path, None)
    assert len(results.read_side(path, "B")["cells"]) == 3
    with pytest.raises(UsageError):
        results.read_side(path, "C")


def test_compare_reads_an_ab_file(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = tmp_path / "ab.json"
    results.save(path, results.check(ab_doc(sides(1.3, seed=4))))
    r = invoke(cli, "compare", str(path), "--format", "json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["paired"] and out["counts"]["slower"] == 1 and out["variance"][0]["rounds"] == 5
    r = invoke(cli, "compare", str(path), str(path))
    assert r.exit_code == 2 and "--side" in r.output
    r = invoke(cli, "compare", str(path), str(path), "--side", "B", "--estimator", "p10", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)["estimator"] == "p10"
    assert invoke(cli, "export", str(path), "--side", "A", "--format", "csv").exit_code == 0


# ---------------------------------------------------------------- schedule, sides, interpreters

def test_schedule_alternates_order_and_runs_parity_in_round_zero() -> None:
    jobs = [Job(workload={"name": n}, runner="fake", device="cpu") for n in ("x", "y")]
    plan = ab_run.schedule(jobs, 3)
    assert [(r, s, j.workload["name"]) for r, s, j in plan[:6]] == [
        (0, "A", "x"), (0, "B", "x"), (0, "A", "y"), (0, "B", "y"), (1, "B", "x"), (1, "A", "x")]
    assert all(j.repeat == r for r, _, j in plan)
    assert {("parity" in j.phases) for r, _, j in plan if r == 0} == {True}
    assert {("parity" in j.phases) for r, _, j in plan if r > 0} == {False}


def test_env_and_python_options_are_checked(tmp_path) -> None:
    assert ab_run.parse_env(["A=1", "B_2=x=y"], "--a-env") == (("A", "1"), ("B_2", "x=y"))
    for bad in (["NOEQUALS"], ["1X=2"], ["A=1", "A=2"], ["OMP_NUM_THREADS=1"], ["KERAS_BACKEND=jax"],
                ["FWBENCH_NOISY_SHARE=0.9"]):
        with pytest.raises(UsageError):
            ab_run.parse_env(bad, "--a-env")
    assert ab_run.resolve_python(None, "--a-python") == sys.executable
    with pytest.raises(UsageError, match="no such file"):
        ab_run.resolve_python(str(tmp_path / "nope"), "--b-python")
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(UsageError, match="not an executable"):
        ab_run.resolve_python(str(plain), "--b-python")


def _script(tmp_path: Path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def test_preflight_refuses_an_unusable_interpreter_and_uses_this_fwbench(tmp_path) -> None:
    shim = ab_run.make_shim(tmp_path)
    broken = ab_run.Side("B", _script(tmp_path, "broken", r"printf 'no such module\033[31m\n' >&2; exit 1"))
    with pytest.raises(UsageError, match="--b-python .*no such module") as info:
        ab_run.preflight(broken, ["fake"], 1, shim)
    assert "\033" not in str(info.value)  # the side's output is user text: no escape sequence reaches the terminal
    old = ab_run.Side("A", _script(tmp_path, "old", 'echo "PREFLIGHT-ERROR Python 3.8 is too old"'))
    with pytest.raises(UsageError, match="--a-python .*3.8 is too old"):
        ab_run.preflight(old, ["fake"], 1, shim)
    # an interpreter without fwbench installed gets this fwbench through the path shim
    isolated = ab_run.Side("B", sys.executable, (("PYTHONNOUSERSITE", "1"),))
    rec = ab_run.preflight(isolated, ["fake", "torch"], 1, shim)
    assert Path(rec["fwbench_path"]).parent.resolve() == Path(ab_run.__file__).resolve().parent
    assert rec["runners"]["fake"]["missing"] == [] and rec["env"] == {"PYTHONNOUSERSITE": "1"}
    assert rec["environment"]["executable"]
    assert ab_run.side_environment(isolated, shim)["PYTHONPATH"].split(os.pathsep)[0] == str(shim)


# ---------------------------------------------------------------- real jobs (fake runner: real timed sleeps)

@pytest.mark.slow
def test_ab_job_end_to_end(cli, workload_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "ab.json"
    r = invoke(cli, "ab", "-r", "fake", "-w", "tinymlp", "--rounds", "3", "-o", str(out), "--format", "json",
               "--a-env", "FWBENCH_FAKE_STEP_MS=4", "--b-env", "FWBENCH_FAKE_STEP_MS=6")
    assert r.exit_code == 1, r.output
    verdict = json.loads(r.output[r.output.index("{"):])
    assert verdict["counts"]["slower"] == 1 and verdict["cells"][0]["ratio"] > 1.2
    doc = results.read(out)
    assert [c["side"] for c in doc["cells"]] == ["A", "B", "B", "A", "A", "B"]
    assert doc["ab"]["sides"]["B"]["env"] == {"FWBENCH_FAKE_STEP_MS": "6"}
    assert [bool(c.get("parity")) for c in doc["cells"]] == [True, True, False, False, False, False]
    assert "fwbench ab" in summary.read_text()
    assert invoke(cli, "compare", str(out)).exit_code == 1  # the file alone gives the same verdict
    r = invoke(cli, "report", str(out), "--out-dir", str(tmp_path / "rep"), "--no-plots")
    assert r.exit_code == 0 and "ab.json [B]" in (tmp_path / "rep" / "report.md").read_text()


def test_compare_never_judges_a_cell_measured_on_a_busy_machine() -> None:
    from fwbench.compare import compare

    def plain(factor: float, k: int, noisy: bool = False) -> dict:
        c = ab_cell("A", k, factor, seed=k + int(factor * 10), noisy=noisy)
        c.pop("side")
        c["id"] = f"w/fake/cpu/{k}"
        return c

    base = ab_doc([plain(1.0, k) for k in range(3)])
    del base["ab"]
    slow = dict(base, cells=[plain(1.5, 0, noisy=True), plain(1.5, 1), plain(1.5, 2)])
    (v,) = compare(results.check(base), results.check(slow)).cells
    assert v.verdict == "inconclusive" and v.q is None and v.ratio > 1.4
    assert "machine busy while timing 1 of 3 current process(es)" in v.detail
    clean = dict(base, cells=[plain(1.5, k) for k in range(3)])
    assert compare(results.check(base), results.check(clean)).cells[0].verdict == "slower"


def test_an_ab_file_is_not_a_baseline_for_run(cli, tmp_path) -> None:
    path = tmp_path / "ab.json"
    results.save(path, results.check(ab_doc(sides(1.0, rounds=3))))
    r = invoke(cli, "run", "-r", "fake", "--baseline", str(path), "-o", str(tmp_path / "x.json"))
    assert r.exit_code == 2 and "two environments" in r.output and not (tmp_path / "x.json").exists()


def test_a_cell_that_side_b_lost_fails_the_job(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    cells = sides(1.0, seed=6) + [ab_cell(s, i, workload="v", status="ok" if s == "A" else "crashed")
                                  for i in range(5) for s in "AB"]
    path = tmp_path / "ab.json"
    results.save(path, results.check(ab_doc(cells)))
    r = invoke(cli, "compare", str(path))
    assert r.exit_code == 1 and "side B lost 1 cell(s)" in r.output


def test_history_leaves_out_processes_measured_on_a_busy_machine() -> None:
    from fwbench.history import series
    from fwbench.history.store import Entry

    def run(commit: str, factor: float, noisy: bool) -> tuple:
        d = ab_doc([dict(ab_cell("A", k, factor, seed=k, noisy=noisy), side=None) for k in range(3)])
        del d["ab"]
        for c in d["cells"]:
            c.pop("side")
        return Entry(commit, f"2026-01-0{len(commit)}T00:00:00Z", commit, commit), results.check(d)

    (s,) = series.build([run("a", 1.0, False), run("bb", 3.0, True), run("ccc", 1.0, False)])
    assert [p.commit for p in s.points] == ["a", "ccc"]
