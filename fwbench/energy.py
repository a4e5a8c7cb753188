"""Energy per step and per sample, read from the hardware's own energy counters, where it exposes one.

Two counters, each only on the device it measures:

- **RAPL** (``device == "cpu"``): ``/sys/class/powercap/intel-rapl:N/energy_uj``, one cumulative counter in
  microjoules per CPU package (the kernel's ``intel_rapl`` driver; AMD's Zen packages use the same files).
  Only the *package* domains (``intel-rapl:N`` whose ``name`` is ``package-N``) are summed: their subdomains
  (``intel-rapl:N:M``: core, uncore, and on servers dram) are parts of, or beside, the package and would be
  counted twice or mixed in; ``psys`` (the whole platform on some laptops) contains the packages. The
  counter wraps to 0 past ``max_energy_range_uj``; one wrap between the start and stop readings is undone
  (:func:`counter_delta`); two cannot be told from none, so a window must be shorter than the wrap period
  (at 250 W, about 17 minutes for a 262 kJ range — far longer than a cell's timed steps). Since Linux 5.10
  ``energy_uj`` is readable by root only; the cell then says ``RAPL counters not readable (permission)``.
- **NVML** (``device == "cuda"``, package ``nvidia-ml-py``, imported lazily):
  ``nvmlDeviceGetTotalEnergyConsumption`` in millijoules since the driver loaded (Volta and newer), on the
  GPU the cell uses (``cuda:N`` is mapped through ``CUDA_VISIBLE_DEVICES`` to NVML's index or UUID).
  The CPU's share of a GPU cell is not added: the record is the GPU's energy, and says so.

Anything else, or any failure to find or read a counter, gives ``{"available": False, "reason": ...}`` —
never an estimate from TDP or utilisation: a number in the ``energy`` record is always a counter's
difference over the timed window. A window in which the counter did not advance at all (shorter than its
update interval) is reported unavailable for the same reason.

:class:`EnergyMeter` is a :class:`fwbench.timing.Window`: hand it to the timing loop, which starts it before
the first timed step and stops it after the last; then ``result(steps, batch)`` gives the cell's record.
The arithmetic (:func:`counter_delta`, :func:`energy_record`) is pure; the readers below it touch ``/sys``
and NVML, and :func:`meter_for` never raises.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

NOT_AVAILABLE = "energy: not available (no RAPL / NVML)"
RAPL_PERMISSION = "energy: RAPL counters not readable (permission)"
POWERCAP = "/sys/class/powercap"
_PACKAGE_DIR = re.compile(r"^intel-rapl:(\d+)$")  # top-level domains only; intel-rapl:N:M are subdomains


class EnergyUnavailable(Exception):
    """A counter cannot be found or read; ``str(exc)`` is the reason the cell records."""


# ---------------------------------------------------------------------------------------------- arithmetic
def counter_delta(start: int, stop: int, wrap: int) -> int:
    """``stop - start`` of a counter that wraps to 0 past ``wrap`` (RAPL's ``max_energy_range_uj``),
    allowing one wrap between the readings."""
    if start < 0 or stop < 0:
        raise ValueError(f"negative counter reading ({start}, {stop})")
    if stop >= start:
        return stop - start
    if wrap <= 0 or start > wrap:
        raise ValueError(f"counter went back from {start} to {stop} and its range {wrap} cannot explain it")
    return stop + wrap - start


def energy_record(source: str, domains: list[str], joules: float, seconds: float, steps: int,
                  batch: int) -> dict[str, Any]:
    """The cell's ``energy`` record for ``joules`` spent over ``seconds`` of ``steps`` timed steps of
    ``batch`` samples each."""
    if steps < 1 or batch < 1:
        raise ValueError(f"steps ({steps}) and batch ({batch}) must be >= 1")
    if not (math.isfinite(joules) and joules >= 0 and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"need joules >= 0 and seconds > 0, got {joules!r} J over {seconds!r} s")
    samples = steps * batch
    return {"available": True, "source": source, "domains": list(domains), "joules": joules,
            "seconds": seconds, "steps": steps, "samples": samples, "j_per_step": joules / steps,
            "j_per_sample": joules / samples, "watts": joules / seconds}


def unavailable(reason: str = NOT_AVAILABLE) -> dict[str, Any]:
    return {"available": False, "reason": reason}


# ------------------------------------------------------------------------------------------------ counters
class Counter(Protocol):
    """A cumulative energy counter: raw readings, and the joules between two of them."""

    source: str

    @property
    def domains(self) -> list[str]: ...

    def read(self) -> tuple[int, ...]: ...

    def joules(self, start: tuple[int, ...], stop: tuple[int, ...]) -> float: ...


def _read_text(path: Path) -> str:
    """One sysfs file (a seam for tests: a root test process can read a chmod-000 file)."""
    with open(path, encoding="ascii") as f:
        return f.read()


def _read_uint(path: Path) -> int:
    try:
        value = int(_read_text(path).strip())
    except PermissionError as exc:
        raise EnergyUnavailable(RAPL_PERMISSION) from exc
    except (OSError, ValueError) as exc:
        raise EnergyUnavailable(f"energy: RAPL counter {path.parent.name}/{path.name} not readable "
                                f"({type(exc).__name__}: {exc})") from exc
    if value < 0:
        raise EnergyUnavailable(f"energy: RAPL counter {path.parent.name}/{path.name} is negative")
    return value


@dataclass(frozen=True)
class RaplDomain:
    name: str  # "package-0"
    path: Path  # the domain's directory
    wrap: int  # max_energy_range_uj


@dataclass(frozen=True)
class RaplCounter:
    """The sum of the CPU package domains' ``energy_uj`` counters."""

    packages: tuple[RaplDomain, ...]
    source: str = "rapl"

    @property
    def domains(self) -> list[str]:
        return [d.name for d in self.packages]

    def read(self) -> tuple[int, ...]:
        return tuple(_read_uint(d.path / "energy_uj") for d in self.packages)

    def joules(self, start: tuple[int, ...], stop: tuple[int, ...]) -> float:
        return sum(counter_delta(a, b, d.wrap) for a, b, d in zip(start, stop, self.packages)) / 1e6


def find_rapl(root: str | Path = POWERCAP) -> RaplCounter:
    """The package domains under ``root``, each read once; raises :class:`EnergyUnavailable`."""
    base = Path(root)
    try:
        entries = sorted((int(m.group(1)), p) for p in base.iterdir() if (m := _PACKAGE_DIR.match(p.name)))
    except OSError:
        entries = []
    packages = []
    for _, path in entries:
        try:
            name = _read_text(path / "name").strip()
        except OSError:
            name = path.name
        if not name.startswith("package"):
            continue  # psys (the platform, packages included) or an unknown top-level domain
        packages.append(RaplDomain(name, path, _read_uint(path / "max_energy_range_uj")))
    if not packages:
        raise EnergyUnavailable(NOT_AVAILABLE)
    counter = RaplCounter(tuple(packages))
    counter.read()  # readable now, or the reason why not (root-only since Linux 5.10)
    return counter


def _nvml_reason(exc: BaseException) -> str:
    return f"energy: NVML energy counter not available ({type(exc).__name__}: {exc})"


@dataclass(frozen=True)
class NvmlCounter:
    """One GPU's total-energy counter (millijoules since the driver loaded)."""

    nvml: Any
    handle: Any
    label: str
    source: str = "nvml"

    @property
    def domains(self) -> list[str]:
        return [self.label]

    def read(self) -> tuple[int, ...]:
        try:
            return (int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)),)
        except Exception as exc:  # NVMLError and its subclasses, or a driver gone away
            raise EnergyUnavailable(_nvml_reason(exc)) from exc

    def joules(self, start: tuple[int, ...], stop: tuple[int, ...]) -> float:
        if stop[0] < start[0]:
            raise ValueError("NVML energy counter went backwards (driver reloaded?)")
        return (stop[0] - start[0]) / 1e3


def _cuda_index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index else 0


def open_nvml(device: str = "cuda", nvml: Any = None, env: Mapping[str, str] = os.environ) -> NvmlCounter:
    """The energy counter of the GPU ``device`` (``cuda`` or ``cuda:N``) names; raises EnergyUnavailable."""
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except Exception as exc:
            raise EnergyUnavailable("energy: NVML not available (nvidia-ml-py is not installed)") from exc
    try:
        index = _cuda_index(device)
        visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        nvml.nvmlInit()
        if visible:
            entry = visible[index]  # IndexError: the cell names a GPU it cannot see
            handle = (nvml.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit()
                      else nvml.nvmlDeviceGetHandleByUUID(entry))
        else:
            entry, handle = str(index), nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        counter = NvmlCounter(nvml, handle, f"GPU {entry}: {name}")
    except Exception as exc:
        raise EnergyUnavailable(_nvml_reason(exc)) from exc
    counter.read()  # e.g. NVMLError_NotSupported before Volta
    return counter


# --------------------------------------------------------------------------------------------------- meter
class EnergyMeter:
    """Reads a counter at :meth:`start` and :meth:`stop` (the timed window); :meth:`result` is the record.

    Without a counter (``counter=None``) it records ``reason``. Neither ``start`` nor ``stop`` raises: a
    failed read becomes the reason, so that energy never ends a cell."""

    def __init__(self, counter: Counter | None = None, reason: str = NOT_AVAILABLE,
                 clock: Callable[[], float] = time.perf_counter):
        self.counter, self.reason, self.clock = counter, reason, clock
        self._begin: tuple[float, tuple[int, ...]] | None = None
        self._end: tuple[float, tuple[int, ...]] | None = None

    @property
    def available(self) -> bool:
        return self.counter is not None

    def _read(self) -> tuple[int, ...] | None:
        try:
            return self.counter.read()  # type: ignore[union-attr]
        except Exception as exc:
            self.counter = None
            self.reason = str(exc) if isinstance(exc, EnergyUnavailable) else \
                f"energy: {type(exc).__name__} reading the counter: {exc}"
            return None

    def start(self) -> None:
        self._begin = self._end = None
        if self.counter is not None:
            t0 = self.clock()
            reading = self._read()
            if reading is not None:
                self._begin = (t0, reading)

    def stop(self) -> None:
        if self.counter is not None and self._begin is not None:
            reading = self._read()
            t1 = self.clock()
            if reading is not None:
                self._end = (t1, reading)

    def result(self, steps: int, batch: int) -> dict[str, Any]:
        """The ``energy`` record of the window, divided over ``steps`` steps of ``batch`` samples."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if self.counter is None:
            return unavailable(self.reason)
        if self._begin is None or self._end is None:
            return unavailable("energy: the meter was not started and stopped around timed steps")
        if steps < 1:
            return unavailable("energy: no timed steps")
        (t0, r0), (t1, r1) = self._begin, self._end
        try:
            joules = self.counter.joules(r0, r1)
        except ValueError as exc:
            return unavailable(f"energy: {exc}")
        seconds = t1 - t0
        if seconds <= 0 or joules <= 0:
            return unavailable(f"energy: the {self.counter.source} counter did not advance over the "
                               f"{max(seconds, 0.0):.3g} s window (shorter than its update interval)")
        return energy_record(self.counter.source, self.counter.domains, joules, seconds, steps, batch)


def meter_for(device: str, root: str = POWERCAP, clock: Callable[[], float] = time.perf_counter,
              env: Mapping[str, str] | None = None) -> EnergyMeter:
    """The meter for a cell on ``device``: RAPL for ``cpu``, NVML for ``cuda[:N]``, else none. Never raises."""
    try:
        kind = device.split(":", 1)[0]
        if kind == "cpu":
            return EnergyMeter(find_rapl(root), clock=clock)
        if kind == "cuda":
            return EnergyMeter(open_nvml(device, env=os.environ if env is None else env), clock=clock)
        return EnergyMeter(None, NOT_AVAILABLE, clock)
    except EnergyUnavailable as exc:
        return EnergyMeter(None, str(exc), clock)
    except Exception as exc:  # a counter tree of an unexpected shape: say so, never fail the cell
        return EnergyMeter(None, f"energy: not available ({type(exc).__name__}: {exc})", clock)
