"""End-to-end: the torch and torch-compile runners in real worker processes, on tiny shapes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import invoke

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def test_torch_runners_train_and_infer_with_parity(cli, tmp_path, workload_dir):
    infer = workload_dir / "tinyinfer.toml"
    infer.write_text((workload_dir / "tinycnn.toml").read_text().replace('"tinycnn"', '"tinyinfer"')
                     .replace("seed = 1", 'seed = 1\nmode = "infer"'))
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-f", "torch", "-w", "tinycnn", "-w", "tinymlp", "-w", "tinyinfer", "--threads", "1",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    cells = {(c["workload"], c["runner"]): c for c in doc["cells"]}
    assert len(cells) == 6 and all(c["status"] == "ok" for c in cells.values())
    for (workload, runner), c in cells.items():
        assert c["versions"]["torch"] and c["settings"]["intra_op_threads"] == 1
        assert c["settings"]["layout"] == "NCHW" and c["settings"]["compiled"] == (runner == "torch-compile")
        assert c["first_step_s"] > 0 and len(c["step_s"]) >= 3 and c["samples_per_s"] > 0
        assert c["final_loss"] > 0
    # same math: both runners start from the shared weights on the same batch
    for workload in ("tinycnn", "tinymlp", "tinyinfer"):
        eager, compiled = cells[(workload, "torch")], cells[(workload, "torch-compile")]
        assert eager["parity"]["status"] == "reference" and compiled["parity"]["status"] == "ok"
        assert compiled["parity"]["initial_loss"] == pytest.approx(eager["parity"]["initial_loss"], rel=1e-4)
    assert cells[("tinyinfer", "torch")]["parity"]["kstep_loss"] is None
    assert cells[("tinycnn", "torch-compile")]["retraces"] == 0
    assert doc["parity"]["ok"] and "Parity: every runner matched" in result.output


def test_channels_last_is_recorded(cli, tmp_path, workload_dir):
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "torch", "-w", "tinycnn", "--channels-last", "--out", str(out))
    assert result.exit_code == 0, result.output
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["settings"]["layout"] == "NHWC (channels_last)" and cell["options"]["channels_last"] is True


def test_time_to_accuracy_on_real_digits(cli, tmp_path):
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "torch", "-w", "digits", "--target", "--quick", "--out", str(out))
    assert result.exit_code == 0, result.output
    tta = json.loads(out.read_text())["cells"][0]["time_to_accuracy"]
    assert tta["reached"] and tta["final_accuracy"] >= 0.95 and tta["steps_to_target"] > 0
    assert tta["time_to_target_s"] > 0 and tta["curve"][-1][2] == tta["final_accuracy"]
