"""Precision modes: the CLI option, torch autocast/GradScaler and TF32 flags, per-precision parity tolerances.

The torch tests run on the CPU (autocast supports bf16 and fp16 there); the CUDA variants skip with a
reason where there is no GPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fwbench import parity
from fwbench.config import RunnerOptions
from fwbench.job import Job
from fwbench.weights import init_params
from fwbench.workload import load_workload
from tests.conftest import invoke

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False here")


def _session(precision: str, device: str = "cpu", tf32: bool = False, runner: str = "torch"):
    from fwbench.runners.torch_runner import TorchSession

    spec = load_workload("tinycnn")
    job = Job(workload=spec.to_dict(), runner=runner, device=device, options=RunnerOptions(threads=1, precision=precision, tf32=tf32))
    s = TorchSession(job)
    s.setup()
    s.build(spec.without_dropout(), init_params(spec))
    return s, spec


def _first_losses(s, spec, n=3):
    from fwbench.data import DataSource

    data = DataSource(spec)
    return [s.value(s.train_step(s.put(data.batch(i)))) for i in range(n)]


@pytest.fixture
def restore_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fp32_is_fp32_and_tf32_is_explicit(workload_dir, restore_tf32):
    torch.backends.cuda.matmul.allow_tf32 = True  # a stale global setting must not leak into an fp32 cell
    s, _ = _session("fp32")
    st = s.settings()
    assert st["precision"] == "fp32" and st["autocast_dtype"] is None and st["loss_scaling"] is None
    assert st["tf32"] is False and st["cudnn_tf32"] is False
    assert s.scaler is None
    s, _ = _session("fp32", tf32=True)
    assert s.settings()["tf32"] is True and s.settings()["cudnn_tf32"] is True


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_tracks_fp32_within_the_parity_tolerance(workload_dir, restore_tf32, precision):
    ref, spec = _session("fp32")
    s, _ = _session(precision)
    fp32, low = _first_losses(ref, spec), _first_losses(s, spec)
    assert all(np.isfinite(low))
    t_init, _ = parity.TOLERANCES[precision]
    assert parity.close(low[0], fp32[0], t_init)  # the documented tolerance covers the rounding
    assert low[0] != fp32[0]  # ... and the rounding really happened (autocast was active)
    st = s.settings()
    assert st["precision"] == precision
    assert st["autocast_dtype"] == {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert (s.scaler is not None) == (precision == "fp16")
    assert st["loss_scaling"] == ("GradScaler (dynamic)" if precision == "fp16" else None)
    assert s.predict(np.zeros((2, 8, 8, 1), np.float32)).dtype == np.float32


def test_autocast_covers_the_forward_pass(workload_dir, restore_tf32):
    s, spec = _session("bf16")
    from fwbench.data import DataSource

    x, _ = s.put(DataSource(spec).batch(0))
    with s._autocast():
        assert s.forward(x).dtype == torch.bfloat16
    assert next(s.model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_parity_tolerances_widen_for_reduced_precision():
    def cells(delta):
        return [{"id": f"w/{r}/cpu/0", "workload": "w", "runner": r, "family": "x", "device": "cpu", "repeat": 0,
                 "parity": {"initial_loss": 2.30 + d, "kstep_loss": 2.0 + d, "k": 4}}
                for r, d in (("torch", 0.0), ("other", delta))]
    assert parity.evaluate(cells(5e-3), precision="fp32")["mismatches"] == ["w/other/cpu/0"]
    summary = parity.evaluate(cells(5e-3), precision="bf16")
    assert summary["ok"] and summary["tolerances"] == {"initial_loss": 2e-2, "kstep_loss": 5e-2,
                                                       "output_atol": 1e-2, "output_rtol": 2e-2}
    assert parity.evaluate(cells(5e-3), precision="fp16")["ok"]
    assert not parity.evaluate(cells(0.2), precision="bf16")["ok"]
    # every precision the CLI offers has tolerances, and they only widen as precision drops
    from fwbench.cli.run_cmd import PRECISIONS

    assert set(PRECISIONS) <= set(parity.TOLERANCES) and set(PRECISIONS) <= set(parity.OUTPUT_TOLERANCES)
    assert parity.TOLERANCES["fp32"] < parity.TOLERANCES["fp16"] < parity.TOLERANCES["bf16"]
    assert parity.OUTPUT_TOLERANCES["fp32"] < parity.OUTPUT_TOLERANCES["fp16"] < parity.OUTPUT_TOLERANCES["bf16"]


def test_cli_rejects_an_unknown_precision(cli, workload_dir, tmp_path):
    r = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--precision", "fp8", "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 2
    assert "--precision 'fp8' is not a precision; choose from: fp32, bf16, fp16" in r.output


def test_cli_records_precision_and_tf32(cli, workload_dir, tmp_path):
    out = tmp_path / "r.json"
    r = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "--quick", "--precision", "bf16", "--tf32", "-o", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["config"]["options"]["precision"] == "bf16" and doc["config"]["options"]["tf32"] is True
    assert doc["cells"][0]["options"]["precision"] == "bf16"
    assert doc["parity"]["precision"] == "bf16"


@pytest.mark.slow
def test_torch_bf16_run_end_to_end_reports_precision_and_mfu(cli, workload_dir, tmp_path):
    out = tmp_path / "r.json"
    r = invoke(cli, "run", "-r", "torch", "-w", "tinycnn", "--precision", "bf16", "--threads", "1", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "MFU" in r.output
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["status"] == "ok"
    assert cell["settings"]["precision"] == "bf16"
    assert cell["flops_per_step"] > 0 and cell["achieved_flops"] > 0
    assert cell["peak_flops"] > 0 and cell["mfu"] == pytest.approx(cell["achieved_flops"] / cell["peak_flops"])
    assert cell["calibration"]["method"] == "numpy fp32 matmul"


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_precision_modes(workload_dir, restore_tf32, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    ref, spec = _session("fp32", device="cpu")
    s, _ = _session(precision, device="cuda")
    cpu, gpu = _first_losses(ref, spec), _first_losses(s, spec)
    t_init, _ = parity.TOLERANCES[precision]
    assert parity.close(gpu[0], cpu[0], t_init)
    assert s.peak_device_bytes() > 0
    assert s.settings()["tf32"] is False


@needs_cuda
@pytest.mark.slow
def test_cuda_run_end_to_end_records_device_timing_fields(cli, workload_dir, tmp_path):
    out = tmp_path / "r.json"
    r = invoke(cli, "run", "-r", "torch", "-w", "tinycnn", "--device", "cuda", "-o", str(out))
    assert r.exit_code == 0, r.output
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["sync_check"]["verdict"] == "ok"
    assert cell["peak_device_bytes"] > 0
    accel = cell["settings"]["accelerator"]
    assert accel["name"] and accel["cuda"] and accel["cudnn"]
    assert cell["peak_flops"] > 0 and 0 < cell["mfu"] < 1.5


# ------------------------------------------------------------------------------------ TensorFlow / Keras
def _tf_session(precision: str, runner: str = "tf-graph"):
    pytest.importorskip("tensorflow")
    from fwbench.runners import tf_runner

    spec = load_workload("tinycnn")
    cls = {"tf-eager": tf_runner.TFEagerSession, "tf-graph": tf_runner.TFGraphSession}[runner]
    s = cls(Job(workload=spec.to_dict(), runner=runner, device="cpu", options=RunnerOptions(threads=1, precision=precision)))
    s.setup()
    s.build(spec.without_dropout(), init_params(spec))
    return s, spec


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_tensorflow_mixed_precision_tracks_fp32(workload_dir, precision):
    import tensorflow as tf

    ref, spec = _tf_session("fp32")
    s, _ = _tf_session(precision)
    fp32, low = _first_losses(ref, spec), _first_losses(s, spec)
    assert parity.close(low[0], fp32[0], parity.TOLERANCES[precision][0]) and low[0] != fp32[0]
    assert all(v.dtype == tf.float32 for v in s.net.trainable)  # float32 master weights
    st = s.settings()
    assert st["precision"] == precision and st["compute_dtype"] == {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert (s.scaler is not None) == (precision == "fp16") and st["tf32"] is False


def test_tensorflow_loss_scale_skips_overflowed_updates_and_adapts():
    tf = pytest.importorskip("tensorflow")
    from fwbench.runners.tf_runner import LossScale

    scaler = LossScale(init_scale=1024.0, growth_interval=2)
    grads, finite = scaler.unscale([tf.constant([2048.0]), tf.constant([np.inf])])
    assert not bool(finite)
    scaler.update(finite)
    assert float(scaler.scale) == 512.0 and int(scaler.good_steps) == 0  # overflow: halve
    grads, finite = scaler.unscale([tf.constant([1024.0])])
    assert bool(finite) and float(grads[0][0]) == 2.0
    scaler.update(finite)
    assert float(scaler.scale) == 512.0 and int(scaler.good_steps) == 1
    scaler.update(tf.constant(True))
    assert float(scaler.scale) == 1024.0 and int(scaler.good_steps) == 0  # growth_interval finite steps: double


def test_tensorflow_fp16_overflow_leaves_the_weights_unchanged(workload_dir):
    s, spec = _tf_session("fp16", runner="tf-eager")
    from fwbench.data import DataSource

    s.scaler.scale.assign(1e38)  # the scaled loss overflows float16's range: the step must be skipped
    before = [v.numpy().copy() for v in s.net.trainable]
    loss = s.value(s.train_step(s.put(DataSource(spec).batch(0))))
    assert np.isfinite(loss)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, s.net.trainable))
    assert float(s.scaler.scale) == pytest.approx(5e37)


@pytest.mark.slow
def test_tensorflow_and_keras_fp16_runs_match_torch(cli, workload_dir, tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    out = tmp_path / "r.json"
    r = invoke(cli, "run", "-r", "torch", "-r", "tf-graph", "-r", "keras", "-w", "tinycnn", "--precision", "fp16",
               "--threads", "1", "-o", str(out))
    doc = json.loads(out.read_text())
    assert r.exit_code == 0, r.output
    cells = {c["runner"]: c for c in doc["cells"]}
    assert doc["parity"]["ok"] and doc["parity"]["precision"] == "fp16"
    assert cells["tf-graph"]["settings"]["loss_scaling"] == "dynamic (GradScaler rules)"
    assert cells["keras"]["settings"]["dtype_policy"] == "mixed_float16"
    assert cells["keras"]["settings"]["loss_scaling"] == "LossScaleOptimizer"
    assert all(c["mfu"] is not None for c in cells.values())
