"""Timing control on the command line (issue 19): `run --warmup/--min-steps/--max-steps/--max-time/--target-ci`,
`--timing per-step|windowed` and `--cuda-graphs`: checked at the edge, recorded in the results file, kept by
`--resume`, and noted (not refused) by `compare` when two runs were timed differently.

Every run here uses the fake runner on the tiny workloads of conftest, so the file takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fwbench.cells import Cell, Invalid
from fwbench.config import (DEFAULT_TIMING_MODES, QUICK_TIMING, TIMING_BOUNDS, ConfigError, RunConfig,
                            RunnerOptions, TimingOverrides, parse_fraction)
from fwbench.workload_spec import Timing
from tests.conftest import invoke

FLAGS = ("--warmup", "3", "--min-steps", "4", "--max-steps", "6", "--max-time", "0.5", "--target-ci", "5%")


@pytest.fixture(autouse=True)
def _fast_fake_steps(monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "1")
    monkeypatch.delenv("FWBENCH_FAKE", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(cli, out: Path, *extra: str, workload: str = "tinymlp"):
    return invoke(cli, "run", "-r", "fake", "-w", workload, "--no-target", "-o", str(out), *extra)


def stored(out: Path) -> dict:
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------- recorded in the file

def test_timing_flags_land_in_the_config_and_in_the_workloads_effective_timing(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    res = run(cli, out, *FLAGS)
    assert res.exit_code == 0, res.output
    doc = stored(out)
    assert doc["config"]["timing_overrides"] == {"warmup": 3, "min_steps": 4, "max_steps": 6, "max_seconds": 0.5,
                                                 "target_ci": 0.05}
    assert RunConfig.from_dict(doc["config"]).timing_overrides == TimingOverrides(3, 4, 6, 0.5, 0.05)
    # the workload file says warmup 2, min_steps 3, max_steps 5, max_seconds 1.0, target_ci 0.02
    assert doc["workloads"]["tinymlp"]["timing"] == {"warmup": 3, "min_steps": 4, "max_steps": 6,
                                                     "min_seconds": 0.0, "max_seconds": 0.5, "target_ci": 0.05}
    (cell,) = doc["cells"]
    assert cell["status"] == "ok" and len(cell["warmup_s"]) == 3  # the worker ran the overridden budget
    assert 3 <= len(cell["step_s"]) <= 6


def test_no_flag_leaves_the_workload_alone_and_records_nulls(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out).exit_code == 0
    doc = stored(out)
    assert doc["config"]["timing_overrides"] == dict.fromkeys(("warmup", "min_steps", "max_steps", "max_seconds",
                                                               "target_ci"))
    assert doc["workloads"]["tinymlp"]["timing"] == {"warmup": 2, "min_steps": 3, "max_steps": 5, "min_seconds": 0.0,
                                                     "max_seconds": 1.0, "target_ci": 0.02}
    assert doc["config"]["options"]["timing"] is None and doc["config"]["options"]["cuda_graphs"] is False
    assert len(doc["cells"][0]["warmup_s"]) == 2


def test_explicit_flags_win_over_quick(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out, "--quick", "--warmup", "1", "--max-time", "10").exit_code == 0
    timing = stored(out)["workloads"]["tinymlp"]["timing"]
    assert timing == {**QUICK_TIMING, "warmup": 1, "max_seconds": 10.0, "target_ci": 0.02}


def test_timing_mode_and_cuda_graphs_are_recorded(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out, "--quick", "--timing", "per-step", "--cuda-graphs").exit_code == 0
    doc = stored(out)
    assert doc["config"]["options"]["timing"] == "per-step" and doc["config"]["options"]["cuda_graphs"] is True
    config = RunConfig.from_dict(doc["config"])
    assert config.options.timing == "per-step" and config.options.cuda_graphs is True
    (cell,) = doc["cells"]
    assert cell["options"]["timing"] == "per-step" and cell["options"]["cuda_graphs"] is True
    assert Cell.from_dict(cell).options["cuda_graphs"] is True


# ------------------------------------------------------------------------------------- checked at the edge

@pytest.mark.parametrize("args, words", [
    (("--warmup", "0"), "--warmup must be an integer from 1 to 10000, got 0"),
    (("--warmup", "10001"), "--warmup must be an integer from 1 to 10000"),
    (("--min-steps", "2"), "--min-steps must be an integer from 3 to 1000000, got 2"),
    (("--max-steps", "10000001"), "--max-steps must be an integer from 3 to 10000000"),
    (("--min-steps", "10", "--max-steps", "5"), "--max-steps must be at least --min-steps (10), got 5"),
    (("--max-time", "0"), "--max-time must be a number of seconds in (0, 86400], got 0.0"),
    (("--max-time", "-1"), "--max-time must be a number of seconds in (0, 86400]"),
    (("--max-time", "nan"), "--max-time must be a number of seconds in (0, 86400]"),
    (("--max-time", "1e9"), "--max-time must be a number of seconds in (0, 86400]"),
    (("--target-ci", "150%"), "--target-ci must be a relative half-width in (0, 1)"),
    (("--target-ci", "0"), "--target-ci must be a relative half-width in (0, 1)"),
    (("--target-ci", "lots"), "--target-ci 'lots': give a fraction such as 0.02 or a percentage such as 2%"),
    (("--timing", "fast"), "--timing 'fast' is not a timing mode; choose from: per-step, windowed"),
    (("--warmup", "three"), "'--warmup'"),  # click's own message, naming the flag
    (("--max-time", "2s"), "'--max-time'"),
])
def test_bad_values_exit_2_naming_the_flag(cli, tmp_path, workload_dir, args, words):
    out = tmp_path / "run.json"
    res = run(cli, out, *args)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and words in text, res.output
    assert "Traceback" not in res.output and not out.exists()


@pytest.mark.parametrize("field", sorted(TIMING_BOUNDS))
def test_flag_bounds_are_the_workload_files(workload_dir, field):
    """Each timing flag accepts exactly what a workload's [timing] table accepts, at and beyond its bounds."""
    from fwbench.errors import WorkloadError
    from fwbench.workload import load_workload
    from fwbench.workload_spec import WorkloadSpec

    low, high, _ = TIMING_BOUNDS[field]
    floats = field in ("max_seconds", "target_ci")
    values = [low, high, low + 0.5, high - 0.5, low - 0.5, high + 0.5] if floats else [low, high, low - 1, high + 1]
    spec = load_workload("tinymlp").to_dict()
    for value in values:
        value = float(value) if floats else int(value)
        timing = {**spec["timing"], field: value}
        if field == "min_steps":
            timing["max_steps"] = 10_000_000
        if field == "max_steps":
            timing["min_steps"] = 3
        try:
            WorkloadSpec.from_dict({**spec, "timing": timing}, where="test")
            file_ok = True
        except WorkloadError:
            file_ok = False
        try:
            TimingOverrides(**{field: value})
            flag_ok = True
        except ConfigError:
            flag_ok = False
        assert flag_ok == file_ok, (field, value, flag_ok, file_ok)


@pytest.mark.parametrize("text, value", [("2%", 0.02), ("2 %", 0.02), ("0.02", 0.02), (".5", 0.5), ("2", 0.02),
                                         ("0.5%", 0.005)])
def test_target_ci_reads_a_percentage_or_a_fraction(text, value):
    assert parse_fraction(text, "target_ci") == pytest.approx(value)


def test_the_budget_stays_consistent_with_the_workloads_table():
    table = Timing(warmup=5, min_steps=20, max_steps=1000, min_seconds=2.0, max_seconds=15.0, target_ci=0.02)
    assert TimingOverrides(max_steps=10).apply(table) == {"max_steps": 10, "min_steps": 10}
    assert TimingOverrides(min_steps=2000).apply(table) == {"min_steps": 2000, "max_steps": 2000}
    assert TimingOverrides(max_seconds=0.5).apply(table) == {"max_seconds": 0.5, "min_seconds": 0.5}
    assert TimingOverrides(max_seconds=30).apply(table) == {"max_seconds": 30.0}
    assert TimingOverrides().apply(table) == {}
    assert TimingOverrides().apply(table, quick=True) == QUICK_TIMING
    # --quick's 5..20 steps: a --max-steps below 5 pulls min_steps down, a --min-steps above 20 pushes max_steps up
    assert TimingOverrides(max_steps=4).apply(table, quick=True) == {**QUICK_TIMING, "max_steps": 4, "min_steps": 4}
    assert TimingOverrides(min_steps=50).apply(table, quick=True) == {**QUICK_TIMING, "min_steps": 50, "max_steps": 50}


def test_the_run_applies_the_consistency_rule(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out, "--min-steps", "8").exit_code == 0  # tinymlp's max_steps is 5
    timing = stored(out)["workloads"]["tinymlp"]["timing"]
    assert timing["min_steps"] == 8 and timing["max_steps"] == 8


# ------------------------------------------------------------------------------------- defaults per device

def test_timing_mode_defaults_per_device():
    opts = RunnerOptions()
    assert opts.timing is None
    assert [opts.timing_mode(d) for d in ("cpu", "cuda", "tpu")] == ["per-step", "windowed", "windowed"]
    assert DEFAULT_TIMING_MODES == {"cpu": "per-step", "cuda": "windowed", "tpu": "windowed"}
    assert opts.for_device("cuda").timing == "windowed" and opts.for_device("cpu").timing == "per-step"
    chosen = RunnerOptions(timing="per-step")
    assert chosen.timing_mode("cuda") == "per-step" and chosen.for_device("cuda") is chosen
    assert RunnerOptions(timing="windowed").timing_mode("cpu") == "windowed"
    assert RunnerOptions(cuda_graphs=True).cuda_graphs is True and RunnerOptions().cuda_graphs is False


def test_recorded_cells_resolve_to_their_devices_default(cli, tmp_path, workload_dir):
    """Without --timing, a cpu cell ran per-step and a cuda cell windowed, whether the cell recorded the mode
    resolved or left it null; a cell from before the option existed ran per-step."""
    from fwbench.compare import timing_mode

    out = tmp_path / "run.json"
    res = run(cli, out, "--quick", "-d", "cpu", "-d", "cuda")  # the fake runner skips cuda: recorded all the same
    assert res.exit_code in (0, 1), res.output
    doc = stored(out)
    assert doc["config"]["options"]["timing"] is None
    modes = {c["device"]: timing_mode(Cell.from_dict(c)) for c in doc["cells"]}
    assert modes == {"cpu": "per-step", "cuda": "windowed"}
    legacy = dict(doc["cells"][-1], options={"threads": 1})
    assert legacy["device"] == "cuda" and timing_mode(Cell.from_dict(legacy)) == "per-step"


@pytest.mark.parametrize("stored_options, field", [
    ({"timing": "fast"}, "timing"),
    ({"timing": 1}, "timing"),
    ({"cuda_graphs": "yes"}, "cuda_graphs"),
])
def test_stored_options_are_checked(stored_options, field):
    with pytest.raises(ConfigError) as info:
        RunnerOptions.from_dict(stored_options)
    assert info.value.field == field
    cell = {"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "device": "cpu", "status": "ok",
            "options": stored_options}
    with pytest.raises(Invalid, match=f"options.{field}"):
        Cell.from_dict(cell)


# ------------------------------------------------------------------------------------- --resume

def test_resume_keeps_the_timing_flags_and_refuses_new_ones(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out, *FLAGS, "--timing", "windowed", "--cuda-graphs").exit_code == 0
    before = stored(out)
    interrupted = dict(before, cells=[])  # as if the run had been stopped before its only cell
    out.write_text(json.dumps(interrupted))
    res = invoke(cli, "run", "--resume", str(out))
    assert res.exit_code == 0, res.output
    after = stored(out)
    assert after["config"] == before["config"] and after["workloads"] == before["workloads"]
    config = RunConfig.from_dict(after["config"])
    assert config.timing_overrides == TimingOverrides(3, 4, 6, 0.5, 0.05)
    assert config.options.timing == "windowed" and config.options.cuda_graphs is True
    (cell,) = after["cells"]
    assert len(cell["warmup_s"]) == 3 and cell["options"]["timing"] == "windowed" and cell["options"]["cuda_graphs"]
    for extra in (["--warmup", "4"], ["--max-time", "1"], ["--timing", "per-step"], ["--cuda-graphs"]):
        res = invoke(cli, "run", "--resume", str(out), *extra)
        assert res.exit_code == 2 and "cannot be combined with it" in res.output and extra[0] in res.output, extra


def test_files_from_before_the_timing_options_still_load_and_resume(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert run(cli, out, "--quick").exit_code == 0
    doc = stored(out)
    del doc["config"]["timing_overrides"]
    for options in [doc["config"]["options"]] + [c["options"] for c in doc["cells"]]:
        del options["timing"], options["cuda_graphs"]
    config = RunConfig.from_dict(doc["config"])
    assert config.timing_overrides == TimingOverrides() and config.options.timing is None
    assert not config.options.cuda_graphs
    doc["cells"] = []
    out.write_text(json.dumps(doc))
    res = invoke(cli, "run", "--resume", str(out))
    assert res.exit_code == 0, res.output
    assert stored(out)["cells"][0]["status"] == "ok"


@pytest.mark.parametrize("path, value, words", [
    (("timing_overrides", "warmup"), 0, "config.timing_overrides.warmup must be an integer from 1 to 10000"),
    (("timing_overrides", "max_seconds"), 1e6, "config.timing_overrides.max_seconds must be a number of seconds"),
    (("timing_overrides", "target_ci"), "2%", "'config.timing_overrides.target_ci' must be a number"),  # schema
    (("timing_overrides", "turbo"), 1, "config.timing_overrides has unknown field(s) 'turbo'"),
    (("options", "timing"), "fast", "'config.options.timing' is 'fast', not one of per-step, windowed"),
    (("options", "cuda_graphs"), 1, "'config.options.cuda_graphs' must be true or false"),
])
def test_resume_revalidates_the_stored_timing(cli, tmp_path, workload_dir, path, value, words):
    out = tmp_path / "run.json"
    assert run(cli, out, "--quick").exit_code == 0
    doc = stored(out)
    doc["cells"] = []
    doc["config"][path[0]][path[1]] = value
    out.write_text(json.dumps(doc))
    res = invoke(cli, "run", "--resume", str(out))
    assert res.exit_code == 2 and words in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------------------------------------- compare

def test_compare_notes_a_timing_policy_difference_and_still_compares(cli, tmp_path, workload_dir):
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    assert run(cli, base, "--quick").exit_code == 0
    assert run(cli, cur, "--quick", "--max-time", "1", "--timing", "windowed").exit_code == 0
    note = "timing differs: baseline per-step, current windowed; max_seconds 2 → 1 (tinymlp/fake/cpu)"
    res = invoke(cli, "compare", str(base), str(cur), "--threshold", "90%", "--format", "json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    (verdict,) = result["cells"]
    assert verdict["verdict"] not in ("incomparable", "missing") and verdict["ratio"] is not None
    assert any(n.startswith(note) and "compared anyway" in n for n in result["notes"]), result["notes"]
    res = invoke(cli, "compare", str(base), str(cur), "--threshold", "90%", "--format", "markdown")
    assert res.exit_code == 0 and "> note: timing differs: baseline per-step, current windowed" in res.output
    res = invoke(cli, "compare", str(base), str(cur), "--threshold", "90%")
    assert res.exit_code == 0 and "note: timing differs" in " ".join(res.output.split())
    same = invoke(cli, "compare", str(base), str(base), "--format", "json")
    assert not any("timing differs" in n for n in json.loads(same.output)["notes"])


def test_help_names_the_timing_flags(cli):
    text = " ".join(invoke(cli, "run", "--help").output.split())
    for words in ("--warmup N", "--min-steps N", "--max-steps N", "--max-time SECONDS", "--target-ci PCT",
                  "--timing per-step|windowed", "--cuda-graphs"):
        assert words in text, words
