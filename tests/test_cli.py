"""CLI behaviour through typer's CliRunner: every exit code of `fwbench run`, list, env, no framework imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import invoke

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax")


def test_help_lists_commands(cli):
    result = invoke(cli, "--help")
    assert result.exit_code == 0
    for command in ("run", "list", "env"):
        assert command in result.output


@pytest.mark.parametrize("args, words", [
    (["run", "-f", "caffe"], "unknown framework 'caffe'; choose from: all, torch, tensorflow, keras"),
    (["run", "-r", "mxnet"], "unknown runner 'mxnet'; choose from: torch, torch-compile"),
    (["run", "-r", "fake", "-w", "nope"], "unknown workload 'nope'; available:"),
    (["run", "-r", "fake", "-d", "quantum"], "unknown device 'quantum'; choose from: cpu, cuda, tpu, auto"),
    (["run", "-r", "fake", "--memory-limit", "lots"], "--memory-limit 'lots'"),
])
def test_usage_errors_exit_2_with_the_valid_names(cli, args, words):
    result = invoke(cli, *args)
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output


def test_malformed_workload_file_exits_2_naming_file_and_field(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ninput_shape = [4]\nclasses = 2\nbatch_size = "many"\n[[layers]]\ntype = "dense"\nunits = 2\n')
    result = invoke(cli, "run", "-r", "fake", "-w", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:batch_size: must be an integer" in result.output


def test_unwritable_out_is_detected_before_any_work(cli, tmp_path, workload_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--out", str(blocker / "sub" / "run.json"))
    assert result.exit_code == 2 and "cannot write results" in result.output
    assert "tinymlp/fake" not in result.output  # no cell ran


def test_ok_run_exits_0_and_writes_versioned_json(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-w", "tinycnn", "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 2 and doc["environment"]["cores"] >= 1
    assert [c["id"] for c in doc["cells"]] == ["tinymlp/fake/cpu/0", "tinycnn/fake/cpu/0"]
    cell = doc["cells"][0]
    assert cell["status"] == "ok" and len(cell["step_s"]) >= 3 and len(cell["warmup_s"]) == 2
    assert cell["summary"]["ci_low"] <= cell["summary"]["median"] <= cell["summary"]["ci_high"]
    assert cell["samples_per_s"] > 0 and cell["peak_rss_bytes"] > 0 and cell["threads"] >= 1
    assert "tinymlp — train, batch 4" in result.output


def test_default_results_folder_gets_a_run_id_file(cli, tmp_path, workload_dir):
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--results-dir", str(tmp_path / "res"))
    assert result.exit_code == 0
    files = list((tmp_path / "res").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["run_id"] == files[0].stem


def test_crash_and_hang_fail_their_cells_while_the_others_finish(cli, tmp_path, workload_dir, monkeypatch):
    out = tmp_path / "run.json"
    hang = workload_dir / "hang.toml"
    hang.write_text((workload_dir / "tinymlp.toml").read_text().replace('"tinymlp"', '"hang"'))
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=crash,hang=hang")
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-w", "hang", "-w", "tinycnn", "--timeout", "15",
                    "--out", str(out))
    assert result.exit_code == 1
    cells = {c["workload"]: c for c in json.loads(out.read_text())["cells"]}
    assert cells["tinymlp"]["status"] == "crashed" and "SIGABRT" in cells["tinymlp"]["reason"]
    assert cells["hang"]["status"] == "timeout" and "15 s" in cells["hang"]["reason"]
    assert cells["tinycnn"]["status"] == "ok"


def test_missing_device_is_a_skipped_cell_and_exit_1(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "torch", "-w", "tinymlp", "-d", "tpu", "--out", str(out))
    assert result.exit_code == 1
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["status"] == "skipped" and "tpu" in cell["reason"].lower()


def test_list_and_env(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke(cli, "list")
    assert result.exit_code == 0
    for word in ("cnn", "mlp", "digits", "torch-compile", "Devices", "Probes", "export-onnx", "shape-change"):
        assert word in result.output
    env = invoke(cli, "env", "--format", "json")
    assert env.exit_code == 0 and json.loads(env.stdout)["cores"] >= 1
    alias = invoke(cli, "env", "--json")  # a documented alias of --format json, without a warning
    assert alias.exit_code == 0 and alias.stderr == ""
    assert json.loads(alias.stdout).keys() == json.loads(env.stdout).keys()
    assert "--json" in invoke(cli, "env", "--help").output


def test_list_json_is_machine_readable(cli, workload_dir):
    (workload_dir / "broken.toml").write_text('name = "broken"\nbatch_size = 0\n')
    result = invoke(cli, "list", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert set(doc) == {"workloads", "runners", "devices", "probes"}
    workloads = {w["name"]: w for w in doc["workloads"]}
    mlp = workloads["tinymlp"]
    assert (mlp["valid"], mlp["mode"], mlp["batch_size"], mlp["parameters"]) == (True, "train", 4, 6 * 5 + 5 + 5 * 3 + 3)
    assert not workloads["broken"]["valid"] and workloads["broken"]["problem"]
    assert "cnn" in workloads and str(workload_dir) in mlp["from"]
    runners = {r["name"]: r for r in doc["runners"]}
    assert runners["fake"]["installed"] and runners["fake"]["test_double"] and runners["fake"]["family"] == "fake"
    for runner in runners.values():
        assert {"family", "mode", "framework", "installed", "missing", "versions", "devices"} <= set(runner)
    assert doc["devices"]["cpu"]["found"] and doc["devices"]["cpu"]["cores"] >= 1
    assert isinstance(doc["devices"]["cuda"]["found"], bool) and isinstance(doc["devices"]["tpu"]["found"], bool)
    probes = {p["name"]: p for p in doc["probes"]}
    assert "torch" in probes["export-onnx"]["runners"] and probes["export-onnx"]["needs"] == ["onnx", "onnxruntime"]
    assert probes["seq-length"]["token_workloads_only"] and probes["debug-value"]["kind"] == "debugging"


def test_run_with_probes_prints_each_table_and_the_results_file_once(cli, tmp_path, workload_dir, monkeypatch):
    """Issue 17: `run --probes` printed "Results:" after the cells and again after the probes."""
    from fwbench.probes import catalog

    # a probe of the test double; its worker does not know it, so the probe fails (a failure is data)
    monkeypatch.setitem(catalog.PROBES, "fake-probe", catalog.ProbeInfo(
        "fake-probe", "debugging", "a probe only this test knows", {"fake": "tests.nowhere:probe"}))
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "--probes", "-o", str(out))
    assert result.exit_code == 1, result.output  # the probe failed
    doc = json.loads(out.read_text())
    assert [c["status"] for c in doc["cells"]] == ["ok"] and [p["probe"] for p in doc["probes"]] == ["fake-probe"]
    assert result.output.count("Results:") == 1
    assert result.stderr.rstrip().splitlines()[-1] == f"Results: {out}"  # last, after the probes
    assert result.stdout.count("tinymlp — train") == 1 and result.stdout.count("Capability probes") == 1
    assert result.stderr.count("tinymlp/fake/cpu/0: ok") == 1
    assert result.stderr.count("tinymlp/fake-probe/fake/cpu: ") == 1


def test_run_with_probes_that_do_not_apply_still_names_the_results_file_once(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "--probes", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "No capability probe applies to fake." in result.stderr
    assert result.output.count("Results:") == 1 and result.stderr.rstrip().endswith(f"Results: {out}")


def test_the_cli_process_imports_no_framework(tmp_path, workload_dir):
    code = f"""
import sys
from typer.testing import CliRunner
from fwbench.cli.app import app
runner = CliRunner()
for args in (["--help"], ["list"], ["env"], ["run", "-r", "fake", "-w", "tinymlp", "-o", r"{tmp_path / 'r.json'}"]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
print("loaded:", loaded)
assert not loaded
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loaded: []" in proc.stdout
