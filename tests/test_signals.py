"""Ctrl-C and SIGTERM during a real ``python -m fwbench run``: nothing measured is lost (issue 9).

The run's second cell hangs (fake runner, with a grandchild that ignores SIGTERM), so the signal always
lands while a worker runs. Afterwards: the finished cell is on disk in a valid results file, the
interrupted cell is not recorded, the summary is printed, the exit status is 130 / 143, no worker
process is left, and ``fwbench run --resume FILE`` runs only the missing cell.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from fwbench import results
from tests.conftest import REPO, default_signals
from tests.terminal_screen import screen as terminal_screen
from tests.test_reliability import pidfile_entries, wait_gone

pytestmark = pytest.mark.slow


def start_run(tmp_path: Path, **popen) -> tuple[subprocess.Popen, Path, Path]:
    """Start ``fwbench run`` on tinymlp (finishes) then tinycnn (hangs); returns (process, results, pidfile)."""
    out, pidfile = tmp_path / "run.json", tmp_path / "pids"
    env = {**os.environ, "FWBENCH_FAKE": "tinycnn=hang", "FWBENCH_FAKE_PIDFILE": str(pidfile)}
    popen.setdefault("preexec_fn", default_signals)
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", "run", "-r", "fake", "-w", "tinymlp", "-w", "tinycnn",
                             "--quick", "-o", str(out)], cwd=REPO, env=env, **popen)
    return proc, out, pidfile


def wait_for_hanging_worker(proc: subprocess.Popen, pidfile: Path) -> list[int]:
    """Block until the second cell's worker and its grandchild run; returns every pid the run started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if [role for role, _, what in pidfile_entries(pidfile) if what == "hang"] == ["worker", "grandchild"]:
            return [pid for _, pid, _ in pidfile_entries(pidfile)]
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the hanging cell never started")


def check_interrupted_run(out: Path, pids: list[int]) -> dict:
    doc = results.read(out)  # valid JSON and a valid results document
    assert [(c["id"], c["status"]) for c in doc["cells"]] == [("tinymlp/fake/cpu/0", "ok")]
    assert wait_gone(pids) == [], "a worker or its grandchild outlived the interrupted run"
    assert not list(out.parent.glob(".run.json.*.tmp"))
    return doc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_keeps_finished_cells_prints_summary_and_resume_runs_only_the_rest(workload_dir, tmp_path, sig, code):
    proc, out, pidfile = start_run(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = wait_for_hanging_worker(proc, pidfile)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stdout + stderr
    assert "tinymlp" in stdout and "fake" in stdout  # the summary table of what finished
    assert "Interrupted: 1 finished cells are saved" in stderr and "--resume" in stderr
    before = check_interrupted_run(out, pids)

    # --resume: the same run (id, config), only the missing cell, with the run's own settings
    env = {**os.environ, "FWBENCH_FAKE": "ok", "FWBENCH_FAKE_PIDFILE": str(pidfile)}
    done = subprocess.run([sys.executable, "-m", "fwbench", "run", "--resume", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = results.read(out)
    assert after["run_id"] == before["run_id"] and after["config"] == before["config"]
    assert [(c["id"], c["status"]) for c in after["cells"]] == [("tinymlp/fake/cpu/0", "ok"),
                                                                ("tinycnn/fake/cpu/0", "ok")]
    assert after["cells"][0] == before["cells"][0]  # the finished cell was not run again
    new_workers = [what for role, pid, what in pidfile_entries(pidfile)[len(pids):] if role == "worker"]
    assert new_workers == ["ok"]  # exactly one worker: the interrupted cell's


def test_ctrl_c_at_a_terminal_shows_the_summary_after_the_progress_display(workload_dir, tmp_path):
    """A real ^C typed at a real (pseudo-)terminal, 80 columns wide, where the live progress display is drawn."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x50\x00\x00\x00\x00\x00")  # 24 rows x 80 columns

    def controlling_terminal() -> None:  # the run leads its own session, with the pty as its terminal
        default_signals()
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc, out, pidfile = start_run(tmp_path, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                   preexec_fn=controlling_terminal)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        pids = wait_for_hanging_worker(proc, pidfile)
        time.sleep(0.3)  # let the progress display draw the running cell
        os.write(master, b"\x03")  # ^C: the terminal sends SIGINT to its foreground process group
        assert proc.wait(timeout=30) == 130
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "Traceback" not in screen
    progress = screen.rfind("cell 2/2")
    assert progress >= 0, "the live progress display was not drawn"
    # everything the user must see comes after the last frame of the progress display
    for text in ("tinymlp", "Results:", "Interrupted: 1 finished cells are saved"):
        assert screen.rfind(text) > progress, text
    # and nothing of it is left on screen, though the terminal echoed "^C" at its end (issue 17)
    shown = terminal_screen(screen, 80)
    assert not [line for line in shown if "cell 2/2" in line or "━" in line], shown
    check_interrupted_run(out, pids)
    json.loads(out.read_text())


def test_a_signal_ignored_by_the_caller_stays_ignored(workload_dir, tmp_path):
    """`nohup` or a script's background job starts us with SIGINT ignored: a stray ^C must not stop the run."""
    out, pidfile = tmp_path / "run.json", tmp_path / "pids"
    env = {**os.environ, "FWBENCH_FAKE": "ok", "FWBENCH_FAKE_PIDFILE": str(pidfile)}
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", "run", "-r", "fake", "-w", "tinymlp", "-w", "tinycnn",
                             "--quick", "-o", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while not pidfile_entries(pidfile) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # while the first cell's worker runs
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert [c["status"] for c in results.read(out)["cells"]] == ["ok", "ok"]


def test_ctrl_c_before_the_first_cell_exits_130_with_one_line(cli, workload_dir, monkeypatch):
    from fwbench import env as envmod
    from tests.conftest import invoke

    def interrupted(*args, **kwargs):  # ^C while the environment is being captured
        raise KeyboardInterrupt

    monkeypatch.setattr(envmod, "capture", interrupted)
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp")
    assert res.exit_code == 130
    assert res.output.strip() == "Interrupted; every cell that finished is already in the results file."
