"""Scenarios and batch sweeps: variant workloads, the plan, skips, out-of-memory points, and end-to-end runs
of every scenario through the fake runner (real worker processes, milliseconds of work)."""

from __future__ import annotations

import json

import pytest

from conftest import invoke
from fwbench.config import ConfigError, RunConfig
from fwbench.errors import UsageError
from fwbench.pipeline import plan, precheck
from fwbench.runners.registry import RUNNERS, select
from fwbench.scenarios import points, variant, variant_name
from fwbench.workload import load_workload
from fwbench.workload_spec import WorkloadSpec


def test_variant_names_keep_plain_training_and_name_every_other_point():
    assert variant_name("cnn", "train", 64, 64) == "cnn"
    assert variant_name("cnn", "train", 32, 64) == "cnn@train-b32"
    assert variant_name("cnn", "latency", 1, 64) == "cnn@latency"
    assert variant_name("cnn", "latency", 8, 64) == "cnn@latency-b8"
    assert variant_name("cnn", "throughput", 64, 64) == "cnn@throughput-b64"
    assert variant_name("cnn", "cold-start", 1, 64) == "cnn@cold-start"


def test_a_variant_is_the_same_network_at_the_points_batch_and_mode_and_survives_a_results_file():
    spec = load_workload("cnn")
    v = variant(spec, "throughput", 16)
    assert (v.name, v.batch_size, v.mode, v.scenario) == ("cnn@throughput-b16", 16, "infer", "throughput")
    assert v.layers == spec.layers and v.seed == spec.seed and v.input_shape == spec.input_shape
    again = WorkloadSpec.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again == v


def test_sweep_points_are_ascending_and_deduplicated():
    spec = load_workload("mlp")
    assert [p.batch_size for p in points(spec, "throughput", (256, 1, 64, 16, 64))] == [1, 16, 64, 256]
    assert [p.name for p in points(spec, "latency", ())] == ["mlp@latency"]
    assert [p.name for p in points(spec, None, ())] == ["mlp"]  # the workload's own default: train


def test_a_workload_can_name_its_default_scenario(workload_dir):
    text = (workload_dir / "tinymlp.toml").read_text().replace('name = "tinymlp"', 'name = "tinymlp"\nscenario = "latency"')
    (workload_dir / "lat.toml").write_text(text.replace('"tinymlp"', '"lat"'))
    spec = load_workload("lat")
    assert spec.scenario == "latency"
    assert [p.name for p in points(spec, None, ())] == ["lat@latency"]
    (workload_dir / "bad.toml").write_text(text.replace('"tinymlp"', '"bad"').replace('"latency"', '"sprint"'))
    with pytest.raises(Exception, match="scenario"):
        load_workload("bad")


@pytest.mark.parametrize("kwargs, message", [
    ({"scenario": "sprint"}, "--scenario 'sprint' is not a scenario"),
    ({"batch_sizes": (0,)}, "--batch-size must be between 1"),
    ({"batch_sizes": (True,)}, "--batch-size must be a whole number"),
])
def test_config_refuses_bad_scenarios_and_batches(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


def test_config_sorts_the_sweep_and_round_trips():
    c = RunConfig(scenario="throughput", batch_sizes=(64, 1, 16))
    assert c.batch_sizes == (1, 16, 64)
    assert RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert "target" not in c.phases("latency") and "target" in RunConfig().phases("train")


def test_all_takes_the_runtimes_into_inference_runs_only():
    train = {r.name for r in select(["all"], [], "train")}
    latency = {r.name for r in select(["all"], [], "latency")}
    runtimes = {n for n, r in RUNNERS.items() if r.family == "runtime" and not r.missing()}
    assert not train & runtimes
    assert runtimes <= latency


def test_a_runtime_asked_to_train_is_skipped_with_the_reason():
    spec = load_workload("mlp")
    jobs = plan([spec], [RUNNERS["onnxruntime"]], ["cpu"], RunConfig(scenario="train"))
    reason = precheck(jobs[0], {"cpu": True})
    assert reason and "onnxruntime cannot train" in reason and "--scenario latency|throughput|cold-start" in reason


def test_the_plan_runs_a_runners_sweep_in_ascending_batch_with_its_repeats():
    spec = load_workload("mlp")
    jobs = plan([spec], [RUNNERS["fake"]], ["cpu"], RunConfig(scenario="throughput", batch_sizes=(16, 1), repeats=2))
    assert [(j.workload["name"], j.repeat) for j in jobs] == [
        ("mlp@throughput-b1", 0), ("mlp@throughput-b1", 1), ("mlp@throughput-b16", 0), ("mlp@throughput-b16", 1)]
    assert {j.base_workload for j in jobs} == {"mlp"} and {j.scenario for j in jobs} == {"throughput"}


def _run(cli, tmp_path, *args):
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--out", str(out), *args)
    return res, json.loads(out.read_text())


@pytest.mark.slow
def test_latency_cells_record_percentiles_with_intervals_and_output_parity(cli, workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "0.2")
    res, doc = _run(cli, tmp_path, "--scenario", "latency", "--quick")
    assert res.exit_code == 0, res.output
    (cell,) = doc["cells"]
    assert (cell["workload"], cell["scenario"], cell["base_workload"], cell["batch_size"]) == \
        ("tinymlp@latency", "latency", "tinymlp", 1)
    lat = cell["latency"]
    assert lat["n"] == len(cell["step_s"]) >= 50
    names = [p["name"] for p in lat["percentiles"]]
    assert names == ["p50", "p90", "p99"]
    for p in lat["percentiles"]:
        assert p["low"] <= p["value"] <= p["high"] <= lat["max"]
    assert cell["stop_reason"] in ("min_requests_and_time", "max_requests", "max_seconds")
    assert cell["parity"]["rows"] == 1 and len(cell["parity"]["logits"][0]) == 3
    assert cell["energy"]["available"] is False and "not available" in cell["energy"]["reason"]
    assert doc["config"]["scenario"] == "latency" and doc["workloads"]["tinymlp@latency"]["mode"] == "infer"


@pytest.mark.slow
def test_cold_start_runs_fresh_processes_and_splits_the_time(cli, workload_dir, tmp_path):
    res, doc = _run(cli, tmp_path, "--scenario", "cold-start", "--repeats", "2")
    assert res.exit_code == 0, res.output
    assert [c["repeat"] for c in doc["cells"]] == [0, 1]
    for cell in doc["cells"]:
        cs = cell["cold_start"]
        parts = cs["process_start_s"] + cs["import_s"] + cs["build_s"] + cs["first_call_s"]
        assert cs["total_s"] == pytest.approx(parts, rel=1e-6, abs=1e-6)
        assert cs["process_start_s"] > 0 and cs["import_s"] > 0
        assert cell["parity"]["logits"]


@pytest.mark.slow
def test_a_sweep_point_out_of_memory_ends_that_point_and_the_larger_ones_not_the_run(cli, workload_dir, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE_SAMPLE_BYTES", str(1 << 20))  # 1 MiB per sample, allocated at build
    res, doc = _run(cli, tmp_path, "--scenario", "throughput", "--quick", "--memory-limit", "1GiB",
                    "-b", "1", "-b", "4", "-b", "4096", "-b", "8192")
    cells = {c["batch_size"]: c for c in doc["cells"]}
    assert [c["batch_size"] for c in doc["cells"]] == [1, 4, 4096, 8192]
    assert cells[1]["status"] == cells[4]["status"] == "ok"
    assert cells[1]["samples_per_s"] > 0 and cells[4]["samples_per_s"] > 0
    assert cells[4096]["status"] == "oom" and "memory" in cells[4096]["reason"]
    assert cells[8192]["status"] == "skipped" and "batch 4096 of this sweep already ran out of memory" in \
        cells[8192]["reason"]
    assert res.exit_code == 1  # not every cell is ok, but the run finished and wrote every point


@pytest.mark.slow
def test_a_runtime_that_cannot_train_gives_a_skipped_cell_not_a_crash(cli, workload_dir, tmp_path):
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "onnxruntime", "-w", "tinymlp", "--scenario", "train", "--out", str(out))
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["status"] == "skipped" and "cannot train" in cell["reason"], cell
    assert "Traceback" not in res.output


def test_an_unknown_scenario_is_a_usage_error(cli):
    res = invoke(cli, "run", "-r", "fake", "--scenario", "sprint")
    assert res.exit_code == 2 and "--scenario 'sprint' is not a scenario" in res.output


def test_a_variant_name_too_long_is_refused():
    spec = load_workload("mlp")
    import dataclasses

    long = dataclasses.replace(spec, name="m" * 75)
    with pytest.raises(UsageError, match="longer than"):
        variant(long, "throughput", 256)
