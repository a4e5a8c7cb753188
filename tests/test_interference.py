"""Busy-machine detection: the arithmetic on fake snapshots, the record in results and reports, the run's
warning, ``fwbench env``'s machine findings on fake /sys trees, and a real fake-runner cell beside a real
CPU hog of our own (flagged) and without it (not flagged)."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from fwbench import interference, machine_state, results
from fwbench.cells import CELL, Cell, Invalid
from fwbench.interference import Snapshot, assess, parse_proc_stat, threshold_from
from fwbench.timing import measure
from fwbench.workload_spec import Timing

from conftest import invoke

GOLDEN = Path(__file__).resolve().parent / "golden"


def snap(wall: float, busy: float, own: float, **kw) -> Snapshot:
    return Snapshot(wall=wall, busy=busy, own=own, **{"cpus": 2, "tick_s": 0.01, **kw})


# ---- the arithmetic ----------------------------------------------------------------------------------------
def test_other_processes_share_of_the_cores_given() -> None:
    # 2 s on 2 CPUs: the CPUs were busy 3.5 s, the worker itself used 1.5 s -> others 2 s of 4 core-seconds
    r = assess(snap(10.0, 100.0, 1.0), snap(12.0, 103.5, 2.5), cores=2, threshold=0.25, source="t")
    assert (r.other_cpu_s, r.own_cpu_s, r.wall_s, r.cores) == pytest.approx((2.0, 1.5, 2.0, 2))
    assert r.other_share == pytest.approx(0.5)
    assert r.resolution == pytest.approx(2 * 2 * 0.01 / 4)
    assert r.noisy
    quiet = assess(snap(10.0, 100.0, 1.0), snap(12.0, 101.6, 2.5), cores=2, threshold=0.25, source="t")
    assert quiet.other_share == pytest.approx(0.025) and not quiet.noisy


def test_cores_are_the_threads_bounded_by_the_affinity() -> None:
    r = assess(snap(0, 0, 0), snap(1.0, 1.0, 0.0), cores=8, threshold=0.25, source="t")  # 8 threads, 2 CPUs
    assert r.cores == 2 and r.other_share == pytest.approx(0.5)
    one = assess(snap(0, 0, 0), snap(1.0, 1.0, 0.0), cores=1, threshold=0.25, source="t")
    assert one.cores == 1 and one.other_share == pytest.approx(1.0)


def test_own_time_above_the_counters_is_not_negative_others() -> None:
    # /proc/stat counts in ticks, getrusage exactly: the worker can seem to use more than the CPUs did
    r = assess(snap(0, 0, 0), snap(1.0, 1.50, 1.52), cores=2, threshold=0.25, source="t")
    assert r.other_cpu_s == 0.0 and not r.noisy


def test_a_window_shorter_than_the_counters_resolution_is_never_flagged() -> None:
    # 40 ms on 2 CPUs: one tick per CPU at each end is 0.5 of the capacity; a 0.6 share proves nothing
    r = assess(snap(0, 0, 0), snap(0.04, 0.048, 0.0), cores=2, threshold=0.25, source="t")
    assert r.other_share == pytest.approx(0.6) and r.resolution == pytest.approx(0.5)
    assert not r.noisy


def test_steal_load_and_frequency_where_reported() -> None:
    r = assess(snap(0, 0, 0, steal=5.0, load=0.5, freq_mhz=2400.0),
               snap(1, 0, 0, steal=5.3, load=1.5, freq_mhz=3000.0), cores=2, threshold=0.25, source="t")
    assert r.steal_s == pytest.approx(0.3) and (r.load_start, r.load_end) == (0.5, 1.5) and r.freq_changed is True
    same = assess(snap(0, 0, 0, freq_mhz=2400.0), snap(1, 0, 0, freq_mhz=2410.0), cores=2, threshold=0.25, source="t")
    assert same.freq_changed is False and same.steal_s is None
    assert assess(snap(0, 0, 0), snap(1, 0, 0), cores=2, threshold=0.25, source="t").freq_changed is None


def test_proc_stat_parsing_sums_the_watched_cpus() -> None:
    text = ("cpu  900 0 90 9000 9 0 9 90 0 0\n"
            "cpu0 100 1 10 1000 7 2 3 40 50 0\n"  # guest (50) is inside user: not added again
            "cpu1 200 0 20 2000 0 0 0 8 0 0\n"
            "cpu3 400 0 40 4000 0 0 0 0 0 0\nintr 1 2 3\n")
    busy, steal = parse_proc_stat(text, [0, 1], 0.01)
    assert busy == pytest.approx((100 + 1 + 10 + 2 + 3 + 200 + 20) * 0.01) and steal == pytest.approx(0.48)
    assert parse_proc_stat(text, [3], 0.01) == (pytest.approx(4.4), 0.0)
    assert parse_proc_stat(text, [2], 0.01) is None  # an offline CPU: the caller falls back to psutil
    assert parse_proc_stat("cpu0 1 2 3 4 5 6 7\n", [0], 1.0) == (1 + 2 + 3 + 6 + 7, None)  # an old kernel: no steal


def test_threshold_from_the_environment() -> None:
    assert threshold_from({}) == interference.DEFAULT_THRESHOLD
    assert threshold_from({"FWBENCH_NOISY_SHARE": " 0.5 "}) == 0.5
    for bad in ("0", "-1", "abc", "nan", "inf"):
        with pytest.raises(ValueError, match="FWBENCH_NOISY_SHARE"):
            threshold_from({"FWBENCH_NOISY_SHARE": bad})


def test_the_window_brackets_the_timed_steps_only() -> None:
    seen: list[str] = []

    class Window:
        def start(self) -> None:
            seen.append("start")

        def stop(self) -> None:
            seen.append("stop")

    def step(i: int) -> float:
        seen.append(f"warmup {i}" if i < 2 else f"step {i}")
        return 1.0

    measure(step, Timing(warmup=2, min_steps=3, max_steps=3, min_seconds=0.0, max_seconds=10.0), window=Window())
    assert seen == ["warmup 0", "warmup 1", "start", "step 2", "step 3", "step 4", "stop"]


# ---- the record: schema, typed cell, warning, report -------------------------------------------------------
def record(noisy: bool, share: float = 0.93) -> dict:
    r = assess(snap(0, 0, 0, load=1.0, steal=0.0), snap(2.0, share * 4, 0.0, load=2.0, steal=0.0),
               cores=2, threshold=0.25, source="/proc/stat").to_dict()
    assert r["noisy"] is (share > 0.26)
    return {**r, "noisy": noisy}


def test_the_cell_records_it_and_old_cells_are_quiet() -> None:
    doc = results.read(GOLDEN / "tiny_all.json")
    plain = doc["cells"][0]
    assert "interference" not in plain and Cell.from_dict(plain).noisy is False
    busy = {**plain, "interference": record(True)}
    assert Cell.from_dict(busy).noisy is True
    assert Cell.from_dict({**plain, "interference": record(False, 0.1)}).noisy is False
    with pytest.raises(Invalid, match="interference.noisy"):
        CELL({**plain, "interference": {**record(True), "noisy": "yes"}}, "")
    with pytest.raises(Invalid, match="interference.other_share"):
        CELL({**plain, "interference": {**record(True), "other_share": -1}}, "")


def test_warning_line() -> None:
    cell = {"id": "cnn/torch/cpu/0", "interference": record(True)}
    assert interference.warning(cell) == ("warning: cnn/torch/cpu/0: machine busy — other processes used 0.93 of "
                                          "the 2 cores given (threshold 0.25); its times are not trustworthy")
    assert interference.warning({"id": "x", "interference": record(False, 0.1)}) is None
    assert interference.warning({"id": "x"}) is None


def test_progress_prints_the_warning_for_a_noisy_cell() -> None:
    from fwbench.cli.progress import run_with_progress

    buf = io.StringIO()
    cells = [{"id": "w[/x]/torch/cpu/0", "status": "ok", "interference": record(True)},
             {"id": "w/torch/cpu/1", "status": "ok", "interference": record(False, 0.1)}]

    def body(on_event) -> None:
        for i, c in enumerate(cells):
            on_event("start", i, 2, None, c)
            on_event("done", i, 2, None, c)

    assert run_with_progress(2, "cell", body, lambda: None, Console(file=buf, width=300), warn=interference.warning) is None
    lines = buf.getvalue().splitlines()
    assert lines.count("warning: w[/x]/torch/cpu/0: machine busy — other processes used 0.93 of the 2 cores given "
                       "(threshold 0.25); its times are not trustworthy") == 1
    assert sum("warning" in line for line in lines) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_marks_the_noisy_cell_and_explains(lang: str) -> None:
    from fwbench.report.build import build_report
    from fwbench.report.markdown import render

    doc = copy.deepcopy(results.read(GOLDEN / "tiny_all.json"))
    doc["cells"][1]["interference"] = record(True)
    doc["cells"][0]["interference"] = record(False, 0.1)
    text = render(build_report([("run.json", doc)], lang=lang))
    busy = "busy machine" if lang == "en" else "机器繁忙"
    marked = [line for line in text.splitlines() if f"⚠ {busy}" in line and line.startswith("|")]
    assert len(marked) == 1 and "tinycnn/torch-compile/cpu/0" in marked[0]
    note = next(line for line in text.splitlines() if line.startswith("> ⚠"))
    assert "run.json#tinycnn/torch-compile/cpu/0 (0.93 &gt; 0.25)" in note and "tinycnn/torch/cpu/0" not in note
    assert "⚠" not in render(build_report([("run.json", results.read(GOLDEN / "tiny_all.json"))], lang=lang))


def test_run_tables_note_the_busy_machine_under_the_table() -> None:
    from fwbench.cli.console import print_run_tables

    doc = copy.deepcopy(results.read(GOLDEN / "tiny_all.json"))
    doc["cells"][0]["interference"] = record(True)
    buf = io.StringIO()
    print_run_tables(doc, Console(file=buf, width=300))
    notes = [line.strip() for line in buf.getvalue().splitlines() if "machine busy" in line]
    assert notes == ["torch: ok: machine busy: other processes used 0.93 of the cores given (threshold 0.25); "
                     "times not trustworthy"]


def test_run_refuses_a_bad_threshold_before_any_work(cli, workload_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FWBENCH_NOISY_SHARE", "lots")
    r = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 2 and "FWBENCH_NOISY_SHARE='lots'" in r.output
    assert not (tmp_path / "r.json").exists()


# ---- fwbench env: what hurts measurements, on fake /sys trees ----------------------------------------------
def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def by_name(found: list) -> dict:
    return {f.name: f for f in found}


def test_machine_findings_on_a_tuned_box(tmp_path: Path) -> None:
    cpu = "sys/devices/system/cpu"
    root = tree(tmp_path, {"proc/loadavg": "0.10 0.20 0.30 1/100 42\n", f"{cpu}/online": "0-3\n",
                           f"{cpu}/isolated": "2-3\n", f"{cpu}/intel_pstate/no_turbo": "1\n",
                           **{f"{cpu}/cpu{c}/cpufreq/scaling_governor": "performance\n" for c in range(4)},
                           **{f"{cpu}/cpu{c}/topology/thread_siblings_list": f"{c}\n" for c in range(4)}})
    f = by_name(machine_state.findings(root, [2, 3]))
    assert {k: v.verdict for k, v in f.items()} == {"load": "ok", "cpus": "ok", "governor": "ok", "turbo": "ok",
                                                     "smt": "ok", "isolated": "ok"}
    assert f["cpus"].value == "4 online, this process may use 2 (2-3)" and "taskset -c 2-3" in f["isolated"].advice


def test_machine_findings_on_a_busy_laptop(tmp_path: Path) -> None:
    cpu = "sys/devices/system/cpu"
    root = tree(tmp_path, {"proc/loadavg": "3.50 2.00 1.00 5/300 42\n", f"{cpu}/online": "0-3\n",
                           f"{cpu}/isolated": "\n", f"{cpu}/cpufreq/boost": "1\n",
                           **{f"{cpu}/cpu{c}/cpufreq/scaling_governor": "powersave\n" for c in range(4)},
                           **{f"{cpu}/cpu{c}/topology/thread_siblings_list": f"{c % 2},{c % 2 + 2}\n" for c in range(4)}})
    f = by_name(machine_state.findings(root, [0, 1, 2]))
    assert f["load"].verdict == "warn" and f["load"].value.startswith("3.50 2.00 1.00")
    assert f["governor"].verdict == "warn" and f["governor"].value == "powersave"
    assert f["turbo"].verdict == "warn" and f["turbo"].value == "on"
    assert f["smt"].verdict == "warn"
    assert f["smt"].value == "siblings in use together: 0+2; siblings outside this process's CPUs: 1+3"
    assert f["isolated"].value == "none"


def test_machine_findings_where_nothing_is_exposed(tmp_path: Path) -> None:
    f = by_name(machine_state.findings(tmp_path, [0]))
    assert all(x.verdict == "unknown" for x in f.values() if x.name != "isolated") and f["isolated"].verdict == "unknown"
    assert machine_state.parse_cpu_list("0-2,5,x,7-8") == [0, 1, 2, 5, 7, 8]
    assert machine_state.fmt_cpus([5, 0, 1, 2, 7]) == "0-2,5,7"


def test_env_command_shows_the_findings(cli) -> None:
    import json

    r = invoke(cli, "env", "--format", "json")
    assert r.exit_code == 0
    names = [f["name"] for f in json.loads(r.output)["machine_state"]]
    assert names == ["load", "cpus", "governor", "turbo", "smt", "isolated"]
    table = invoke(cli, "env")
    assert table.exit_code == 0 and "What may hurt measurements here:" in table.output and "governor" in table.output


# ---- for real: a fake-runner cell beside a CPU hog of our own, and without it -------------------------------
HOG = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end:\n    pass\n"


def quietest_cpu() -> tuple[int, float]:
    """The CPU of this process's affinity that other processes used least over 0.5 s, and that share."""
    cpus = interference.affinity()
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    before = {c: parse_proc_stat(Path("/proc/stat").read_text(), [c], tick)[0] for c in cpus}
    time.sleep(0.5)
    after = {c: parse_proc_stat(Path("/proc/stat").read_text(), [c], tick)[0] for c in cpus}
    cpu = min(cpus, key=lambda c: after[c] - before[c])
    return cpu, (after[cpu] - before[cpu]) / 0.5


def fake_cell(tmp_path: Path, name: str, cpu: int) -> dict:
    """One fake-runner cell (1 thread, 5 ms sleeping steps, 1 s of timed steps) pinned to ``cpu``."""
    from fwbench.config import RunnerOptions
    from fwbench.job import Job
    from fwbench.launch import run_cell
    from fwbench.workload import load_file

    toml = tmp_path / "busy.toml"  # timed steps for 1 s: a window of 100 clock ticks
    toml.write_text('name = "busy"\ninput_shape = [4]\nclasses = 2\nbatch_size = 2\n'
                    '[timing]\nwarmup = 1\nmin_steps = 3\nmax_steps = 100000\nmin_seconds = 1.0\nmax_seconds = 1.0\n'
                    '[[layers]]\ntype = "dense"\nunits = 2\n')
    job = Job(workload=load_file(toml).to_dict(), runner="fake", device="cpu", options=RunnerOptions(threads=1),
              phases=("timing",))
    workdir = tmp_path / name
    workdir.mkdir()
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # the worker inherits it
    try:
        return run_cell(job, workdir, timeout=60, extra_env={"FWBENCH_FAKE_STEP_MS": "5", "FWBENCH_FAKE": "ok"})
    finally:
        os.sched_setaffinity(0, mine)


def check(cell: dict) -> dict:
    assert cell["status"] == "ok", cell
    rec = cell["interference"]
    assert rec["cores"] == 1 and rec["cpus"] == 1 and rec["source"] == "/proc/stat" and rec["wall_s"] >= 1.0
    return rec


linux = pytest.mark.skipif(not (hasattr(os, "sched_setaffinity") and Path("/proc/stat").exists()), reason="Linux only")


@linux
def test_a_cpu_hog_beside_the_cell_is_flagged(tmp_path: Path) -> None:
    cpu, _ = quietest_cpu()
    hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(hog.pid, {cpu})  # worker and hog share one CPU
        rec = check(fake_cell(tmp_path, "busy", cpu))
    finally:
        hog.kill()
        hog.wait()
    # the hog had the CPU to itself while the fake step slept: close to the whole core
    assert rec["noisy"] is True and rec["other_share"] > 0.6, rec


@linux
def test_without_the_hog_no_flag(tmp_path: Path) -> None:
    """On a quiet CPU the same cell is not flagged. Other sessions may load this shared machine: the cell
    runs on the quietest CPU, and when every CPU is already busier than the threshold the test is skipped
    (the detector would be right to flag it)."""
    for attempt in range(3):
        cpu, background = quietest_cpu()
        if background > interference.DEFAULT_THRESHOLD:
            continue
        rec = check(fake_cell(tmp_path, f"quiet{attempt}", cpu))
        if not rec["noisy"] or attempt == 2:
            break
    else:
        pytest.skip(f"every CPU is busy with other processes (the quietest, {cpu}, at {background:.2f})")
    assert rec["noisy"] is False, f"no hog, yet other processes used {rec['other_share']:.2f} of CPU {cpu}"
