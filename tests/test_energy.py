"""Energy counters read through fakes: a RAPL tree in tmp_path, an NVML module in sys.modules, a fake clock.

Every test checks the arithmetic against figures worked out by hand, so a wrong unit, a double-counted
subdomain or a mishandled wrap fails it.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from fwbench import energy
from fwbench.energy import (NOT_AVAILABLE, RAPL_PERMISSION, EnergyMeter, counter_delta, energy_record, find_rapl,
                            meter_for, open_nvml)

RECORD_KEYS = {"available", "source", "domains", "joules", "seconds", "steps", "samples", "j_per_step",
               "j_per_sample", "watts"}


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_domain(path: Path, name: str, uj: int, wrap: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{uj}\n")
    (path / "max_energy_range_uj").write_text(f"{wrap}\n")
    return path


def set_uj(path: Path, uj: int) -> None:
    (path / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def rapl(tmp_path):
    """Two packages, each with subdomains nested (as sysfs nests them) and listed flat at the top (as
    /sys/class/powercap lists them), a psys domain, and the control-type directory."""
    root = tmp_path / "powercap"
    wrap = 262_143_328_850
    p0 = write_domain(root / "intel-rapl:0", "package-0", 1_000_000, wrap)
    p1 = write_domain(root / "intel-rapl:1", "package-1", wrap - 2_000_000, wrap)  # about to wrap
    core0 = write_domain(p0 / "intel-rapl:0:0", "core", 500_000, wrap)
    dram0 = write_domain(p0 / "intel-rapl:0:1", "dram", 10, wrap)
    flat_core = write_domain(root / "intel-rapl:0:0", "core", 500_000, wrap)
    flat_dram = write_domain(root / "intel-rapl:1:0", "dram", 10, wrap)
    psys = write_domain(root / "intel-rapl:2", "psys", 7, wrap)
    (root / "intel-rapl").mkdir()
    (root / "intel-rapl" / "enabled").write_text("1\n")
    return types.SimpleNamespace(root=root, wrap=wrap, p0=p0, p1=p1, others=[core0, dram0, flat_core,
                                                                               flat_dram, psys])


# ---------------------------------------------------------------------------------------------- arithmetic
def test_counter_delta_with_and_without_a_wrap():
    assert counter_delta(10, 25, 100) == 15
    assert counter_delta(90, 5, 100) == 15  # 90 -> 100 (wrap to 0) -> 5
    assert counter_delta(7, 7, 100) == 0
    with pytest.raises(ValueError):
        counter_delta(150, 5, 100)  # the start reading is past the range: not a wrap
    with pytest.raises(ValueError):
        counter_delta(-1, 5, 100)


def test_energy_record_arithmetic():
    rec = energy_record("rapl", ["package-0"], joules=12.0, seconds=4.0, steps=30, batch=8)
    assert set(rec) == RECORD_KEYS and rec["available"] is True
    assert rec["samples"] == 240
    assert rec["j_per_step"] == pytest.approx(12.0 / 30)
    assert rec["j_per_sample"] == pytest.approx(12.0 / 240)
    assert rec["watts"] == pytest.approx(3.0)
    for bad in (dict(steps=0), dict(batch=0), dict(seconds=0.0), dict(joules=-1.0), dict(joules=float("nan"))):
        with pytest.raises(ValueError):
            energy_record(**(dict(source="rapl", domains=[], joules=1.0, seconds=1.0, steps=1, batch=1) | bad))


# ---------------------------------------------------------------------------------------------------- RAPL
def test_rapl_sums_packages_only_and_undoes_one_wrap(rapl):
    clock = FakeClock()
    meter = meter_for("cpu", root=str(rapl.root), clock=clock)
    assert meter.available and meter.counter.domains == ["package-0", "package-1"]
    meter.start()
    set_uj(rapl.p0, 1_000_000 + 30_000_000)  # +30 J
    set_uj(rapl.p1, 3_000_000)  # wraps: 2 J to the top, then 3 J
    for other in rapl.others:  # subdomains and psys move a lot; none of it may be added
        set_uj(other, 999_000_000)
    clock.now += 5.0
    meter.stop()
    rec = meter.result(steps=50, batch=4)
    assert set(rec) == RECORD_KEYS
    assert rec["source"] == "rapl" and rec["domains"] == ["package-0", "package-1"]
    assert rec["joules"] == pytest.approx(35.0)
    assert rec["seconds"] == pytest.approx(5.0)
    assert (rec["steps"], rec["samples"]) == (50, 200)
    assert rec["j_per_step"] == pytest.approx(35.0 / 50)
    assert rec["j_per_sample"] == pytest.approx(35.0 / 200)
    assert rec["watts"] == pytest.approx(7.0)


def test_rapl_counter_that_did_not_advance_is_not_a_measurement(rapl):
    clock = FakeClock()
    meter = meter_for("cpu", root=str(rapl.root), clock=clock)
    meter.start()
    clock.now += 0.0005
    meter.stop()
    rec = meter.result(steps=1, batch=1)
    assert rec["available"] is False and "did not advance" in rec["reason"]


def test_rapl_without_package_domains(tmp_path):
    root = tmp_path / "powercap"
    write_domain(root / "intel-rapl:0", "psys", 1, 10)  # the platform domain alone is no package counter
    write_domain(root / "intel-rapl:0:0", "core", 1, 10)
    assert meter_for("cpu", root=str(root)).result(1, 1) == {"available": False, "reason": NOT_AVAILABLE}
    assert meter_for("cpu", root=str(tmp_path / "absent")).result(1, 1) == {"available": False,
                                                                           "reason": NOT_AVAILABLE}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file; the monkeypatched test covers it")
def test_rapl_chmod_000_counter(rapl):
    (rapl.p1 / "energy_uj").chmod(0)
    try:
        meter = meter_for("cpu", root=str(rapl.root))
    finally:
        (rapl.p1 / "energy_uj").chmod(0o644)
    assert not meter.available
    assert meter.result(1, 1) == {"available": False, "reason": RAPL_PERMISSION}


def test_rapl_permission_denied_at_probe(rapl, monkeypatch):
    real = energy._read_text

    def read_text(path):
        if Path(path).name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(energy, "_read_text", read_text)
    meter = meter_for("cpu", root=str(rapl.root))
    assert not meter.available
    assert meter.result(steps=10, batch=2) == {"available": False, "reason": "energy: RAPL counters not readable "
                                                                             "(permission)"}


def test_rapl_read_failing_at_stop_becomes_the_reason(rapl, monkeypatch):
    meter = meter_for("cpu", root=str(rapl.root), clock=FakeClock())
    meter.start()

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(energy, "_read_text", denied)
    meter.stop()  # does not raise: energy never ends a cell
    assert meter.result(5, 1) == {"available": False, "reason": RAPL_PERMISSION}


def test_rapl_garbage_counter(rapl):
    (rapl.p0 / "energy_uj").write_text("not a number\n")
    rec = meter_for("cpu", root=str(rapl.root)).result(1, 1)
    assert rec["available"] is False and "intel-rapl:0/energy_uj" in rec["reason"]


def test_find_rapl_reads_each_package_range(rapl):
    counter = find_rapl(rapl.root)
    assert [d.wrap for d in counter.packages] == [rapl.wrap, rapl.wrap]
    assert counter.read() == (1_000_000, rapl.wrap - 2_000_000)


def test_this_machine_has_no_counter():
    """The development machine has neither /sys/class/powercap nor an NVIDIA driver."""
    gpu = meter_for("cuda")
    if not gpu.available:  # no driver (NVMLError_LibraryNotFound) or no nvidia-ml-py: the reason says which
        assert gpu.result(1, 1)["reason"].startswith("energy: NVML")
    if Path(energy.POWERCAP).exists():
        pytest.skip("this machine has /sys/class/powercap")
    rec = meter_for("cpu").result(steps=10, batch=4)
    assert rec == {"available": False, "reason": "energy: not available (no RAPL / NVML)"}


def test_other_devices_have_no_counter(rapl):
    for device in ("tpu", "mps", "xla:0"):
        meter = meter_for(device, root=str(rapl.root))  # a readable RAPL tree is not a TPU's energy
        assert meter.result(1, 1) == {"available": False, "reason": NOT_AVAILABLE}


# ---------------------------------------------------------------------------------------------------- NVML
class NVMLError(Exception):
    pass


def fake_nvml(energy_mj: list[int], *, supported: bool = True, init_error: bool = False):
    """A pynvml stand-in with two GPUs; GPU 1's counter reads from ``energy_mj`` (popped in order)."""
    calls: list[tuple] = []

    def init():
        calls.append(("init",))
        if init_error:
            raise NVMLError("NVML Shared Library Not Found")

    def by_index(i):
        calls.append(("index", i))
        return f"h{i}"

    def by_uuid(u):
        calls.append(("uuid", u))
        return "h1" if u == "GPU-bbbb" else (_ for _ in ()).throw(NVMLError("Not Found"))

    def total_energy(handle):
        if not supported:
            raise NVMLError("Not Supported")
        return energy_mj.pop(0) if handle == "h1" else 0

    return types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=init, nvmlDeviceGetHandleByIndex=by_index,
                                 nvmlDeviceGetHandleByUUID=by_uuid,
                                 nvmlDeviceGetName=lambda h: b"NVIDIA H200" if h == "h1" else "Other GPU",
                                 nvmlDeviceGetTotalEnergyConsumption=total_energy, calls=calls)


def test_nvml_energy_on_the_cells_gpu(monkeypatch):
    fake = fake_nvml([5_000_000, 5_000_000, 5_250_500])  # probe, start, stop (millijoules)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    clock = FakeClock()
    meter = meter_for("cuda:1", clock=clock, env={})
    assert meter.available
    meter.start()
    clock.now += 2.5
    meter.stop()
    rec = meter.result(steps=100, batch=16)
    assert set(rec) == RECORD_KEYS
    assert rec["source"] == "nvml" and rec["domains"] == ["GPU 1: NVIDIA H200"]
    assert rec["joules"] == pytest.approx(250.5)
    assert rec["j_per_step"] == pytest.approx(2.505)
    assert rec["j_per_sample"] == pytest.approx(250.5 / 1600)
    assert rec["watts"] == pytest.approx(100.2)
    assert ("index", 1) in fake.calls


def test_nvml_follows_cuda_visible_devices(monkeypatch):
    fake = fake_nvml([1, 1, 2001])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = meter_for("cuda", clock=FakeClock(), env={"CUDA_VISIBLE_DEVICES": "1,0"})
    assert meter.counter.domains == ["GPU 1: NVIDIA H200"] and ("index", 1) in fake.calls

    fake = fake_nvml([1])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = meter_for("cuda:0", env={"CUDA_VISIBLE_DEVICES": "GPU-bbbb"})
    assert meter.available and ("uuid", "GPU-bbbb") in fake.calls

    meter = meter_for("cuda:3", env={"CUDA_VISIBLE_DEVICES": "0"})  # a GPU the process cannot see
    rec = meter.result(1, 1)
    assert rec["available"] is False and rec["reason"].startswith("energy: NVML")


def test_nvml_errors_are_reasons(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], supported=False))
    rec = meter_for("cuda", env={}).result(1, 1)
    assert rec == {"available": False, "reason": "energy: NVML energy counter not available (NVMLError: Not Supported)"}

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], init_error=True))
    rec = meter_for("cuda", env={}).result(1, 1)
    assert rec["available"] is False and "NVML Shared Library Not Found" in rec["reason"]

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: nvidia-ml-py not installed
    rec = meter_for("cuda", env={}).result(1, 1)
    assert rec == {"available": False, "reason": "energy: NVML not available (nvidia-ml-py is not installed)"}


def test_cuda_never_uses_rapl(rapl, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    rec = meter_for("cuda", root=str(rapl.root), env={}).result(1, 1)
    assert rec["available"] is False and "NVML" in rec["reason"]


def test_nvml_counter_going_backwards(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([10_000, 10_000, 5]))
    clock = FakeClock()
    meter = meter_for("cuda:1", clock=clock, env={})
    meter.start()
    clock.now += 1
    meter.stop()
    rec = meter.result(1, 1)
    assert rec["available"] is False and "backwards" in rec["reason"]


def test_nvml_is_imported_lazily():
    code = "import sys, fwbench.energy; print('pynvml' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=os.environ | {"PYTHONPATH": str(Path(energy.__file__).parents[1])})
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------- meter
def test_meter_without_a_window_or_steps(rapl):
    meter = meter_for("cpu", root=str(rapl.root), clock=FakeClock())
    rec = meter.result(10, 1)
    assert rec["available"] is False and "not started" in rec["reason"]
    meter.start()
    meter.stop()
    assert meter.result(0, 1) == {"available": False, "reason": "energy: no timed steps"}
    with pytest.raises(ValueError):
        meter.result(1, 0)


def test_meter_is_a_timing_window(rapl):
    """The timing loop starts and stops it around the timed steps only."""
    from fwbench.timing import measure
    from fwbench.workload_spec import Timing

    clock = FakeClock(0.0)
    meter = meter_for("cpu", root=str(rapl.root), clock=clock)
    uj = [1_000_000]

    def step(i):
        clock.now += 0.5
        uj[0] += 2_000_000  # 4 W
        set_uj(rapl.p0, uj[0])
        return 1.0

    res = measure(step, Timing(warmup=2, min_steps=4, max_steps=4, min_seconds=0, max_seconds=100), clock,
                  window=meter)
    rec = meter.result(len(res.step_s), batch=8)
    assert rec["steps"] == 4 and rec["joules"] == pytest.approx(8.0)  # warm-up's 4 J excluded
    assert rec["watts"] == pytest.approx(4.0) and rec["j_per_sample"] == pytest.approx(8.0 / 32)


def test_unavailable_meter_is_inert():
    meter = EnergyMeter(None, "energy: not available (no RAPL / NVML)")
    meter.start()
    meter.stop()
    assert not meter.available
    assert meter.result(3, 3) == {"available": False, "reason": NOT_AVAILABLE}


def test_open_nvml_with_explicit_module():
    counter = open_nvml("cuda:1", nvml=fake_nvml([42, 42, 1042]), env={})
    assert counter.joules(counter.read(), counter.read()) == pytest.approx(1.0)
