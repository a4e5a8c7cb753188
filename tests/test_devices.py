"""Accelerator detection, TPU strategy selection (with fakes), the sync self-check, the matmul calibration,
published peaks, and the CLI on devices this machine lacks. Real-CUDA tests skip with a reason elsewhere.

Real TPUs are never exercised here: the TPU paths are tested against fake framework modules only.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from fwbench import calibrate, devices, peaks, synccheck
from fwbench.config import RunnerOptions
from fwbench.errors import CellSkipped
from fwbench.runners.registry import FRAMEWORKS, RUNNERS, RunnerInfo
from tests.conftest import invoke


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False here")


# ------------------------------------------------------------------------------------------- frameworks
def test_runners_declare_their_framework():
    assert {n: r.framework for n, r in RUNNERS.items()} == {
        "torch": "torch", "torch-compile": "torch", "tf-eager": "tensorflow", "tf-graph": "tensorflow",
        "tf-xla": "tensorflow", "keras": "tensorflow", "keras-torch": "torch", "keras-jax": "jax", "fake": "none",
        # deployed runtimes: their own kernels (no framework's matmul calibration), AOTInductor's are torch's
        "onnxruntime": "runtime", "tflite": "runtime", "openvino": "runtime", "torch-export": "torch"}
    for info in RUNNERS.values():  # a Keras runner computes with the backend its worker is started with
        assert dict(info.env).get("KERAS_BACKEND", info.framework) == info.framework, info.name


def test_a_runner_must_declare_a_known_framework():
    with pytest.raises(TypeError):
        RunnerInfo("t", "tensorflow", "m", "x:Y", (), ())  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="framework 'mxnet'"):
        RunnerInfo("t", "mx", "m", "x:Y", (), (), framework="mxnet")
    assert RunnerInfo("t", "t", "m", "x:Y", (), (), framework="jax").framework in FRAMEWORKS


def test_brief_is_one_line_naming_the_problem():
    from fwbench.errors import brief

    tf_style = RuntimeError("Graph execution error:\n\n  File \"x.py\", line 3\n    [[{{node m}}]]\n"
                            "Received a label value of 103 which is outside the valid range\n  [[{{node y}}]]")
    assert brief(tf_style) == ("RuntimeError: Graph execution error: ... "
                               "Received a label value of 103 which is outside the valid range")
    assert brief(ValueError("one line")) == "ValueError: one line"
    assert brief(KeyError()) == "KeyError: "
    assert len(brief(ValueError("x" * 900), 300)) == 300


# ------------------------------------------------------------------------------------------------- TPU
def test_tpu_backend_selection():
    assert devices.select_tpu_backend("tensorflow") == "TPUStrategy (TPUClusterResolver)"
    assert devices.select_tpu_backend("jax") == "JAX TPU backend"
    assert devices.select_tpu_backend("torch", find_spec=lambda m: object()) == "torch_xla"
    with pytest.raises(CellSkipped, match="torch_xla, which is not installed"):
        devices.select_tpu_backend("torch", find_spec=lambda m: None)
    with pytest.raises(CellSkipped, match="no TPU path"):
        devices.select_tpu_backend("none")


def test_tpu_name(tmp_path: Path):
    assert devices.tpu_name({"TPU_NAME": "my-tpu"}, tmp_path) == "my-tpu"
    assert devices.tpu_name({}, tmp_path) == ""
    (tmp_path / "accel0").touch()
    assert devices.tpu_name({}, tmp_path) == "local"


class FakeTF:
    """Just enough of ``tensorflow`` for the TPU connection sequence; records the calls in order."""

    def __init__(self, fail_at: str | None = None, tpus: int = 8):
        self.calls: list[str] = []
        fake = self

        def step(name, result=None):
            def fn(*args, **kwargs):
                fake.calls.append(name)
                if fail_at == name:
                    raise ValueError("Please provide a TPU Name to connect to.")
                return result if result is not None else (name, args, kwargs)
            return fn

        self.distribute = types.SimpleNamespace(
            cluster_resolver=types.SimpleNamespace(TPUClusterResolver=step("resolver")),
            TPUStrategy=step("strategy"))
        self.config = types.SimpleNamespace(experimental_connect_to_cluster=step("connect"),
                                            list_logical_devices=lambda kind: [f"/TPU:{i}" for i in range(tpus)])
        self.tpu = types.SimpleNamespace(experimental=types.SimpleNamespace(
            initialize_tpu_system=step("initialize", "topology"),
            DeviceAssignment=types.SimpleNamespace(build=step("assign"))))


def test_tf_tpu_strategy_connects_in_order():
    tf = FakeTF()
    strategy = devices.tf_tpu_strategy(tf, name="local")
    assert tf.calls == ["resolver", "connect", "initialize", "assign", "strategy"]
    name, args, kwargs = strategy
    assert name == "strategy" and kwargs["experimental_device_assignment"][0] == "assign"  # one core
    tf = FakeTF()
    devices.tf_tpu_strategy(tf, name="local", replicas=None)
    assert tf.calls == ["resolver", "connect", "initialize", "strategy"]  # every core


def test_tf_tpu_strategy_without_tpu_is_a_skip_with_a_reason():
    tf = FakeTF(fail_at="resolver")
    with pytest.raises(CellSkipped, match=r"TensorFlow found no TPU \(TPUClusterResolver\(tpu=''\): ValueError"):
        devices.tf_tpu_strategy(tf, name="")
    with pytest.raises(CellSkipped, match="lists no TPU device"):
        devices.tf_tpu_strategy(FakeTF(tpus=0), name="local")


def test_jax_tpu_detection_with_fakes():
    tpu = types.SimpleNamespace(platform="tpu", device_kind="TPU v4")
    assert devices.jax_tpu_device(types.SimpleNamespace(devices=lambda kind: [tpu])) is tpu

    def no_tpu(kind):
        raise RuntimeError("Unknown backend: 'tpu' requested, but no platforms that are instances of tpu are present.")
    with pytest.raises(CellSkipped, match="JAX sees no TPU"):
        devices.jax_tpu_device(types.SimpleNamespace(devices=no_tpu))


def test_jax_on_this_machine_finds_no_tpu():
    jax = pytest.importorskip("jax")
    if any(d.platform == "tpu" for d in jax.devices()):
        pytest.skip("this machine has a TPU")
    with pytest.raises(CellSkipped, match="JAX sees no TPU"):
        devices.jax_tpu_device(jax)


def _fake_xla(kind: str):
    synced = []
    modules = {"torch_xla": types.SimpleNamespace(device=lambda: "xla:0", sync=lambda: synced.append(1)),
               "torch_xla.runtime": types.SimpleNamespace(device_type=lambda: kind)}

    def importer(name):
        return modules[name]
    return importer, synced


def test_torch_xla_detection_with_fakes():
    importer, synced = _fake_xla("TPU")
    device, sync = devices.torch_xla_device(importer)
    assert device == "xla:0"
    sync()
    assert synced == [1]
    with pytest.raises(CellSkipped, match="torch_xla's device is CPU, not a TPU"):
        devices.torch_xla_device(_fake_xla("CPU")[0])

    def missing(name):
        raise ModuleNotFoundError(name)
    with pytest.raises(CellSkipped, match="not installed"):
        devices.torch_xla_device(missing)


def test_torch_session_on_tpu_without_torch_xla_is_skipped():
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch_xla is installed here")
    from fwbench.job import Job
    from fwbench.runners.torch_runner import TorchCompileSession, TorchSession

    job = Job(workload={"name": "x"}, runner="torch", device="tpu")
    with pytest.raises(CellSkipped, match="torch_xla"):
        TorchSession(job).setup()
    with pytest.raises(CellSkipped, match="torch-compile does not run on TPUs"):
        TorchCompileSession(job).setup()
    assert "tpu" in RUNNERS["torch"].devices


# ------------------------------------------------------------------------------------- sync self-check
class FakeAsyncDevice:
    """A virtual clock and a device queue: issuing a step costs ``launch`` of host time and ``work`` of device time.

    ``honest`` sync waits until the queue is empty; a dishonest one returns at once (the bug the check catches).
    """

    def __init__(self, launch: float, work: float, honest: bool):
        self.now, self.free_at = 0.0, 0.0
        self.launch, self.work, self.honest = launch, work, honest

    def clock(self) -> float:
        return self.now

    def step(self, i: int) -> float:
        self.now += self.launch
        self.free_at = max(self.free_at, self.now) + self.work
        return 1.0

    def barrier(self) -> None:
        self.now = max(self.now, self.free_at)

    def value(self, loss: float) -> float:
        if self.honest:
            self.barrier()
        return loss


def test_sync_check_passes_an_honest_runner_on_an_async_device():
    dev = FakeAsyncDevice(launch=0.001, work=0.010, honest=True)
    res = synccheck.check(dev.step, dev.value, dev.barrier, steps=10, clock=dev.clock)
    assert res.verdict == "ok"
    assert res.synced_s == pytest.approx(0.011)
    assert res.launch_s == pytest.approx(0.001)
    assert res.drained_s == pytest.approx(0.0101)  # pipelined: the launches overlap the device work
    assert "asynchronous device" in res.note


def test_sync_check_flags_a_runner_whose_sync_does_not_wait():
    dev = FakeAsyncDevice(launch=0.001, work=0.010, honest=False)
    res = synccheck.check(dev.step, dev.value, dev.barrier, steps=10, clock=dev.clock)
    assert res.verdict == "unsynchronised"
    assert "returns before the device finishes" in res.note


def test_sync_check_verdicts():
    assert synccheck.verdict(0.010, 0.009, 0.010) == ("ok", "")
    assert synccheck.verdict(0.010, 0.010, None)[0] == "unchecked"
    assert synccheck.verdict(0.002, 0.002, 0.010)[0] == "unsynchronised"


# ------------------------------------------------------------------------------------------- calibration
def test_measure_peak_grows_the_matrix_until_it_stops_helping():
    clock = {"t": 0.0}
    rate = {256: 1e9, 512: 4e9, 1024: 4.1e9}  # FLOP/s the fake device reaches per size

    def make(n):
        def run(k):
            clock["t"] += k * 2 * n ** 3 / rate[n]
        return run

    peak, n, samples, per_sample, best = calibrate.measure_peak(make, (256, 512, 1024), budget_s=5.0,
                                                                clock=lambda: clock["t"])
    assert n == 512 and peak == pytest.approx(4e9)  # 1024 was not 10% better
    assert samples >= calibrate.MIN_SAMPLES
    assert best == pytest.approx(2 * 512 ** 3 / 4e9)
    assert per_sample * best >= calibrate.TARGET_SAMPLE_S


def test_cpu_calibration_measures_a_numpy_matmul():
    cal = calibrate.calibrate("cpu", "torch", "bf16", budget_s=0.3)
    assert cal.peak_flops and cal.peak_flops > 0
    assert cal.method == "numpy fp32 matmul" and cal.n in calibrate.CPU_SIZES
    assert "fp32" in cal.note  # reduced precision on the CPU is compared with the fp32 peak


def test_device_calibration_failure_is_data_not_a_crash():
    cal = calibrate.calibrate("cuda", "no-such-framework")
    assert cal.peak_flops is None and "no matmul calibration" in cal.note
    assert calibrate.calibrate("tpu", "torch").peak_flops is None


@needs_cuda
def test_cuda_calibration_bf16_beats_fp32():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    fp32 = calibrate.calibrate("cuda", "torch", "fp32")
    bf16 = calibrate.calibrate("cuda", "torch", "bf16")
    assert fp32.peak_flops and bf16.peak_flops
    assert bf16.peak_flops > fp32.peak_flops  # tensor cores; true of every GPU with bf16 support
    name = torch.cuda.get_device_name()
    published = peaks.published_flops(name, "fp32")
    if published:  # the measured peak cannot exceed the datasheet by much
        assert fp32.peak_flops < 1.3 * published


@needs_cuda
def test_cuda_sync_check_and_device_info_with_torch():
    import torch

    info = devices.accelerator_info("torch", "cuda")
    assert info["name"] and info["cuda"] and info["cudnn"]
    a = torch.randn(2048, 2048, device="cuda")

    def step(i):
        return (a @ a).sum()
    res = synccheck.check(step, lambda t: float(t.item()), devices.device_barrier("torch", "cuda"), steps=5)
    assert res.verdict == "ok"
    res = synccheck.check(step, lambda t: 0.0, devices.device_barrier("torch", "cuda"), steps=5)
    assert res.verdict == "unsynchronised"  # a sync that never waits is caught on a real GPU too


# ------------------------------------------------------------------------------------------------ peaks
@pytest.mark.parametrize("name, chip", [
    ("NVIDIA H200", "NVIDIA H200 SXM"), ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"), ("NVIDIA A100-SXM4-80GB", "NVIDIA A100"), ("NVIDIA A10", "NVIDIA A10"),
    ("NVIDIA L4", "NVIDIA L4"), ("NVIDIA L40S", "NVIDIA L40S"), ("Tesla T4", "NVIDIA T4"),
    ("Tesla V100-SXM2-16GB", "NVIDIA V100 SXM2"), ("TPU v4", "TPU v4"), ("TPU v5 lite", "TPU v5e"),
    ("TPU v5p", "TPU v5p"),
])
def test_published_peak_lookup(name, chip):
    assert peaks.lookup(name).chip == chip


def test_published_peak_by_precision():
    assert peaks.lookup("GeForce GTX 1080") is None
    assert peaks.published_flops("NVIDIA A100-SXM4-40GB", "fp32") == pytest.approx(19.5e12)
    assert peaks.published_flops("NVIDIA A100-SXM4-40GB", "fp32", tf32=True) == pytest.approx(156e12)
    assert peaks.published_flops("NVIDIA A100-SXM4-40GB", "bf16") == pytest.approx(312e12)
    assert peaks.published_flops("Tesla T4", "bf16") is None


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("device", ["cuda", "tpu"])
def test_absent_device_gives_skipped_cells_and_exit_1(cli, workload_dir, tmp_path, monkeypatch, device):
    from fwbench import env

    if env.devices()[device]:
        pytest.skip(f"this machine has a {device}")
    out = tmp_path / "r.json"
    r = invoke(cli, "run", "-f", "torch", "-w", "tinymlp", "--device", device, "-o", str(out))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    doc = json.loads(out.read_text())
    assert {c["status"] for c in doc["cells"]} == {"skipped"}
    reasons = {c["runner"]: c["reason"] for c in doc["cells"]}
    assert reasons["torch"] == f"no {device.upper()} device on this machine"
    assert all(reasons.values())


def test_unknown_device_is_a_usage_error(cli, workload_dir, tmp_path):
    r = invoke(cli, "run", "-f", "torch", "-w", "tinymlp", "--device", "quantum", "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 2
    assert "unknown device 'quantum'" in r.output


def test_worker_records_the_sync_check_when_asked(tmp_path, workload_dir):
    from fwbench.job import Job
    from fwbench.worker import main
    from fwbench.workload import load_workload

    job = Job(workload=load_workload("tinymlp").to_dict(), runner="fake", device="cpu", options=RunnerOptions(sync_check=True),
              phases=("timing",))
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()))
    main([str(tmp_path / "job.json"), str(tmp_path / "cell.json")])
    cell = json.loads((tmp_path / "cell.json").read_text())
    assert cell["status"] == "ok"
    assert cell["sync_check"]["verdict"] == "ok"  # the fake runner's sleep is synchronous
    # tinymlp 6 -> 5 -> 3, batch 4: the first layer forward + weight grad, the second also its input grad
    assert cell["flops_per_step"] == 4 * (2 * (2 * 6 * 5) + 3 * (2 * 5 * 3))
    assert cell["mfu"] is None and "no arithmetic" in cell["calibration"]["note"]


@pytest.mark.slow
def test_tensorflow_on_this_machine_finds_no_tpu():
    """The real TPUClusterResolver path, where there is no TPU: a skip with TensorFlow's own reason, quickly."""
    tf = pytest.importorskip("tensorflow")
    from fwbench import env

    if env.tpu_present():
        pytest.skip("this machine looks like a TPU host")
    with pytest.raises(CellSkipped, match="TensorFlow found no TPU"):
        devices.tf_tpu_strategy(tf)


def test_tpu_capable_runners():
    tpu = {name for name, info in RUNNERS.items() if "tpu" in info.devices}
    assert tpu == {"torch", "tf-graph", "tf-xla", "keras", "keras-jax"}


def test_a_peak_below_the_achieved_rate_is_measured_again(monkeypatch, workload_dir):
    from fwbench import worker
    from fwbench.job import Job
    from fwbench.workload import load_workload

    spec = load_workload("tinymlp")  # 840 FLOPs per step; at 1 ms a step that is 840 kFLOP/s achieved
    peaks_seen = iter([1e5, 1e9])
    monkeypatch.setattr(calibrate, "calibrate", lambda *a, **k: calibrate.Calibration(next(peaks_seen), "m", "fp32"))
    job = Job(workload=spec.to_dict(), runner="torch", device="cpu")
    fields = worker.utilisation(job, spec, {"summary": {"median": 1e-3}, "settings": {}})
    assert fields["peak_flops"] == 1e9 and fields["mfu"] == pytest.approx(840e3 / 1e9)
    assert "measured twice" in fields["calibration"]["note"]

    peaks_seen = iter([1e5, 2e5])
    fields = worker.utilisation(job, spec, {"summary": {"median": 1e-3}, "settings": {}})
    assert fields["mfu"] > 1 and "not meaningful" in fields["calibration"]["note"]


class FakeStrategy:
    """A one-replica stand-in for TPUStrategy that runs on the CPU: exercises the runners' strategy code path."""

    num_replicas_in_sync = 1

    def __init__(self):
        import contextlib

        self.extended = types.SimpleNamespace(worker_devices=["/CPU:0"])
        self.runs = 0
        self.scope = contextlib.nullcontext

    def run(self, fn, args=()):
        self.runs += 1
        return fn(*args)

    def experimental_local_results(self, value):
        return (value,)


def test_tf_runners_on_tpu_go_through_the_strategy(monkeypatch, workload_dir):
    pytest.importorskip("tensorflow")
    from fwbench.data import DataSource
    from fwbench.job import Job
    from fwbench.runners import tf_runner
    from fwbench.weights import init_params
    from fwbench.workload import load_workload

    spec = load_workload("tinycnn")
    job = Job(workload=spec.to_dict(), runner="tf-graph", device="tpu", options=RunnerOptions(precision="bf16"))
    with pytest.raises(CellSkipped, match="eager op-by-op execution is not a TPU mode"):
        tf_runner.TFEagerSession(job).setup()
    from fwbench.pipeline import precheck

    fp16 = Job(**{**job.__dict__, "options": RunnerOptions(precision="fp16")})
    assert "TPUs compute in bf16" in precheck(fp16, {"cpu": True, "tpu": True})  # one rule, before any worker

    strategy = FakeStrategy()
    monkeypatch.setattr(devices, "tf_tpu_strategy", lambda tf: strategy)
    s = tf_runner.TFGraphSession(job)
    s.setup()
    s.build(spec, init_params(spec))
    loss = s.value(s.train_step(s.put(DataSource(spec).batch(0))))
    assert loss > 0 and strategy.runs >= 1  # traced through strategy.run
    st = s.settings()
    assert st["distribution"] == "TPUStrategy, 1 replica(s)" and st["compute_dtype"] == "bfloat16"


def test_keras_torch_backend_has_no_tpu_path():
    from fwbench.job import Job
    from fwbench.runners.keras_runner import KerasSession

    job = Job(workload={"name": "x"}, runner="keras-torch", device="tpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", "torch")
        with pytest.raises(CellSkipped, match="Keras's torch backend has no TPU path"):
            KerasSession(job).setup()


def test_torch_runner_on_tpu_syncs_the_lazy_graph_every_step(monkeypatch, workload_dir):
    torch = pytest.importorskip("torch")
    from fwbench.data import DataSource
    from fwbench.job import Job
    from fwbench.runners.torch_runner import TorchSession
    from fwbench.weights import init_params
    from fwbench.workload import load_workload

    syncs = []
    # torch_xla stands in as the CPU device plus a recording sync(): the runner's XLA code path, minus XLA
    monkeypatch.setattr(devices, "torch_xla_device", lambda: (torch.device("cpu"), lambda: syncs.append(1)))
    spec = load_workload("tinycnn")
    s = TorchSession(Job(workload=spec.to_dict(), runner="torch", device="tpu", options=RunnerOptions(precision="bf16")))
    s.setup()
    s.build(spec, init_params(spec))
    batch = s.put(DataSource(spec).batch(0))
    assert s.value(s.train_step(batch)) > 0 and s.value(s.infer_step(batch)) > 0
    assert len(syncs) == 2  # one graph cut per step
    from fwbench.pipeline import precheck

    fp16 = Job(workload=spec.to_dict(), runner="torch", device="tpu", options=RunnerOptions(precision="fp16"))
    assert "TPUs compute in bf16" in precheck(fp16, {"cpu": True, "tpu": True})
