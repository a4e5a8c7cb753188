"""What on this machine hurts measurements, for ``fwbench env`` (in the spirit of pyperf's ``system show``).

Each :class:`Finding` is one line: what was read, a verdict (``ok``, ``warn`` or ``unknown`` where the
system does not expose it) and a short advice. Everything is read under ``root`` (``/`` by default; tests
hand in a fake tree) and never raises: a file that cannot be read is an ``unknown`` finding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from fwbench.interference import DEFAULT_THRESHOLD

CPU = "sys/devices/system/cpu"


@dataclass(frozen=True)
class Finding:
    name: str
    value: str
    verdict: str  # ok, warn, unknown
    advice: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11] (the kernel's CPU list format); bad parts are skipped."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def fmt_cpus(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> ``0-2,5``."""
    runs: list[str] = []
    for c in sorted(set(cpus)):
        if runs and c == int(runs[-1].rpartition("-")[2]) + 1:
            runs[-1] = f"{runs[-1].partition('-')[0]}-{c}"
        else:
            runs.append(str(c))
    return ",".join(runs)


def load(root: Path, cpus: int, threshold: float = DEFAULT_THRESHOLD) -> Finding:
    text = _read(root, "proc/loadavg")
    try:
        one, five, fifteen = (float(x) for x in (text or "").split()[:3])
    except ValueError:
        return Finding("load", "not readable", "unknown", "no /proc/loadavg: cannot tell whether the machine is busy")
    value = f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {cpus} CPU{'s' if cpus != 1 else ''}"
    if one > threshold * cpus:
        return Finding("load", value, "warn", f"busy (above {threshold:g} per CPU): cells will be slower and "
                                              "flagged noisy; wait, or stop what runs")
    return Finding("load", value, "ok", "quiet")


def cpus_vs_affinity(root: Path, affinity: list[int]) -> Finding:
    online = parse_cpu_list(_read(root, f"{CPU}/online") or "")
    mine = f"this process may use {len(affinity)} ({fmt_cpus(affinity)})"
    if not online:
        return Finding("cpus", mine, "unknown", "the online CPUs are not readable")
    value = f"{len(online)} online, {mine}"
    if set(online) <= set(affinity):
        return Finding("cpus", value, "ok", "not pinned; on a shared machine: taskset -c LIST fwbench run ...")
    return Finding("cpus", value, "ok", "pinned to a subset: --threads 0 uses exactly these CPUs")


def governor(root: Path, affinity: list[int]) -> Finding:
    found = {_read(root, f"{CPU}/cpu{c}/cpufreq/scaling_governor") for c in affinity}
    found.discard(None)
    if not found:
        return Finding("governor", "not exposed", "unknown", "no cpufreq (typical of a VM or container): the host "
                                                             "decides the frequency")
    value = ", ".join(sorted(f for f in found if f))
    if found == {"performance"}:
        return Finding("governor", value, "ok", "fixed high frequency")
    return Finding("governor", value, "warn", "the frequency follows the load; for stable timings: "
                                              "sudo cpupower frequency-set -g performance")


def turbo(root: Path) -> Finding:
    no_turbo = _read(root, f"{CPU}/intel_pstate/no_turbo")
    boost = _read(root, f"{CPU}/cpufreq/boost")
    if no_turbo is None and boost is None:
        return Finding("turbo", "not exposed", "unknown", "no intel_pstate/no_turbo or cpufreq/boost to read")
    on = no_turbo == "0" if no_turbo is not None else boost == "1"
    if on:
        return Finding("turbo", "on", "warn", "the clock depends on temperature and on what other cores do; disable "
                                              "it for A/B comparisons (pyperf system tune does)")
    return Finding("turbo", "off", "ok", "steady clock")


def smt(root: Path, affinity: list[int]) -> Finding:
    """Whether the CPUs this process may use share physical cores, with each other or with other CPUs."""
    shared_inside, shared_outside = [], []
    readable = False
    for c in affinity:
        text = _read(root, f"{CPU}/cpu{c}/topology/thread_siblings_list")
        if text is None:
            continue
        readable = True
        siblings = [s for s in parse_cpu_list(text) if s != c]
        shared_inside += [f"{c}+{s}" for s in siblings if s in affinity and s > c]
        shared_outside += [f"{c}+{s}" for s in siblings if s not in affinity]
    if not readable:
        return Finding("smt", "not readable", "unknown", "no topology in /sys: cannot tell whether CPUs share cores")
    if not shared_inside and not shared_outside:
        return Finding("smt", "no shared cores", "ok", "each CPU is its own core (or SMT is off)")
    parts = ([f"siblings in use together: {', '.join(shared_inside)}"] if shared_inside else []) + (
        [f"siblings outside this process's CPUs: {', '.join(shared_outside)}"] if shared_outside else [])
    return Finding("smt", "; ".join(parts), "warn", "hyper-threads share one core's units: use --threads up to "
                                                    "the physical cores, and keep other work off the siblings")


def isolated(root: Path) -> Finding:
    text = _read(root, f"{CPU}/isolated")
    if text is None:
        return Finding("isolated", "not readable", "unknown", "no /sys/devices/system/cpu/isolated")
    if not text:
        return Finding("isolated", "none", "ok", "no CPU reserved for benchmarks (isolcpus=); fine on a quiet machine")
    return Finding("isolated", text, "ok", f"pin runs there: taskset -c {text} fwbench run ...")


def findings(root: Path = Path("/"), affinity: list[int] | None = None) -> list[Finding]:
    """Every finding, for ``fwbench env``. ``affinity``: the CPUs this process may use (read when None)."""
    if affinity is None:
        from fwbench.interference import affinity as read_affinity

        affinity = read_affinity()
    return [load(root, len(affinity)), cpus_vs_affinity(root, affinity), governor(root, affinity), turbo(root),
            smt(root, affinity), isolated(root)]
