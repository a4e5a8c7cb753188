"""Faults and bad input never lose a measurement or print a traceback (issue 9).

Every fault here is performed for real by the ``fake`` runner in a real worker process: a real SIGSEGV
and SIGABRT, a real hang killed with its process group, a real RLIMIT_AS refusal, real garbage on the
worker's stdout and a real torn result file. Signals (Ctrl-C / SIGTERM) are in ``test_signals.py``;
generated workload files and results documents in ``test_workload_fuzz.py``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from fwbench import results
from fwbench.errors import ResultsError
from fwbench.launch import cell_stem
from tests.conftest import REPO, TINY_MLP, invoke


def add_workloads(workload_dir: Path, *names: str) -> list[str]:
    """Copies of the tiny MLP under other names (the fake runner picks its behaviour per workload name).

    Plain names are found by name (file ``NAME.toml``); the paths are returned for the others.
    """
    refs = []
    for i, name in enumerate(names):
        text = TINY_MLP.replace('name = "tinymlp"', f"name = {json.dumps(name, ensure_ascii=False)}")
        path = workload_dir / (f"{name}.toml" if name.isidentifier() else f"hostile{i}.toml")
        path.write_text(text, encoding="utf-8")
        refs.append(str(path))
    return refs


def fake_run(cli, tmp_path: Path, *args: str):
    """``fwbench run -r fake --quick ARGS -o tmp/run.json`` in-process; returns (result, document or None)."""
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "fake", "--quick", "-o", str(out), *args)
    assert "Traceback" not in res.output, res.output
    return res, (json.loads(out.read_text()) if out.exists() else None)


def cells_by_workload(doc: dict) -> dict[str, dict]:
    return {c["workload"]: c for c in doc["cells"]}


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def pidfile_entries(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    return [(role, int(pid), what) for role, pid, what in (line.split() for line in path.read_text().splitlines())]


# ------------------------------------------------------------------------------------------ worker faults
@pytest.mark.slow
def test_segfault_and_abort_are_crashed_with_the_signal_and_the_run_goes_on(cli, workload_dir, tmp_path, monkeypatch):
    add_workloads(workload_dir, "after")
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=segv,tinycnn=crash")
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "-w", "tinycnn", "-w", "after")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    assert cells["tinymlp"]["status"] == "crashed"
    assert "SIGSEGV" in cells["tinymlp"]["reason"]
    # the worker runs with faulthandler on: its log shows where the Python stack was when it died
    assert "Segmentation fault" in cells["tinymlp"]["log_tail"]
    assert cells["tinycnn"]["status"] == "crashed"
    assert "SIGABRT" in cells["tinycnn"]["reason"]
    assert cells["after"]["status"] == "ok" and cells["after"]["step_s"]
    results.read(tmp_path / "run.json")  # the file is still a valid results document


@pytest.mark.slow
def test_hang_is_killed_at_the_timeout_with_its_whole_process_group(cli, workload_dir, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=hang")
    monkeypatch.setenv("FWBENCH_FAKE_PIDFILE", str(pidfile))
    # (the run going on after a failed cell is shown by the crash test; one cell keeps this test short)
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "--timeout", "6")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    assert cells["tinymlp"]["status"] == "timeout"
    assert "6 s cell timeout" in cells["tinymlp"]["reason"]
    hung = [pid for role, pid, what in pidfile_entries(pidfile) if what == "hang"]
    roles = [role for role, pid, what in pidfile_entries(pidfile) if what == "hang"]
    assert roles == ["worker", "grandchild"], "the hanging worker did not start its grandchild in time"
    # the grandchild ignores SIGTERM: only the SIGKILL to the whole group ends it
    assert wait_gone(hung) == []


@pytest.mark.slow
def test_memory_limit_gives_oom_with_the_figure_and_the_parent_survives(cli, workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=oom")
    before = resource.getrlimit(resource.RLIMIT_AS)
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "-w", "tinycnn", "--memory-limit", "1GiB")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    assert cells["tinymlp"]["status"] == "oom"
    assert "1024 MiB limit" in cells["tinymlp"]["reason"]
    assert "MemoryError" in cells["tinymlp"]["log_tail"]
    assert cells["tinycnn"]["status"] == "ok"  # the next cell ran: the parent is alive and unlimited
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert doc["config"]["memory_limit"] == "1GiB"


@pytest.mark.slow
def test_a_limit_too_small_to_load_the_libraries_is_oom_not_failed(cli, workload_dir, tmp_path, monkeypatch):
    """Under 100 MiB the worker's imports fail first (the loader cannot map numpy's or scipy's shared
    objects, or OpenBLAS its buffers): still out of memory, not an unexplained failure."""
    monkeypatch.setenv("FWBENCH_FAKE", "ok")
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "--memory-limit", "100MiB")
    assert res.exit_code == 1, res.output
    cell = doc["cells"][0]
    assert cell["status"] == "oom", cell
    assert cell["reason"].startswith("out of memory under the 100 MiB limit (")


@pytest.mark.slow
def test_garbage_torn_or_nonsense_results_are_failed_with_the_log(cli, workload_dir, tmp_path, monkeypatch):
    add_workloads(workload_dir, "nonsense", "raises", "flood")
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=garbage,tinycnn=partial,nonsense=badresult,raises=raise,flood=flood")
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "-w", "tinycnn", "-w", "nonsense", "-w", "raises",
                        "-w", "flood")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    assert {c["status"] for c in cells.values()} == {"failed"}
    assert "without a valid result" in cells["tinymlp"]["reason"]
    assert "garbage{{{not a result" in cells["tinymlp"]["log_tail"]
    assert "without a valid result" in cells["tinycnn"]["reason"]
    assert "writing a partial result" in cells["tinycnn"]["log_tail"]
    # a well-formed but nonsensical result must not poison the results file, nor rename the cell
    assert "invalid result" in cells["nonsense"]["reason"] and "splendid" in cells["nonsense"]["reason"]
    assert cells["nonsense"]["id"] == "nonsense/fake/cpu/0"
    assert cells["raises"]["reason"].startswith("RuntimeError: fake runner asked to fail")
    assert "Traceback" in cells["raises"]["log_tail"]  # the worker's traceback is kept as data, not shown
    # 4 MiB of output without a newline: the log's tail is bounded, and still ends with the last words
    assert cells["flood"]["log_tail"].endswith("last words") and len(cells["flood"]["log_tail"]) <= 8192
    assert (tmp_path / "run.json").stat().st_size < 200_000
    assert len(results.read(tmp_path / "run.json")["cells"]) == 5


@pytest.mark.slow
def test_nan_and_inf_loss_are_diverged_with_the_step(cli, workload_dir, tmp_path, monkeypatch):
    add_workloads(workload_dir, "toinf")
    monkeypatch.setenv("FWBENCH_FAKE", "tinymlp=nan,toinf=inf")
    res, doc = fake_run(cli, tmp_path, "-w", "tinymlp", "-w", "toinf", "-w", "tinycnn")
    assert res.exit_code == 1, res.output
    cells = cells_by_workload(doc)
    for name, word in (("tinymlp", "nan"), ("toinf", "inf")):
        assert cells[name]["status"] == "diverged"
        assert cells[name]["diverged_step"] == 2  # the fake's loss turns non-finite at its third step
        assert cells[name]["reason"] == f"loss became {word} at step 2"
    assert cells["tinycnn"]["status"] == "ok"
    assert "diverged" in res.output
    results.read(tmp_path / "run.json")


# ---------------------------------------------------------------------------------------- two runs at once
@pytest.mark.slow
def test_two_runs_at_once_into_one_results_folder_get_distinct_files(workload_dir, tmp_path):
    results_dir = tmp_path / "results"
    env = {**os.environ, "FWBENCH_FAKE": "ok", "FWBENCH_FAKE_STEP_MS": "20"}
    cmd = [sys.executable, "-m", "fwbench", "run", "-r", "fake", "-w", "tinymlp", "-w", "tinycnn", "--quick",
           "--results-dir", str(results_dir)]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(0.5)
    assert all(p.poll() is None for p in procs), "the two runs should overlap in time"
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    files = sorted(results_dir.glob("*.json"))
    assert len(files) == 2, files
    docs = [results.read(f) for f in files]
    assert docs[0]["run_id"] != docs[1]["run_id"]
    for f, doc in zip(files, docs):
        assert f.stem == doc["run_id"]
        assert [c["status"] for c in doc["cells"]] == ["ok", "ok"]
    assert {str(p.pid) for p in procs} == {d["run_id"].split("-")[2] for d in docs}
    assert [p.name for p in results_dir.iterdir() if p.name.startswith(".")] == []  # no stray temp files


# ------------------------------------------------------------------------------------- bad results files
def _valid_doc() -> dict:
    doc = results.new_document({"runners": ["fake"]}, {"python": "3"})
    doc["cells"].append({"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "device": "cpu", "repeat": 0,
                         "status": "ok", "reason": "", "step_s": [0.1, 0.1, 0.1]})
    return doc


BAD_RESULTS = {
    "truncated": (lambda: json.dumps(_valid_doc())[:-25], "truncated"),
    "not-json": (lambda: "step_s,median\n0.1,0.1\n", "not valid JSON"),
    "empty": (lambda: "", "truncated"),
    "old-schema": (lambda: json.dumps({**_valid_doc(), "schema_version": 0}), "older than this fwbench reads"),
    "newer-fwbench": (lambda: json.dumps({**_valid_doc(), "schema_version": results.SCHEMA_VERSION + 1,
                                          "fwbench_version": "9.9.0"}), "upgrade fwbench"),
    "not-results": (lambda: json.dumps({"hello": "world"}), "not an fwbench results file"),
    "bad-cell": (lambda: json.dumps({**_valid_doc(), "cells": [{"id": 1}]}), "cells[0]"),
    "deep": (lambda: "[" * 100_000, "nested too deeply"),
    "huge-int": (lambda: '{"schema_version": ' + "9" * 5000 + "}", "not valid JSON"),
}


@pytest.mark.parametrize("kind", sorted(BAD_RESULTS))
def test_bad_results_files_raise_one_line_naming_the_file(tmp_path, kind):
    make, words = BAD_RESULTS[kind]
    path = tmp_path / f"{kind}.json"
    path.write_text(make(), encoding="utf-8")
    with pytest.raises(ResultsError) as info:
        results.read(path)
    message = str(info.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_non_utf8_results_file_and_missing_file(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b'{"schema_version": 1, "run_id": "\xff\xfe"}')
    with pytest.raises(ResultsError, match="not UTF-8"):
        results.read(path)
    with pytest.raises(ResultsError, match="no such file"):
        results.read(tmp_path / "absent.json")


@pytest.mark.parametrize("kind", ["truncated", "newer-fwbench", "not-json"])
def test_resume_from_a_bad_results_file_exits_2_with_one_line(cli, tmp_path, kind):
    make, words = BAD_RESULTS[kind]
    path = tmp_path / "bad.json"
    path.write_text(make(), encoding="utf-8")
    res = invoke(cli, "run", "--resume", str(path))
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], res.output


CLI_READERS = {
    "compare (baseline)": lambda bad, good: ["compare", bad, good],
    "compare (current)": lambda bad, good: ["compare", good, bad],
    "export": lambda bad, good: ["export", bad],
    "report": lambda bad, good: ["report", good, bad, "-o", str(Path(bad).parent / "report")],
}


@pytest.mark.parametrize("command", sorted(CLI_READERS))
@pytest.mark.parametrize("kind", ["truncated", "not-json", "old-schema", "newer-fwbench"])
def test_commands_reading_a_bad_results_file_exit_2_with_one_line_naming_it(cli, tmp_path, command, kind):
    make, words = BAD_RESULTS[kind]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    results.save(good, _valid_doc())
    bad.write_text(make(), encoding="utf-8")
    res = invoke(cli, *CLI_READERS[command](str(bad), str(good)))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert lines == [f"error: {bad}: {lines[0].split(': ', 2)[2]}"] and words in lines[0], res.output
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_resume_from_a_file_without_a_usable_config_exits_2(cli, tmp_path):
    path = tmp_path / "other.json"
    results.save(path, _valid_doc())  # valid results, but not a run this fwbench can repeat
    res = invoke(cli, "run", "--resume", str(path))
    assert res.exit_code == 2, res.output
    assert "cannot be resumed" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------------- bad workload files
GOOD = TINY_MLP
BAD_WORKLOADS = {
    "wrong type": (GOOD.replace("batch_size = 4", 'batch_size = "four"'), "batch_size", "integer"),
    "bool for int": (GOOD.replace("classes = 3", "classes = true"), "classes", "integer"),
    "unknown layer": (GOOD.replace('type = "dense"\nunits = 5', 'type = "capsule"\nunits = 5'), "layers[0].type",
                      "allowed: conv2d"),
    "layer type not a string": (GOOD.replace('type = "dense"\nunits = 5', 'type = ["dense"]\nunits = 5'),
                                "layers[0].type", "allowed:"),
    "negative size": (GOOD.replace("units = 5", "units = -5"), "layers[0].units", "from 1"),
    "absurd size": (GOOD.replace("input_shape = [6]", "input_shape = [100000000]"), "input_shape[0]", "from 1"),
    "absurd batch": (GOOD.replace("batch_size = 4", "batch_size = 99999999999"), "batch_size", "from 1"),
    "shapes do not fit": (GOOD.replace("input_shape = [6]", "input_shape = [6, 6, 1]"), "layers",
                          "flatten"),
    "window larger than input": (
        GOOD.replace("input_shape = [6]", "input_shape = [2, 2, 1]").replace(
            '[[layers]]\ntype = "dense"\nunits = 5', '[[layers]]\ntype = "maxpool2d"\npool_size = 3\n'
                                                     '[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "dense"\nunits = 5'),
        "layers", "larger than its input"),
    "wrong logits": (GOOD.replace("units = 3", "units = 7"), "layers", "3 logits"),
    "unknown key": ("colour = 'red'\n" + GOOD, "colour", "allowed:"),
    "unknown layer key": (GOOD.replace("units = 5", "units = 5\nkernel = 3"), "layers[0].kernel", "allowed: type"),
    "nan": (GOOD.replace("max_seconds = 1.0", "max_seconds = nan"), "timing.max_seconds", "seconds"),
    "not toml": ("name = \n[[[", "", "not valid TOML"),
    "nested too deep": ("x = " + "[" * 50_000, "", "nested too deeply"),
    "huge integer": (GOOD.replace("seed = 1", "").replace("classes = 3", "classes = " + "9" * 5000),
                     "", "not valid TOML"),
    "a date": (GOOD.replace('name = "tinymlp"', "name = 1979-05-27"), "name", "printable string"),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKLOADS))
def test_bad_workload_files_exit_2_naming_file_field_and_what_is_allowed(cli, tmp_path, monkeypatch, case):
    text, field, allowed = BAD_WORKLOADS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    res = invoke(cli, "run", "-r", "fake", "-w", "./bad.toml")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith(f"error: bad.toml:{field}"), lines[0]
    assert allowed in lines[0]


def test_non_utf8_workload_file_exits_2(cli, tmp_path, monkeypatch):
    (tmp_path / "latin1.toml").write_bytes(TINY_MLP.replace("tinymlp", "caf\xe9").encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    res = invoke(cli, "run", "-r", "fake", "-w", "./latin1.toml")
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: latin1.toml: not UTF-8 text (byte ")


def test_a_broken_plugin_workload_is_a_workload_error(cli, monkeypatch):
    """Plugins load only through declared entry points; one that fails is reported, not a traceback."""
    from importlib.metadata import EntryPoint

    from fwbench import workload

    broken = EntryPoint("broken", "json:this_does_not_exist", "fwbench.workloads")
    monkeypatch.setattr(workload, "plugin_workloads", lambda: {"broken": broken})
    res = invoke(cli, "run", "-r", "fake", "-w", "broken")
    assert res.exit_code == 2
    assert res.output.startswith("error: plugin broken: plugin json:this_does_not_exist failed: AttributeError")


# ----------------------------------------------------------------------- names that reach file paths
HOSTILE_IDS = ["../../etc/passwd/fake/cpu/0", "<b>x</b> | *bold* [link](http://a)/fake/cpu/0",
               "..\\..\\windows/fake/cpu/0", ".hidden/fake/cpu/0", "😀" * 80 + "/fake/cpu/0", "/fake/cpu/0",
               "a b\tc/fake/cpu/0"]


def test_cell_stems_are_safe_bounded_and_distinct():
    stems = [cell_stem(i) for i in HOSTILE_IDS + ["a_b_c/fake/cpu/0", "a b c/fake/cpu/0"]]
    for stem in stems:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", stem) and not stem.startswith(".") and len(stem) <= 71, stem
    assert len(set(stems)) == len(stems)


@pytest.mark.slow
def test_hostile_workload_names_never_reach_a_path_unsanitised(cli, workload_dir, tmp_path, monkeypatch):
    names = ["../<b>*x*</b> | [a](b) `c` & \\evil", "😀" * 80]
    refs = add_workloads(workload_dir, *names)
    from fwbench import pipeline

    seen: list[list[Path]] = []
    real_run_cell = pipeline.run_cell

    def spy(job, workdir, *args, **kwargs):
        out = real_run_cell(job, workdir, *args, **kwargs)
        seen.append(list(workdir.iterdir()))
        return out

    monkeypatch.setattr(pipeline, "run_cell", spy)
    monkeypatch.setenv("FWBENCH_FAKE", "ok")
    res, doc = fake_run(cli, tmp_path, *(a for ref in refs for a in ("-w", ref)))
    assert res.exit_code == 0, res.output
    assert [c["workload"] for c in doc["cells"]] == names  # the names themselves are kept as data
    assert len(seen) == len(names)
    for files in seen:
        assert len(files) == 3  # job, result, log: all directly inside the cell's own worker folder
        for f in files:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+", f.name), f.name


def _hostile_results(path: Path, names: list[str]) -> None:
    """A results file whose workloads carry hostile names (one measured fake cell each)."""
    doc = results.new_document({"runners": ["fake"]}, {"python": "3"})
    for name in names:
        doc["workloads"][name] = {"name": name, "description": "<b>bold</b> | [x](y)", "mode": "train",
                                  "batch_size": 4}
        doc["cells"].append({"id": f"{name}/fake/cpu/0", "workload": name, "runner": "fake", "family": "fake",
                             "device": "cpu", "repeat": 0, "mode": "train", "batch_size": 4, "status": "ok",
                             "reason": "", "step_s": [0.002, 0.0021, 0.0019, 0.002],
                             "summary": {"median": 0.002, "ci_low": 0.0019, "ci_high": 0.0021, "n": 4},
                             "samples_per_s": 2000.0, "samples_per_s_ci": [1900.0, 2100.0]})
    results.save(path, doc)


HOSTILE_NAMES = ["<script>alert(1)</script> | *x* [a](b)", "中" * 80, "a b", "a-b", "../../outside"]


def test_report_files_for_hostile_names_stay_inside_the_report_folder(cli, tmp_path):
    _hostile_results(tmp_path / "run.json", HOSTILE_NAMES)
    out = tmp_path / "report"
    res = invoke(cli, "report", str(tmp_path / "run.json"), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "run.json"]
    assert all(out in p.parents for p in written), written
    plots = [p for p in written if p.suffix == ".png"]
    assert len(plots) == 3 * len(HOSTILE_NAMES)  # three plots per workload: no two names share a file
    for p in plots:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", p.name) and len(p.name.encode()) < 100, p.name


def test_report_escapes_markdown_and_html_in_workload_names(cli, tmp_path):
    _hostile_results(tmp_path / "run.json", HOSTILE_NAMES[:1])
    res = invoke(cli, "report", str(tmp_path / "run.json"), "-o", str(tmp_path / "report"), "--no-plots")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>" not in text
    assert "[a](b)" not in text  # would render as a link


# --------------------------------------------------------------------------- unwritable results file
def test_read_only_out_is_detected_before_any_work(cli, workload_dir, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "hang")  # a worker started by mistake would hang the test
    # /proc is read-only for every user, root included
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-o", "/proc/fwbench-test/run.json")
    assert res.exit_code == 2
    assert res.output.startswith("error: cannot write results to /proc/fwbench-test/run.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; /proc above covers root")
def test_read_only_folder_is_detected_before_any_work(cli, workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "hang")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-o", str(folder / "run.json"))
    finally:
        folder.chmod(0o755)
    assert res.exit_code == 2
    assert res.output.strip() == f"error: cannot write results to {folder / 'run.json'}: Permission denied"


def test_out_naming_a_directory_is_detected_before_any_work(cli, workload_dir, tmp_path):
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-o", str(tmp_path))
    assert res.exit_code == 2 and "is a directory" in res.output


@pytest.mark.slow
def test_disk_full_mid_run_flushes_results_elsewhere_and_resume_finishes(cli, workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "ok")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "run.json"
    real_write, writes = results.write_json_atomic, []

    def disk_fills_after_first_cell(path, doc):
        if Path(path) == out:
            writes.append(len(doc["cells"]))
            if doc["cells"]:  # the first save (before any cell) works; saving the first cell does not
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, doc)

    monkeypatch.setattr(results, "write_json_atomic", disk_fills_after_first_cell)
    res = invoke(cli, "run", "-r", "fake", "--quick", "-w", "tinymlp", "-w", "tinycnn", "-o", str(out))
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert "No space left on device" in line and "Traceback" not in res.output
    fallback = Path(re.search(r"saved to (\S+) instead", line).group(1))
    assert fallback.parent == tmp_path / "tmp"
    assert "1 finished cell(s)" in line and f"fwbench run --resume {fallback}" in line
    saved = results.read(fallback)
    assert [(c["id"], c["status"]) for c in saved["cells"]] == [("tinymlp/fake/cpu/0", "ok")]
    assert results.read(out)["cells"] == []  # the last save that worked, before the disk filled
    assert writes == [0, 1]  # the run stopped at the failed save: tinycnn never started

    res = invoke(cli, "run", "--resume", str(fallback))
    assert res.exit_code == 0, res.output
    resumed = results.read(fallback)
    assert resumed["run_id"] == saved["run_id"]
    assert [c["id"] for c in resumed["cells"]] == ["tinymlp/fake/cpu/0", "tinycnn/fake/cpu/0"]
    assert resumed["cells"][0] == saved["cells"][0]  # the measured cell was kept, not rerun


@pytest.mark.slow
def test_results_folder_vanishing_mid_run_flushes_to_the_temp_folder(workload_dir, tmp_path):
    """A real OS failure mid-run: the results folder is replaced by a file while a worker runs."""
    out_dir, tmp, pidfile = tmp_path / "results", tmp_path / "tmp", tmp_path / "pids"
    tmp.mkdir()
    env = {**os.environ, "FWBENCH_FAKE": "ok", "FWBENCH_FAKE_STEP_MS": "100", "TMPDIR": str(tmp),
           "FWBENCH_FAKE_PIDFILE": str(pidfile)}
    proc = subprocess.Popen([sys.executable, "-m", "fwbench", "run", "-r", "fake", "-w", "tinymlp", "-w", "tinycnn",
                             "--quick", "-o", str(out_dir / "run.json")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(pidfile_entries(pidfile)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert len(pidfile_entries(pidfile)) == 2, "the second cell never started"
    first = results.read(out_dir / "run.json")
    shutil.rmtree(out_dir)  # the results file and the run's lock file beside it
    out_dir.write_text("not a folder any more")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {out_dir / 'run.json'}: cannot write results (Not a directory)"), line
    fallback = Path(re.search(r"saved to (\S+) instead", line).group(1))
    assert fallback.parent == tmp
    saved = results.read(fallback)
    assert saved["run_id"] == first["run_id"]
    assert [c["status"] for c in saved["cells"]] == ["ok", "ok"]
