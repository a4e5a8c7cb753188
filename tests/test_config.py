"""The typed run configuration: validation once at the edge, round trips, and what `run`/`probe` do with it."""

from __future__ import annotations

import json

import pytest

from fwbench import config as cfg
from fwbench.config import ConfigError, RunConfig, RunnerOptions, parse_size
from fwbench.distributed.config import DistOptions
from fwbench.job import Job
from tests.conftest import invoke


def test_runner_options_round_trip_through_json_and_job():
    opts = RunnerOptions(threads=3, precision="bf16", tf32=True, channels_last=True, keras_jit_compile=False,
                         distributed=DistOptions(workers=2))
    assert RunnerOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    job = Job(workload={"name": "w"}, runner="torch", device="cpu", options=opts, probe="shape-error")
    again = Job.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job and again.options.threads == 3 and again.cell_id == "w/shape-error/torch/cpu"
    assert job.with_threads(1).options.threads == 1 and job.options.threads == 3  # frozen: a new job


@pytest.mark.parametrize("kwargs, words", [
    ({"threads": 0}, "--threads must be between 1"),
    ({"threads": "4"}, "--threads must be a whole number"),
    ({"threads": True}, "--threads must be a whole number"),
    ({"precision": "fp8"}, "--precision 'fp8' is not a precision; choose from: fp32, bf16, fp16"),
    ({"tf32": "yes"}, "--tf32 must be true or false"),
    ({"keras_jit_compile": 1}, "--keras-jit-compile must be true, false or null"),
])
def test_runner_options_refuse_bad_values_naming_the_option(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        RunnerOptions(**kwargs)


@pytest.mark.parametrize("stored, field", [
    ({"threads": 2, "turbo": True}, "options"),
    ({"threads": "2"}, "threads"),
    ({"distributed": {"workers": "many"}}, "workers"),
    ({"distributed": [1, 2]}, "distributed"),
    ([], "options"),
])
def test_runner_options_from_a_file_are_strict(stored, field):
    with pytest.raises(ConfigError) as info:
        RunnerOptions.from_dict(stored)
    assert info.value.field == field


@pytest.mark.parametrize("kwargs, field", [
    ({"repeats": 10**7}, "repeats"),
    ({"repeats": 0}, "repeats"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": "600"}, "timeout"),
    ({"devices": ["quantum"]}, "devices"),
    ({"resolved_devices": ["auto"]}, "resolved_devices"),
    ({"workloads": ["cnn", "cnn"]}, "workloads"),
    ({"workloads": "cnn"}, "workloads"),
    ({"workloads": []}, "workloads"),
    ({"memory_limit": "lots"}, "memory_limit"),
    ({"memory_limit": "1B"}, "memory_limit"),
    ({"command": "rm"}, "command"),
    ({"quick": 1}, "quick"),
])
def test_run_config_refuses_what_the_command_line_refuses(kwargs, field):
    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert info.value.field == field


def test_run_config_round_trips_whole_and_refuses_unknown_fields():
    c = RunConfig(frameworks=["torch"], runners=["keras"], workloads=["cnn", "mlp"], devices=["auto"],
                  resolved_devices=["cpu"], timeout=30, repeats=3, memory_limit="2GiB",
                  options=RunnerOptions(threads=2), argv=["run", "-f", "torch"])
    d = json.loads(json.dumps(c.to_dict()))
    assert RunConfig.from_dict(d) == c
    assert c.memory_limit_bytes == 2 * 2**30 and c.phases() == ("timing", "parity", "target")
    with pytest.raises(ConfigError, match="unknown field"):
        RunConfig.from_dict({**d, "evil": 1})


@pytest.mark.parametrize("text, expected", [("64MiB", 64 * 2**20), ("2GiB", 2 * 2**30), ("2G", 2 * 2**30),
                                            ("1.5 GiB", int(1.5 * 2**30)), ("1073741824", 2**30)])
def test_sizes_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "1B", "10MiB", "99999999999TiB", "lots", "-1G"])
def test_sizes_out_of_bounds_or_malformed_are_refused(text):
    with pytest.raises(ConfigError, match="--memory-limit"):
        parse_size(text)


def test_threads_zero_means_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(cfg.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(cfg.os, "cpu_count", lambda: 64)
    assert cfg.resolve_threads(0) == 3 and cfg.resolve_threads(7) == 7


def test_tpu_fp16_is_refused_before_any_worker():
    assert "TPUs compute in bf16" in cfg.tpu_precision_problem("tpu", "fp16")
    assert cfg.tpu_precision_problem("tpu", "bf16") is None and cfg.tpu_precision_problem("cpu", "fp16") is None


# ------------------------------------------------------------------------------------------------ CLI

def test_the_results_file_stores_the_whole_typed_configuration(cli, tmp_path, workload_dir, monkeypatch):
    monkeypatch.setattr(cfg, "available_cores", lambda: 3)
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "--repeats", "2", "-o", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    config = RunConfig.from_dict(doc["config"])
    assert config.options.threads == 3 and config.repeats == 2 and config.command == "run"
    # each cell stores the run's options with the timing mode resolved for its device (per-step on a CPU)
    assert all(c["options"] == config.options.for_device(c["device"]).to_dict() and c["threads"] == 3
               for c in doc["cells"])
    assert {c["options"]["timing"] for c in doc["cells"]} == {"per-step"}


def test_out_refuses_to_overwrite_without_force(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    out.write_text("precious")
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", str(out))
    assert res.exit_code == 2 and "exists; pass --force" in res.output and "--resume" in res.output
    assert out.read_text() == "precious"
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", str(out), "--force")
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["cells"]


def test_threshold_without_baseline_is_refused(cli, workload_dir):
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--threshold", "3%")
    assert res.exit_code == 2 and "--threshold applies to --baseline" in res.output


def test_resume_refuses_options_it_would_ignore(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    assert invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", str(out)).exit_code == 0
    for extra in (["-w", "tinycnn"], ["--timeout", "5"], ["-o", str(tmp_path / "x.json")], ["--repeats", "2"]):
        res = invoke(cli, "run", "--resume", str(out), *extra)
        assert res.exit_code == 2 and "cannot be combined with it" in res.output, extra
    res = invoke(cli, "run", "--resume", str(out), "--strict")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("path, value, words", [
    (("config", "repeats"), 10**7, "config.repeats"),
    (("config", "timeout"), -1, "config.timeout"),
    (("config", "options", "threads"), "all", "config.options.threads"),
    (("config", "workloads"), {"a": 1}, "config.workloads"),
    (("config", "workloads"), ["tinymlp", "tinymlp"], "config.workloads"),
    (("config", "options", "precision"), "fp8", "config.options.precision"),
    (("config", "turbo"), True, "config has unknown field(s) 'turbo'"),
])
def test_resume_revalidates_the_stored_configuration(cli, tmp_path, workload_dir, path, value, words):
    out = tmp_path / "run.json"
    assert invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    doc["cells"] = []
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    out.write_text(json.dumps(doc))
    res = invoke(cli, "run", "--resume", str(out))
    assert res.exit_code == 2 and words in res.output, res.output
    assert "Traceback" not in res.output


def test_two_workloads_with_one_name_are_refused(cli, tmp_path, workload_dir):
    other = tmp_path / "other.toml"
    other.write_text((workload_dir / "tinymlp.toml").read_text().replace("batch_size = 4", "batch_size = 8"))
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-w", str(other), "-o", str(tmp_path / "r.json"))
    assert res.exit_code == 2 and "two workloads are named 'tinymlp'" in res.output
    assert not (tmp_path / "r.json").exists()
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-w", "tinymlp")
    assert res.exit_code == 2 and "--workload names a workload more than once" in res.output


def test_run_and_probe_share_one_vocabulary(cli):
    run_help, probe_help = (" ".join(invoke(cli, cmd, "--help").output.split()) for cmd in ("run", "probe"))
    for text in ("-w, --workload NAME|FILE", "-d, --device DEVICE", "-o, --out FILE", "--force",
                 "-f, --framework FAMILY", "With neither --framework nor --runner: torch"):
        assert text in run_help and text in probe_help, text
    for placeholder in ("<list[str]>", "<float range>", "TEXT", "INTEGER", "PATH"):
        assert placeholder not in run_help and placeholder not in probe_help, placeholder


def test_out_may_not_be_the_baseline(cli, tmp_path, workload_dir):
    base = tmp_path / "base.json"
    assert invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", str(base)).exit_code == 0
    before = base.read_text()
    link = tmp_path / "link.json"
    link.symlink_to(base)
    for out in (str(base), str(link)):
        res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "--baseline", str(base), "-o", out,
                     "--force")
        assert res.exit_code == 2 and "is the --baseline file" in res.output, res.output
    res = invoke(cli, "run", "--resume", str(base), "--baseline", str(base))
    assert res.exit_code == 2 and "is the --baseline file" in res.output
    assert base.read_text() == before


@pytest.mark.parametrize("command", ["run", "probe", "compare", "report", "export", "env", "list"])
def test_help_shows_readable_placeholders(cli, command):
    text = invoke(cli, command, "--help").output
    for placeholder in ("<list[", "<path>", "<float range>", "<int", "{RESULTS", "{BASELINE", "TEXT", "INTEGER"):
        assert placeholder not in text, (command, placeholder)


def test_out_dash_and_probe_specific_messages(cli, tmp_path, workload_dir):
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "-o", "-")
    assert res.exit_code == 2 and "results are always written to a file" in res.output
    assert not (tmp_path / "-").exists()
    existing = tmp_path / "p.json"
    existing.write_text("{}")
    res = invoke(cli, "probe", "-r", "torch", "-p", "debug-value", "-o", str(existing))
    assert res.exit_code == 2 and "pass --force" in res.output and "--resume" not in res.output
    res = invoke(cli, "probe", "-r", "fake", "-o", str(tmp_path / "none.json"))
    assert res.exit_code == 2 and "no capability probe applies to the selected runners (fake)" in res.output
    assert not (tmp_path / "none.json").exists()


def test_the_existence_check_is_repeated_under_the_lock(tmp_path, monkeypatch):
    """Two runs that both found no file: the one that gets the lock second must not overwrite the first's."""
    import contextlib

    from fwbench import results
    from fwbench.cli import common
    from fwbench.errors import UsageError

    out = tmp_path / "r.json"
    real_lock = results.lock

    @contextlib.contextmanager
    def lock_after_a_rival_wrote(path):
        out.write_text("{}")  # the rival run finished between our first check and our lock
        with real_lock(path) as held:
            yield held

    monkeypatch.setattr(results, "lock", lock_after_a_rival_wrote)
    with contextlib.ExitStack() as held, pytest.raises(UsageError, match="exists; pass --force"):
        common.claim_output(held, out, tmp_path / "default.json", False, "run")


# ------------------------------------------------------------------------------------------------ timing (issue 19)

def test_timing_options_and_overrides_round_trip():
    from fwbench.config import TimingOverrides

    opts = RunnerOptions(threads=2, timing="windowed", cuda_graphs=True)
    assert RunnerOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    job = Job(workload={"name": "w"}, runner="torch-compile", device="cuda", options=opts)
    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))).options == opts
    c = RunConfig(timing_overrides=TimingOverrides(warmup=3, max_seconds=5, target_ci=0.05), options=opts)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["timing_overrides"] == {"warmup": 3, "min_steps": None, "max_steps": None, "max_seconds": 5.0,
                                     "target_ci": 0.05}
    assert RunConfig.from_dict(d) == c
    del d["timing_overrides"], d["options"]["timing"], d["options"]["cuda_graphs"]  # a file from before
    old = RunConfig.from_dict(d)
    assert old.timing_overrides == TimingOverrides() and old.options.timing is None and not old.options.cuda_graphs


@pytest.mark.parametrize("kwargs, words", [
    ({"warmup": 0}, "--warmup must be an integer from 1 to 10000, got 0"),
    ({"warmup": 2.0}, "--warmup must be an integer from 1 to 10000"),
    ({"min_steps": True}, "--min-steps must be an integer"),
    ({"max_seconds": 0}, "--max-time must be a number of seconds in (0, 86400]"),
    ({"max_seconds": float("inf")}, "--max-time must be"),
    ({"target_ci": 1.0}, "--target-ci must be a relative half-width in (0, 1)"),
    ({"min_steps": 9, "max_steps": 4}, "--max-steps must be at least --min-steps (9), got 4"),
])
def test_timing_overrides_refuse_bad_values_naming_the_flag(kwargs, words):
    from fwbench.config import TimingOverrides

    with pytest.raises(ConfigError) as info:
        TimingOverrides(**kwargs)
    assert words in str(info.value)


def test_timing_mode_is_checked():
    with pytest.raises(ConfigError, match="--timing 'fast' is not a timing mode; choose from: per-step, windowed"):
        RunnerOptions(timing="fast")
    with pytest.raises(ConfigError, match="--cuda-graphs must be true or false"):
        RunnerOptions(cuda_graphs="yes")
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"timing_overrides": {"warmup": -1}})
    assert info.value.field == "timing_overrides.warmup"
