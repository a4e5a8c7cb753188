"""The live progress line (issue 17): the worker's phase, per-cell estimates from the timing budget, and a
display that leaves nothing on screen when a signal stops the run. Framework-free: the ``fake`` runner."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

from fwbench import launch, phase
from fwbench.cli import progress
from fwbench.cli.progress import (Budget, Display, Finished, Interrupted, Screen, budget_of, clock_text, expected_s,
                                  remaining_s, run_remaining_s, run_with_progress, status_line)
from fwbench.job import Job
from fwbench.phase import Phase
from tests.terminal_screen import screen


def job(name: str = "a", runner: str = "torch", max_seconds: float = 15.0, **extra) -> Job:
    return Job(workload={"name": name, "timing": {"max_seconds": max_seconds}, **extra}, runner=runner, device="cpu")


# ---- the phase channel -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ('{"phase": "timing"}', Phase("timing")),
    ('{"phase": "target", "step": 250, "of": 2000, "step_s": 0.01}', Phase("target", 250, 2000, 0.01)),
    ('{"phase": "parity", "step": true, "of": -1, "step_s": NaN}', Phase("parity")),  # bad extras dropped
    ('{"phase": "x\\u001b[2J\\nnew"}', Phase("x?[2J?new")),  # a newer worker's name: one inert line
    ('{"phase": "timi', None), ("", None), ("[1, 2]", None), ('{"phase": 3}', None), ('{"phase": " "}', None),
    ("[" * 100000, None),
])
def test_parse_takes_a_phase_or_nothing(text, expected):
    assert phase.parse(text) == expected


def test_report_then_read_round_trips_and_never_raises(tmp_path, monkeypatch):
    path = tmp_path / "p.phase"
    assert phase.read(path) is None  # no file yet
    monkeypatch.delenv(phase.ENV, raising=False)
    phase.report("timing")  # no file named: nothing happens
    monkeypatch.setenv(phase.ENV, str(path))
    phase.report("target", step=25, of=100, step_s=0.5)
    assert phase.read(path) == Phase("target", 25, 100, 0.5)
    assert phase.read(path).label == "training to target 25/≤100"
    assert not [p for p in tmp_path.iterdir() if p != path]  # no temporary file left
    path.write_bytes(b"{" + b" " * phase.MAX_BYTES + b"}")
    assert phase.read(path) is None  # oversized: not a phase
    monkeypatch.setenv(phase.ENV, str(tmp_path / "missing-dir" / "p.phase"))
    phase.report("timing")  # cannot write: silently nothing


def test_a_fake_worker_reports_its_phases_in_order_while_the_parent_waits(workload_dir, tmp_path, monkeypatch):
    from fwbench.workload import load_workload

    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "20")
    monkeypatch.setattr(launch, "PHASE_POLL_S", 0.005)
    spec = load_workload("tinymlp").with_timing(warmup=4, min_steps=8, max_steps=8)
    seen: list[Phase] = []
    with phase.listening(lambda p: p is not None and (not seen or seen[-1] != p) and seen.append(p)):
        cell = launch.run_cell(Job(workload=spec.to_dict(), runner="fake", device="cpu"), tmp_path, timeout=60)
    assert cell["status"] == "ok", cell
    names = [p.name for p in seen]
    order = ["running", "loading", "warm-up", "timing", "parity"]
    assert {"warm-up", "timing", "parity"} <= set(names), names
    assert names == sorted(names, key=order.index)  # in the worker's order
    parity = next(p for p in seen if p.name == "parity")
    assert parity.step_s == pytest.approx(cell["summary"]["median"])  # the measured step, for estimates
    # without a listener the parent waits as before, and the worker still runs with the phase file named
    assert launch.run_cell(Job(workload=spec.to_dict(), runner="fake", device="cpu"), tmp_path, timeout=60)["status"] == "ok"


def test_a_garbled_phase_file_neither_hangs_nor_fails_the_cell(workload_dir, tmp_path, monkeypatch):
    from fwbench.workload import load_workload

    spec = load_workload("tinymlp")
    stem = launch.cell_stem(Job(workload=spec.to_dict(), runner="fake", device="cpu").cell_id)
    monkeypatch.setattr(launch, "PHASE_POLL_S", 0.005)
    real_read = phase.read

    def garble(path: Path):  # what a hostile or broken worker could leave, read instead of its phase file
        junk = path.with_name("junk")
        junk.write_bytes(b"\xff{" + os.urandom(64))
        return real_read(junk)

    monkeypatch.setattr(phase, "read", garble)
    found: list = []
    with phase.listening(found.append):
        cell = launch.run_cell(Job(workload=spec.to_dict(), runner="fake", device="cpu"), tmp_path, timeout=60)
    assert cell["status"] == "ok" and found and all(p is None for p in found)
    assert not (tmp_path / f"{stem}.phase").exists()  # removed with the worker


# ---- estimates ---------------------------------------------------------------------------------------------
def test_a_cell_is_expected_to_take_its_repeat_or_its_budget_plus_its_runners_overhead():
    b = budget_of(job("cnn", "torch", 15.0))
    assert b == Budget(("cnn", "", "torch", "cpu"), "torch", 15.0)
    assert expected_s(b, []) == 15.0  # nothing finished: the timing budget alone
    other = Finished(("mlp", "", "tf-graph", "cpu"), "tf-graph", 30.0, 8.0)  # 22 s beyond its timed steps
    assert expected_s(b, [other]) == 15.0 + 22.0  # no torch cell yet: any runner's overhead
    mine = Finished(("mlp", "", "torch", "cpu"), "torch", 10.0, 6.0)
    assert expected_s(b, [other, mine]) == 15.0 + 4.0  # its own runner's overhead
    repeat = Finished(("cnn", "", "torch", "cpu"), "torch", 12.5, 9.0)
    assert expected_s(b, [other, mine, repeat]) == 12.5  # an earlier repeat says best
    probe = budget_of(Job(workload={"name": "cnn"}, runner="torch", device="cpu", phases=("probe",), probe="p"))
    assert probe.timing_s is None and expected_s(probe, []) is None
    assert expected_s(probe, [other, mine]) == 20.0  # a probe: like the finished jobs
    ranks = budget_of(job("dp", distributed={"workers": 2}))
    assert ranks.timing_s is None and not ranks.reports  # data-parallel ranks report no phase


def test_time_left_follows_the_phase():
    b = Budget(("cnn", "", "torch", "cpu"), "torch", 15.0)
    # before the timed steps the whole timing budget is ahead, however long the start took
    assert remaining_s(b, None, 40.0, 40.0, []) == 15.0
    assert remaining_s(b, Phase("warm-up"), 1.0, 3.0, []) == 15.0
    assert remaining_s(b, Phase("timing"), 5.0, 9.0, []) == 10.0  # the rest of the budget
    assert remaining_s(b, Phase("parity"), 1.0, 30.0, []) == 0.0
    assert remaining_s(b, Phase("target", 500, 2000), 1.0, 30.0, [], step_s=0.01) == pytest.approx(15.0)
    repeat = [Finished(b.key, "torch", 20.0, 10.0)]
    assert remaining_s(b, Phase("warm-up"), 1.0, 4.0, repeat) == 16.0  # a repeat knows better than the floor
    assert run_remaining_s(10.0, [b, b], []) == 40.0
    assert run_remaining_s(None, [b], []) is None
    assert run_remaining_s(10.0, [Budget(("x",), "t")], []) is None  # an unknown job: no ETA


def test_a_single_cell_shows_its_phase_and_budget_not_an_empty_bar():
    b = budget_of(job("cnn/x", "torch", 15.0))
    now = progress.Now(0, "cnn/torch/cpu/0", b, started=100.0, phase=Phase("timing"), phase_since=104.0)
    line = status_line("cell", 1, now, 108.0, [], [])
    assert line.what == "cell 1/1: cnn/torch/cpu/0"
    assert line.detail == "timing 4.0 s of ≤15 s · cell 8.0 s · ETA ~11 s"
    assert line.fraction == pytest.approx(8 / 19)
    first = status_line("cell", 1, progress.Now(0, "c", b, 100.0, None, 100.0), 101.0, [], [])
    assert first.detail.startswith("starting worker 1.0 s") and "ETA ~15 s" in first.detail
    assert "-:--" not in first.detail and first.fraction is not None and first.fraction > 0


def test_several_cells_share_the_bar_and_the_eta_sums_their_own_budgets():
    jobs = [job("a", max_seconds=10.0), job("b", max_seconds=100.0), job("c", max_seconds=1.0)]
    t = [0.0]
    display = Display("cell", 3, jobs, clock=lambda: t[0])
    assert display.line().what == "starting"
    display.started(0, jobs[0], "a/torch/cpu/0")
    t[0] = 2.0
    display.on_phase(Phase("timing"))
    display.on_phase(None)  # nothing new: the phase stands, its clock keeps running
    t[0] = 5.0
    line = display.line()
    assert line.detail == f"timing 3.0 s of ≤10 s · cell 5.0 s · ETA ~{clock_text(7 + 100 + 1)}"
    display.finished({"status": "ok", "step_s": [0.5] * 10})  # 5 s, 5 s of it timed: no overhead
    display.started(1, jobs[1], "b/torch/cpu/0")
    assert display.line().fraction == pytest.approx(1 / 3)
    assert display.line().detail.endswith(f"ETA ~{clock_text(100 + 1)}")


def test_clock_text():
    assert [clock_text(s) for s in (-1, 0.44, 7, 9.96, 59.6, 125, 3723)] == [
        "0.0 s", "0.4 s", "7.0 s", "10 s", "1:00", "2:05", "1:02:03"]


# ---- the display on a terminal ------------------------------------------------------------------------------
def terminal(width: int) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, color_system="standard", legacy_windows=False), buf


LONG = "a-workload-with-a-long-name/torch-compile/cuda:0/0"


@pytest.mark.parametrize("width", [60, 80, 120])
def test_ctrl_c_leaves_nothing_of_the_display_on_screen(width):
    """^C echoed by the terminal at the end of a full-width line used to wrap, leaving a copy of the line."""
    err, buf = terminal(width)
    saved = []
    jobs = [job("a" * 40), job("b" * 40)]

    def body(on_event):
        on_event("start", 0, 2, jobs[0], {"id": LONG})
        on_event("done", 0, 2, jobs[0], {"id": LONG, "status": "ok"})  # printed above the live display
        on_event("start", 1, 2, jobs[1], {"id": LONG + "/2"})
        on_event("done", 1, 2, jobs[1], {"id": "second", "status": "ok"})
        buf.write("^C")  # the terminal's echo of the keystroke, where the cursor is
        raise KeyboardInterrupt

    code = run_with_progress(2, "cell", body, lambda: saved.append(True), err, jobs=jobs)
    err.print("Interrupted: 2 finished cells are saved")
    assert code == 130 and saved == [True]
    shown = [line for line in screen(buf.getvalue(), width) if line]
    assert shown[-1] == "Interrupted: 2 finished cells are saved", shown
    assert not any("━" in line or "cell 2/2" in line for line in shown), shown
    assert f"✓ {LONG}: ok" in "".join(shown)


def test_the_display_is_narrower_than_the_window():
    for width in (40, 80, 200):
        err, buf = terminal(width)
        display = Display("cell", 3, [job(), job(), job()], clock=lambda: 10.0)
        display.started(1, job(), LONG * 2)
        err.print(display)
        lines = buf.getvalue().rstrip("\n").split("\n")
        assert all(len(screen(line, 1000)[0]) <= width - progress.ECHO_MARGIN for line in lines), lines
        assert any("starting worker" in line for line in screen(buf.getvalue(), width))


def test_sigterm_while_a_job_runs_erases_the_display_before_the_worker_is_torn_down():
    err, buf = terminal(100)
    at_teardown: list[str] = []

    def body(on_event):
        on_event("start", 0, 1, job(), {"id": "a/torch/cpu/0"})
        err.print("drawn")  # the live display is drawn under this line
        assert any("cell 1/1" in line for line in screen(buf.getvalue(), 100))
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            pytest.fail("the signal did not interrupt the body")
        except Interrupted:  # where launch.run_cell kills the worker's group (seconds, for a stubborn one)
            time.sleep(3 / progress.REFRESH_PER_S)  # the display's next refreshes: it is hidden meanwhile
            at_teardown.append(buf.getvalue())
            raise

    code = run_with_progress(1, "cell", body, lambda: None, err, jobs=[job()])
    assert code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    assert not any("cell 1/1" in line for line in screen(at_teardown[0], 100))


class FakeDisplay:
    hidden = False


def test_a_signal_inside_a_write_to_the_screen_waits_for_the_write():
    display = FakeDisplay()
    gate = Screen(display)
    with pytest.raises(Interrupted) as exc:
        with gate.writing():
            assert gate.defer(signal.SIGINT) is True  # deferred: the write goes on
            assert not display.hidden
    assert exc.value.signum == signal.SIGINT and display.hidden and gate.pending is None
    display.hidden = False
    assert gate.defer(signal.SIGTERM) is False and display.hidden  # outside a write: hidden, then raised


def test_a_hidden_display_draws_an_empty_line():
    err, buf = terminal(80)
    display = Display("cell", 1, [job()], clock=lambda: 1.0)
    display.started(0, job(), "a/torch/cpu/0")
    display.hidden = True
    err.print(display)
    assert screen(buf.getvalue(), 80) == ["", ""]
