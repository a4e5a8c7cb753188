"""The direction of imports: the parent process plans and runs cells without importing a framework, NumPy or
a worker-side module. Each check runs in a fresh interpreter, since this test process has loaded them all.

Anyone can check the same by hand: ``python -X importtime -m fwbench run --help``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "tensorflow", "keras", "jax", "jaxlib", "numpy")
# modules that exist for worker processes: they import frameworks or NumPy, or only make sense in a worker
WORKER_SIDE = ("fwbench.worker", "fwbench.runners.base", "fwbench.distributed.rank", "fwbench.data",
               "fwbench.weights", "fwbench.timing", "fwbench.stats", "fwbench.devices", "fwbench.probes.context",
               "fwbench.probes.worker", "fwbench.probes.shapes", "fwbench.reference", "fwbench.layout",
               "fwbench.runners.tf_net", "fwbench.runners.keras_model", "fwbench.markov",
               "fwbench.runners.artifacts", "fwbench.runners.runtime_base", "fwbench.energy", "fwbench.latency")
WORKER_SUFFIXES = ("_runner", "_rank", "_probes", "_runtime")

PARENT_MODULES = ["fwbench.pipeline", "fwbench.cli.app", "fwbench.launch", "fwbench.distributed.launch",
                  "fwbench.distributed.aggregate", "fwbench.probes.catalog", "fwbench.runners.registry"]

REPORT = """
import atexit, json, sys
def _report():
    sys.stderr.flush()
    print("LOADED=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
atexit.register(_report)
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _offenders(modules: list[str]) -> list[str]:
    bad = []
    for name in modules:
        top = name.split(".")[0]
        leaf = name.rsplit(".", 1)[-1]
        if top in HEAVY or name in WORKER_SIDE or (name.startswith("fwbench.") and leaf.endswith(WORKER_SUFFIXES)):
            bad.append(name)
    return bad


def _loaded_after(code: str, cwd: Path = REPO, **env: str) -> list[str]:
    """``sys.modules`` of a fresh interpreter at exit, after running ``code``."""
    proc = subprocess.run([sys.executable, "-c", REPORT + code], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED=")]
    assert lines, f"no module report (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("LOADED="):])


def test_the_offender_filter_sees_worker_side_and_heavy_modules():
    """Guard for the guard: the filter below must flag what it is meant to flag."""
    assert _offenders(["numpy", "numpy.linalg", "torch", "fwbench.runners.torch_runner",
                       "fwbench.distributed.tf_rank", "fwbench.probes.keras_probes", "fwbench.runners.base",
                       "fwbench.pipeline", "fwbench.runners.registry", "json"]) == [
        "numpy", "numpy.linalg", "torch", "fwbench.runners.torch_runner", "fwbench.distributed.tf_rank",
        "fwbench.probes.keras_probes", "fwbench.runners.base"]
    assert "numpy" in _loaded_after("import fwbench.worker")  # a worker module does load NumPy


@pytest.mark.parametrize("module", PARENT_MODULES)
def test_parent_modules_import_no_framework_numpy_or_worker_code(module: str):
    assert _offenders(_loaded_after(f"import {module}")) == []


def test_run_help_imports_nothing_heavy_by_importtime():
    """The check the issue gives users: ``python -X importtime -m fwbench run --help``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fwbench", "run", "--help"], cwd=REPO,
                          env=_env(COLUMNS="200"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    assert "fwbench.cli.app" in names  # the output was parsed
    assert _offenders(names) == []


def test_a_whole_fake_run_keeps_frameworks_and_numpy_out_of_the_parent(tmp_path: Path):
    """Planning, launching the workers and collecting: all without NumPy in the parent. The tables and summary
    printed after the last cell combine repeats with fwbench.estimate's statistics, which load NumPy (and
    fwbench.stats) only then, as ``run --baseline``'s gate does: nothing else, and no framework."""
    out, snap = tmp_path / "r.json", tmp_path / "before.json"
    code = ("import json, sys\nimport fwbench.cli.console as console\nfrom fwbench.cli.app import main\n"
            "orig = console.print_run_tables\n"
            "def spy(*a, **k):\n"
            f"    open({str(snap)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
            "    return orig(*a, **k)\n"
            "console.print_run_tables = spy\n"
            f"sys.argv = ['fwbench', 'run', '-r', 'fake', '-w', 'mlp', '--quick', '-o', {str(out)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n")
    loaded = _loaded_after(code, cwd=tmp_path, FWBENCH_FAKE_STEP_MS="1")
    assert out.exists()  # the run happened
    assert "fwbench.pipeline" in loaded
    before = json.loads(snap.read_text())  # up to the moment the results are printed
    assert "fwbench.pipeline" in before and _offenders(before) == []
    after = _offenders(loaded)
    assert {m.split(".")[0] for m in after} <= {"numpy", "fwbench"} and [m for m in after if "." in m and
                                                                         m.startswith("fwbench")] == ["fwbench.stats"]
