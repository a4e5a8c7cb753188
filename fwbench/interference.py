"""Busy-machine detection: how much CPU the rest of the machine used while a cell's timed steps ran.

The worker takes a :class:`Snapshot` before the first timed step and another after the last one
(:class:`Watch`, handed to :func:`fwbench.timing.measure`). Between them:

- the CPUs of the worker's affinity were busy ``busy`` seconds in all (user + nice + system + irq + softirq,
  from ``/proc/stat``'s per-CPU lines; guest time is inside user);
- the worker itself used ``own`` seconds (``getrusage(RUSAGE_SELF)``: every thread of the process);
- so other processes used ``busy - own`` seconds of those CPUs.

``other_share = other seconds / (wall seconds × cores given)``, where the cores given are the cell's
threads bounded by its affinity. A cell is ``noisy`` when that share, less the counters' resolution (one
clock tick per watched CPU at each end), exceeds the threshold: :data:`DEFAULT_THRESHOLD`, or
``$FWBENCH_NOISY_SHARE``. Load average, steal time and CPU frequency are recorded beside it where the
system reports them. :func:`assess` is pure; the readers below it touch ``/proc``, ``/sys`` and psutil.
See docs/reliability.md for the figures behind the default.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

DEFAULT_THRESHOLD = 0.25
THRESHOLD_ENV = "FWBENCH_NOISY_SHARE"
FREQ_CHANGE = 0.05  # a relative change of the mean current frequency beyond this counts as a change
_BUSY_FIELDS = (0, 1, 2, 5, 6)  # /proc/stat cpuN columns: user nice system idle iowait irq softirq steal ...
_STEAL_FIELD = 7


@dataclass(frozen=True)
class Snapshot:
    """The counters at one moment. ``busy``/``steal`` are summed over the watched CPUs, in seconds."""

    wall: float
    busy: float
    own: float
    steal: float | None = None
    load: float | None = None
    freq_mhz: float | None = None
    cpus: int = 1
    tick_s: float = 0.01


@dataclass(frozen=True)
class Interference:
    """What the rest of the machine did during a cell's timed steps (the cell's ``interference`` field)."""

    other_cpu_s: float
    own_cpu_s: float
    wall_s: float
    cores: int
    cpus: int
    other_share: float
    resolution: float
    load_start: float | None
    load_end: float | None
    steal_s: float | None
    freq_mhz_start: float | None
    freq_mhz_end: float | None
    freq_changed: bool | None
    noisy: bool
    threshold: float
    source: str

    def to_dict(self) -> dict[str, object]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def warning(cell: Mapping[str, Any]) -> str | None:
    """The line ``fwbench run`` prints for a finished cell flagged noisy (a checked cell record), else None."""
    rec = cell.get("interference") or {}
    if not rec.get("noisy"):
        return None
    cores = rec["cores"]
    return (f"warning: {cell['id']}: machine busy — other processes used {rec['other_share']:.2f} of the "
            f"{cores} core{'s' if cores != 1 else ''} given (threshold {rec['threshold']:g}); "
            "its times are not trustworthy")


def assess(start: Snapshot, end: Snapshot, cores: int, threshold: float, source: str) -> Interference:
    """The figures between two snapshots (pure). ``cores``: the cores the cell was given (>= 1)."""
    wall = max(end.wall - start.wall, 1e-9)
    cores = max(1, min(cores, end.cpus))
    own = max(0.0, end.own - start.own)
    other = max(0.0, (end.busy - start.busy) - own)
    capacity = wall * cores
    share = other / capacity
    resolution = 2 * end.cpus * end.tick_s / capacity  # one tick per watched CPU at each end
    steal = None if start.steal is None or end.steal is None else max(0.0, end.steal - start.steal)
    f0, f1 = start.freq_mhz, end.freq_mhz
    changed = None if not f0 or not f1 else abs(f1 - f0) / f0 > FREQ_CHANGE
    return Interference(other_cpu_s=other, own_cpu_s=own, wall_s=wall, cores=cores, cpus=end.cpus,
                        other_share=share, resolution=resolution, load_start=start.load, load_end=end.load,
                        steal_s=steal, freq_mhz_start=f0, freq_mhz_end=f1, freq_changed=changed,
                        noisy=share - resolution > threshold, threshold=threshold, source=source)


def threshold_from(environ: Mapping[str, str]) -> float:
    """``$FWBENCH_NOISY_SHARE`` (a share of the cores given, 0 < x <= 64), else the default; ValueError if bad."""
    text = environ.get(THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 64:
        raise ValueError(f"{THRESHOLD_ENV}={text!r}: must be a share of the cores given, a number above 0 "
                         f"(default {DEFAULT_THRESHOLD})")
    return value


# ---- readers: the only part that touches the system ------------------------------------------------------
def parse_proc_stat(text: str, cpus: Iterable[int], tick_s: float) -> tuple[float, float | None] | None:
    """(busy seconds, steal seconds or None) summed over ``cpus`` from ``/proc/stat``'s ``cpuN`` lines;
    ``None`` when a watched CPU has no line."""
    rows: dict[int, list[int]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            rows[int(name[3:])] = [int(x) for x in rest.split()]
    busy, steal = 0, 0
    for cpu in cpus:
        row = rows.get(cpu)
        if row is None or len(row) < 7:
            return None
        busy += sum(row[i] for i in _BUSY_FIELDS)
        steal = None if steal is None or len(row) <= _STEAL_FIELD else steal + row[_STEAL_FIELD]
    return busy * tick_s, (None if steal is None else steal * tick_s)


def affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def mean_freq_mhz(cpus: list[int], root: Path = Path("/")) -> float | None:
    """Mean current frequency of ``cpus`` from cpufreq's ``scaling_cur_freq`` (kHz), else psutil, else None."""
    values = []
    for cpu in cpus:
        try:
            values.append(int((root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq").read_text()) / 1000)
        except (OSError, ValueError):
            break
    if values and len(values) == len(cpus):
        return sum(values) / len(values)
    try:
        import psutil

        f = psutil.cpu_freq()
    except Exception:  # psutil raises various errors where no frequency is exposed
        return None
    return float(f.current) if f and f.current else None


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def snapshot(cpus: list[int], clock: Callable[[], float] = time.perf_counter) -> tuple[Snapshot, str]:
    """Read the counters now: ``/proc/stat`` where it exists, else psutil's per-CPU times."""
    tick = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    freq = mean_freq_mhz(cpus)
    try:
        parsed = parse_proc_stat(Path("/proc/stat").read_text(), cpus, tick)
    except (OSError, ValueError):
        parsed = None
    if parsed is not None:
        source = "/proc/stat"
        busy, steal = parsed
    else:
        import psutil

        source = "psutil"
        times = psutil.cpu_times(percpu=True)
        chosen = [times[c] for c in cpus if c < len(times)]
        busy = sum(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
                   for t in chosen)
        steal = sum(t.steal for t in chosen) if chosen and hasattr(chosen[0], "steal") else None
    return Snapshot(wall=clock(), busy=busy, own=own_cpu_s(), steal=steal, load=load, freq_mhz=freq,
                    cpus=len(cpus), tick_s=tick), source


class Watch:
    """Brackets the timed steps: ``start()`` before the first, ``stop()`` after the last; then ``result``.

    Never raises: where the counters cannot be read, ``result`` stays ``None`` (the cell has no record).
    """

    def __init__(self, threads: int, threshold: float):
        self.threads, self.threshold = threads, threshold
        self.result: Interference | None = None
        self._start: tuple[Snapshot, str] | None = None

    def start(self) -> None:
        try:
            self._cpus = affinity()
            self._start = snapshot(self._cpus)
        except Exception:  # a sandbox without /proc and psutil: no record, never a failed cell
            self._start = None

    def stop(self) -> None:
        if self._start is None:
            return
        try:
            end, source = snapshot(self._cpus)
        except Exception:
            return
        self.result = assess(self._start[0], end, self.threads, self.threshold, source)
