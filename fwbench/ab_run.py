"""Running an A/B job: two sides (an interpreter and environment variables each), cells interleaved by round.

**Schedule.** For round ``r`` of ``R``, every cell runs once on each side, back to back, each time in a fresh
worker process: ``A B`` in even rounds and ``B A`` in odd ones (counterbalanced, so that a drift within a
round, or whatever the first process of a pair pays, does not always fall on the same side). The pair of a
round shares the machine's state, which the paired analysis (:mod:`fwbench.ab`) cancels. The parity check
runs in round 0 only: both sides of every runner then meet in one parity group, so a side that computes
different math is flagged like a runner that does.

**Which fwbench the workers run.** A side's interpreter (another virtual environment, another Python) may not
have fwbench installed, or may have another version of it, whose worker protocol could differ. Every worker
of both sides therefore runs *this* fwbench: a temporary folder holding only a link to this fwbench package
is put first on the side's ``PYTHONPATH`` (before any ``PYTHONPATH`` of its own). Nothing else of this
interpreter leaks into the side: its frameworks, NumPy and everything else come from the side's own
interpreter. Before any cell runs, each side's interpreter is checked once (:func:`preflight`): it must
start, be Python 3.10 or newer, import NumPy and this fwbench, and it reports its environment (versions of
its frameworks) and which runners it can run; a side that cannot is refused with one line, before any work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from fwbench import parity, results
from fwbench.config import RunConfig
from fwbench.errors import UsageError
from fwbench.job import Job
from fwbench.launch import THREAD_VARS, child_setup, run_cell
from fwbench.pipeline import REFERENCE_RUNNER, base_cell, device_problem
from fwbench.runners.registry import RUNNERS
from fwbench.textsafe import term_plain

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PREFLIGHT_TIMEOUT_S = 120.0
Event = Callable[[str, int, int, Job, dict[str, Any]], None]


@dataclass(frozen=True)
class Side:
    """One side of an A/B job: ``label`` ``A`` or ``B``, its interpreter and its extra variables."""

    label: str
    python: str
    env: tuple[tuple[str, str], ...] = ()

    @property
    def variables(self) -> dict[str, str]:
        return dict(self.env)


def controlled_variables() -> dict[str, str]:
    """Variables fwbench sets in every worker, which a side may not change, and why."""
    out = {v: "the thread count comes from --threads, the same on both sides (the runners also set it in the "
              "framework); to compare thread counts, run one job per --threads" for v in THREAD_VARS}
    for info in RUNNERS.values():
        for key, _ in info.env:
            out[key] = f"the runner sets it (e.g. {info.name} runs with {key}={dict(info.env)[key]}); choose runners instead"
    out["FWBENCH_NOISY_SHARE"] = "busy-machine detection must judge both sides alike; set it for the whole job"
    for key in ("PYTHONUNBUFFERED", "PYTHONFAULTHANDLER"):
        out[key] = "fwbench's workers need it as fwbench sets it"
    return out


def parse_env(items: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``["KEY=VAL", ...]`` checked: a valid variable name, an ``=``, each key once, not one fwbench controls."""
    out: dict[str, str] = {}
    controlled = controlled_variables()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not ENV_KEY.fullmatch(key):
            raise UsageError(f"{flag} {item!r}: give KEY=VALUE with a variable name such as TF_ENABLE_ONEDNN_OPTS")
        if key in controlled:
            raise UsageError(f"{flag} {key}: fwbench sets this variable in every worker ({controlled[key]})")
        if key in out:
            raise UsageError(f"{flag}: {key} is given twice")
        if "\0" in value:
            raise UsageError(f"{flag} {key}: a value cannot hold a NUL character")
        out[key] = value
    return tuple(out.items())


def resolve_python(path: str | None, flag: str) -> str:
    """The interpreter of a side: this one when not given; else a path (or a command on ``PATH``) to an
    executable file. Symlinks are kept as given: a virtual environment's ``python`` is a link, and following
    it would lose the environment."""
    import shutil

    if path is None:
        return sys.executable
    found = path if os.sep in path else shutil.which(path) or path
    p = Path(found)
    if not p.exists():
        raise UsageError(f"{flag} {path}: no such file")
    if not p.is_file() or not os.access(p, os.X_OK):
        raise UsageError(f"{flag} {path}: not an executable file")
    return os.path.abspath(found)


def make_shim(folder: Path) -> Path:
    """A folder holding only a link named ``fwbench`` to this fwbench package (see the module docstring)."""
    import fwbench

    shim = folder / "fwbench-path"
    shim.mkdir()
    (shim / "fwbench").symlink_to(Path(fwbench.__file__).resolve().parent, target_is_directory=True)
    return shim


def side_environment(side: Side, shim: Path) -> dict[str, str]:
    """The variables a side's processes get on top of fwbench's own: the side's, and ``PYTHONPATH``."""
    variables = side.variables
    rest = variables.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    variables["PYTHONPATH"] = os.pathsep.join(x for x in (str(shim), rest) if x)
    return variables


PREFLIGHT = r"""
import json, sys
names, threads = json.loads(sys.argv[1]), int(sys.argv[2])
if sys.version_info < (3, 10):
    print("PREFLIGHT-ERROR Python %d.%d is too old: fwbench workers need Python 3.10 or newer" % sys.version_info[:2])
    sys.exit(0)
try:
    import numpy
except ImportError:
    print("PREFLIGHT-ERROR it has no NumPy: install NumPy and the frameworks to measure in that environment")
    sys.exit(0)
import fwbench
from fwbench import env
from fwbench.runners.registry import RUNNERS
out = {"fwbench_path": fwbench.__file__, "environment": env.capture(threads),
       "runners": {n: {"missing": RUNNERS[n].missing(), "versions": RUNNERS[n].versions()} for n in names}}
print("PREFLIGHT-OK " + json.dumps(out))
"""


def preflight(side: Side, runners: list[str], threads: int, shim: Path) -> dict[str, Any]:
    """Check a side's interpreter and capture its environment: the record stored in ``ab.sides``."""
    flag = f"--{side.label.lower()}-python"
    env = {**os.environ, **side_environment(side, shim)}
    try:
        proc = subprocess.run([side.python, "-c", PREFLIGHT, json.dumps(runners), str(threads)], env=env,
                              capture_output=True, text=True, timeout=PREFLIGHT_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              preexec_fn=child_setup())
    except subprocess.TimeoutExpired:
        raise UsageError(f"{flag} {side.python}: gave no answer within {PREFLIGHT_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise UsageError(f"{flag} {side.python}: cannot run it ({exc.strerror or exc})") from None
    lines = proc.stdout.splitlines()
    error = next((line[len("PREFLIGHT-ERROR "):] for line in lines if line.startswith("PREFLIGHT-ERROR ")), None)
    ok = next((line[len("PREFLIGHT-OK "):] for line in lines if line.startswith("PREFLIGHT-OK ")), None)
    if error or ok is None:
        last = error or (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise UsageError(f"{flag} {side.python}: cannot run fwbench's workers there ({term_plain(last)[:300]})")
    info = json.loads(ok)
    expected = (shim / "fwbench").resolve()
    if Path(info["fwbench_path"]).resolve().parent != expected:  # something put another fwbench first
        raise UsageError(f"{flag} {side.python}: it imports fwbench from {info['fwbench_path']}, not this "
                         f"fwbench ({expected}); remove what puts it first (PYTHONHOME, a .pth file)")
    return {"label": side.label, "python": side.python, "env": side.variables, "environment": info["environment"],
            "fwbench_path": info["fwbench_path"], "runners": info["runners"]}


def schedule(jobs: list[Job], rounds: int) -> list[tuple[int, str, Job]]:
    """``(round, side, job)`` in the order they run (see the module docstring). Parity runs in round 0."""
    out = []
    for r in range(rounds):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for job in jobs:
            phases = job.phases if r == 0 else tuple(p for p in job.phases if p != "parity")
            for side in order:
                out.append((r, side, replace(job, repeat=r, phases=phases)))
    return out


def why_not(job: Job, side: dict[str, Any], machine_devices: dict[str, bool]) -> str | None:
    """Why ``job`` cannot run on ``side`` (recorded as skipped without starting a worker), or ``None``: a
    framework the side's interpreter lacks, else :func:`fwbench.pipeline.device_problem`."""
    missing = (side.get("runners") or {}).get(job.runner, {}).get("missing") or []
    if missing:
        return f"side {side['label']}: {', '.join(missing)} not installed for {side['python']}"
    return device_problem(job, machine_devices)


def record_for(job: Job, side: dict[str, Any]) -> dict[str, Any]:
    cell = base_cell(job)
    versions = (side.get("runners") or {}).get(job.runner, {}).get("versions")
    if versions is not None:
        cell["versions"] = versions
    cell["id"] = f"{side['label']}:{job.cell_id}"
    cell["side"] = side["label"]
    return cell


def execute(doc: dict[str, Any], plan: list[tuple[int, str, Job]], sides: dict[str, Side], shim: Path, out: Path,
            config: RunConfig, on_event: Event | None = None,
            machine_devices: dict[str, bool] | None = None) -> dict[str, Any]:
    """Run the schedule into ``doc`` (whose ``ab.sides`` hold the preflight records), saving after each cell."""
    from fwbench import env as envmod

    machine_devices = machine_devices if machine_devices is not None else envmod.devices()
    for _, _, job in plan:
        doc.setdefault("workloads", {}).setdefault(job.workload["name"], job.workload)
    results.save_or_fallback(out, doc)
    variables = {label: side_environment(side, shim) for label, side in sides.items()}
    with tempfile.TemporaryDirectory(prefix="fwbench-ab-") as tmp:
        for i, (_, label, job) in enumerate(plan):
            side = doc["ab"]["sides"][label]
            record = record_for(job, side)
            if on_event:
                on_event("start", i, len(plan), job, record)
            reason = why_not(job, side, machine_devices)
            if reason:
                record["reason"] = reason
            else:
                workdir = Path(tmp) / f"{i:05d}"
                workdir.mkdir()
                record.update(run_cell(job, workdir, config.timeout, config.memory_limit_bytes,
                                       extra_env=variables[label], python=sides[label].python))
            results.upsert_cell(doc, record)
            doc["parity"] = parity.evaluate(doc["cells"], REFERENCE_RUNNER, config.options.precision)
            results.save_or_fallback(out, doc)
            if on_event:
                on_event("done", i, len(plan), job, record)
    return doc
