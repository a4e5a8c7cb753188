"""Processes that outlive their run, and workers that cannot start (issues 12 and 13).

Every fault is performed for real: the CLI is killed with SIGKILL while its worker (or torchrun and its
ranks, or TensorFlow's ranks) runs; SIGTERM / SIGHUP land on a real ``fwbench probe`` while a probe worker
runs; workers are started from a missing or non-executable interpreter, with an environment too large for
``execve`` and under a memory limit that ``setrlimit`` cannot take.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from fwbench import results
from fwbench.job import Job
from fwbench.launch import child_setup, run_cell
from fwbench.workload import load_workload
from tests.conftest import REPO, default_signals
from tests.test_reliability import cells_by_workload, fake_run, gone, pidfile_entries, wait_gone


def _wait_for(what: str, check, proc: subprocess.Popen, within_s: float = 120.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    proc.kill()
    out = proc.communicate()[0] if proc.stdout else ""
    raise AssertionError(f"{what} never happened (rc {proc.returncode}): {out}")


def _descendants(proc: subprocess.Popen, marker: str) -> list[psutil.Process]:
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for k in kids:
        try:
            if any(marker in part for part in k.cmdline()):
                found.append(k)
        except psutil.Error:
            continue
    return found


# ------------------------------------------------------------------- workers die with a SIGKILLed parent
@pytest.mark.slow
def test_a_worker_dies_with_a_parent_killed_with_sigkill(workload_dir, tmp_path):
    """SIGKILL leaves the CLI no chance to clean up: the worker's parent-death signal ends it."""
    pidfile = tmp_path / "pids"
    env = {**os.environ, "FWBENCH_FAKE": "ok", "FWBENCH_FAKE_STEP_MS": "600000",  # a 10-minute step
           "FWBENCH_FAKE_PIDFILE": str(pidfile)}
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", "run", "-r", "fake", "-w", "tinymlp", "--quick",
                             "-o", str(tmp_path / "run.json")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = _wait_for("the worker's start", lambda: [p for r, p, _ in pidfile_entries(pidfile) if r == "worker"],
                       proc)[0]
    assert psutil.Process(worker).ppid() == proc.pid and not gone(worker)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_gone([worker], within_s=10) == [], "the worker outlived its SIGKILLed parent"


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    """The parent may die between the fork and the parent-death request: the child must notice and exit."""
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal: Linux only")
    script = textwrap.dedent("""
        import os, subprocess, sys
        import fwbench.launch as launch
        real = os.getpid
        os.getpid = lambda: 1  # the child waits for a parent that is not its own: as if its parent had died
        setup = launch.child_setup(None)
        os.getpid = real
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=setup)
        sys.exit(p.wait(timeout=30))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    alive = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=child_setup(None), timeout=60)
    assert alive.returncode == 0  # with its real parent alive, the child runs normally


RANKS_DDP = textwrap.dedent("""
    name = "slowddp"
    input_shape = [6]
    classes = 3
    batch_size = 4
    [distributed]
    workers = 2
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 1000000
    min_seconds = 300.0
    max_seconds = 600.0
    [[layers]]
    type = "dense"
    units = 3
""")


@pytest.mark.slow
@pytest.mark.parametrize("runner, module", [("torch", "torch"), ("tf-graph", "tensorflow")])
def test_launchers_and_ranks_die_with_a_parent_killed_with_sigkill(workload_dir, tmp_path, runner, module):
    """torchrun (our child) and its ranks (torchrun's children), or TensorFlow's ranks (our children)."""
    pytest.importorskip(module)
    (workload_dir / "slowddp.toml").write_text(RANKS_DDP)
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", "run", "-r", runner, "-w", "slowddp",
                             "-o", str(tmp_path / "run.json")], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ranks_started() -> list[psutil.Process]:  # a rank writes its pid file once it asked to die with its parent
        ranks = [p for p in _descendants(proc, "fwbench.distributed.rank") if p not in launchers()]
        try:
            ready = [r for r in ranks if str(r.pid) in {f.read_text() for f in Path(r.cmdline()[-1]).glob("rank*.pid")}]
        except (psutil.Error, OSError):
            return []
        return ranks if ranks and ready == ranks else []

    def launchers() -> list[psutil.Process]:
        return _descendants(proc, "torch.distributed.run")

    ranks = _wait_for("the ranks' start", ranks_started, proc, within_s=300)
    everything = ranks + launchers()
    assert len(everything) == (2 if runner == "torch" else 1)  # the 1-worker run: torchrun and its rank, or a rank
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_gone([p.pid for p in everything], within_s=15) == [], "a launcher or rank outlived its parent"


# --------------------------------------------------------------------------- workers that cannot start
def _job(workload_dir: Path) -> Job:
    return Job(workload=load_workload("tinymlp").to_dict(), runner="fake", device="cpu")


@pytest.mark.parametrize("case", ["missing interpreter", "not executable", "environment too large"])
def test_a_worker_that_cannot_start_fails_its_cell_and_the_run_goes_on(cli, workload_dir, tmp_path, monkeypatch,
                                                                      case):
    if case == "missing interpreter":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
        words = "No such file or directory"
    elif case == "not executable":  # EACCES, even for root: no execute bit at all
        plain = tmp_path / "python-without-x"
        plain.write_text("#!/bin/sh\n")
        plain.chmod(0o644)
        monkeypatch.setattr(sys, "executable", str(plain))
        words = "Permission denied"
    else:  # E2BIG: one environment string beyond the kernel's 128 KiB per-string limit
        monkeypatch.setenv("FWBENCH_TEST_HUGE", "x" * (256 * 1024))
        words = "Argument list too long"
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "-w", "tinycnn")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    for name in ("tinymlp", "tinycnn"):  # both cells were tried: the first failure did not stop the run
        assert cells[name]["status"] == "failed"
        assert cells[name]["reason"].startswith("could not start the worker: "), cells[name]
        assert words in cells[name]["reason"]
    results.read(tmp_path / "run.json")


def test_a_limit_setrlimit_cannot_take_fails_the_cell_not_the_run(workload_dir, tmp_path):
    """``--memory-limit 99999999999TiB`` overflowed in the child's setrlimit and aborted the whole run. The CLI
    now refuses such a size up front (``config.parse_size``); any other caller of run_cell still gets a cell."""
    cell = run_cell(_job(workload_dir), tmp_path, timeout=60, memory_limit=99999999999 * 2**40)
    assert cell["status"] == "failed"
    assert cell["reason"].startswith("could not start the worker: setting up the process failed")


def test_a_data_parallel_launcher_that_cannot_start_fails_the_cell(cli, workload_dir, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    res, doc = fake_run(cli, tmp_path, "-r", "torch", "-w", "tinymlp", "--workers", "2")
    assert res.exit_code == 1, res.output
    [cell] = [c for c in doc["cells"] if c["runner"] == "torch"]
    assert cell["status"] == "failed"
    assert cell["reason"].startswith("1-worker run: could not start the worker: No such file or directory")


# ------------------------------------------------------------------------------------ honest memory limits
def test_a_worker_killed_at_start_under_a_tiny_limit_is_probably_oom(workload_dir, tmp_path):
    """1 byte: the kernel cannot even map the interpreter and kills it (SIGSEGV) before it prints anything."""
    cell = run_cell(_job(workload_dir), tmp_path, timeout=60, memory_limit=1)
    assert cell["status"] == "oom", cell
    assert cell["reason"].startswith("probably out of memory under the 1 B limit (worker killed by signal SIG")


def test_a_crash_that_printed_something_is_not_called_oom(workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "segv")  # faulthandler prints the stack: a real crash, limit or not
    cell = run_cell(_job(workload_dir), tmp_path, timeout=60, memory_limit=4 * 2**30)
    assert cell["status"] == "crashed" and "SIGSEGV" in cell["reason"], cell


# ------------------------------------------------------------------ signals during `fwbench probe`
@pytest.mark.slow
@pytest.mark.parametrize("command, sig, code", [
    (["probe", "-p", "debug-value", "-p", "shape-error"], signal.SIGTERM, 143),
    (["probe", "-p", "debug-value", "-p", "shape-error"], signal.SIGHUP, 129),
    (["run", "--quick", "--probes"], signal.SIGTERM, 143),  # the probe phase of a run
], ids=["probe-SIGTERM", "probe-SIGHUP", "run-probes-SIGTERM"])
def test_a_signal_during_probes_saves_what_finished_and_leaves_nothing_behind(workload_dir, tmp_path, command, sig,
                                                                              code):
    pytest.importorskip("torch")
    out, tmp = tmp_path / "probes.json", tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", *command, "-r", "torch", "-w", "tinymlp",
                             "-o", str(out)], cwd=REPO,
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_signals)

    def second_probe_running() -> list[psutil.Process]:
        try:
            saved = len(json.loads(out.read_text()).get("probes", []))
        except (OSError, ValueError):
            return []
        return _descendants(proc, "fwbench.probes.worker") if saved == 1 else []

    workers = _wait_for("the second probe's worker", second_probe_running, proc, within_s=300)
    assert list(tmp.glob("fwbench-probes-*"))
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stdout + stderr
    assert "Interrupted: 1 finished probes are saved." in stderr
    doc = results.read(out)
    assert [(p["probe"], p["status"]) for p in doc["probes"]] == [("debug-value", "ok")]
    assert wait_gone([w.pid for w in workers]) == [], "the probe worker outlived the interrupted probe command"
    assert not list(tmp.glob("fwbench-*")), "a temporary folder was left behind"
