"""`fwbench history`: the store, per-commit series, change-point detection, the check's exit code, rendering.

Fast: synthetic documents and series, one real series read from ``tests/data/history-real`` (8 runs of the
``fake`` runner on this machine, made by ``tests/data/history-real/make.sh``: one commit of a throwaway git
repository per run, ``fwbench run -r fake -w mlp --quick``, FWBENCH_FAKE_STEP_MS=5 for runs 1-5 and 6 (+20%)
from run 6 on; the fake runner's steps really sleep that long, so the step times are measured)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt

from conftest import invoke
from fwbench.history import changepoints, judge, store
from fwbench.history.changepoints import detect
from fwbench.history.series import Commit, Point, Series

REAL = Path(__file__).resolve().parent / "data" / "history-real"
ENV = {"cpu": "Test CPU", "cores": 2, "versions": {}}


def lognormal(n: int, cv: float, seed: int, step_at: int | None = None, size: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    x = 0.01 * np.exp(rng.normal(0.0, np.sqrt(np.log1p(cv * cv)), n))
    if step_at is not None:
        x[step_at:] *= 1.0 + size
    return [float(v) for v in x]


def cell(workload: str = "w", factor: float = 1.0, seed: int = 0, repeat: int = 0, **extra) -> dict:
    steps = (0.01 * factor * np.random.default_rng(seed).lognormal(0, 0.02, 20)).tolist()
    c = {"id": f"{workload}/fake/cpu/{repeat}", "workload": workload, "runner": "fake", "device": "cpu",
         "repeat": repeat, "status": "ok", "step_s": steps, "threads": 2}
    c.update(extra)
    return c


def doc(cells: list[dict], run_id: str, commit: str | None = "c0", created: str = "2025-01-01T00:00:00Z") -> dict:
    return {"schema_version": 2, "fwbench_version": "0.1.0", "run_id": run_id, "created": created, "config": {},
            "environment": {**ENV, "git_commit": commit}, "workloads": {}, "parity": {}, "cells": cells}


def write(tmp_path: Path, name: str, d: dict) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


def series_of(values: list[float]) -> Series:
    pts = tuple(Point(f"c{i}", f"2025-01-{i + 1:02d}T00:00:00Z", v, v * 0.99, v * 1.01, "steps", 1, 20)
                for i, v in enumerate(values))
    return Series("w", "fake", "cpu", pts)


def verdict(values: list[float], threshold: float = 0.05) -> tuple[str, int]:
    s = series_of(values)
    res = judge.check([s], [Commit(p.commit, p.date, 1) for p in s.points], threshold)
    return res.cells[0].verdict, res.exit_code


# ---------------------------------------------------------------- detection on synthetic series

@pytest.mark.parametrize("at, size", [(12, 0.20), (20, 0.10), (8, -0.15)])
def test_a_known_step_is_found_at_its_position_with_its_sign(at, size) -> None:
    x = lognormal(30, 0.02, seed=at, step_at=at, size=size)
    det = detect(x)
    assert det.judged and len(det.steps) == 1, det
    (s,) = det.steps
    assert abs(s.index - at) <= 1 and (s.ratio > 1) == (size > 0)
    assert s.ratio == pytest.approx(1 + size, rel=0.04)


def test_two_steps_are_both_found() -> None:
    x = lognormal(30, 0.02, seed=3, step_at=10, size=0.2)
    x[20:] = [v * 0.8 for v in x[20:]]
    assert [s.index for s in detect(x).steps] == [10, 20]


def test_flat_noisy_series_raise_few_alarms_and_never_fail_the_check() -> None:
    alarms = fails = 0
    for seed in range(40):
        x = lognormal(30, 0.05, seed=1000 + seed)
        alarms += bool(detect(x).steps)
        fails += verdict(x)[1]
    assert fails == 0 and alarms <= 3  # benchmarks/history_detection.py measures about 1-3% any-alarm


def test_short_series_are_not_judged_and_bad_values_refused() -> None:
    det = detect([1.0, 1.2, 1.5])
    assert not det.judged and "at least" in det.reason
    with pytest.raises(ValueError):
        detect([1.0, 0.0, 1.0, 1.0])


def test_a_deterministic_series_does_not_call_a_wobble_a_step() -> None:
    x = [0.005, 0.00501, 0.005, 0.00499, 0.005, 0.00502, 0.005, 0.00505]  # 1% at the end: under the noise floor
    assert detect(x).steps == ()


# ---------------------------------------------------------------- the exit-code rule

def test_exit_1_only_when_the_newest_commit_starts_a_slowdown_above_threshold() -> None:
    flat = lognormal(15, 0.01, seed=7)
    assert verdict(flat + [flat[-1] * 1.3]) == ("slower", 1)
    assert verdict(flat + [flat[-1] * 0.7]) == ("faster", 0)  # a speedup never fails
    older = flat[:8] + [v * 1.3 for v in flat[8:]]
    assert verdict(older) == ("no step", 0)  # an older step is listed, not failed
    assert any(s.index == 8 for s in detect(older).steps)
    assert verdict(flat + [flat[-1] * 1.3], threshold=0.5) == ("small step", 0)  # within a 50% threshold
    assert verdict(flat[:3]) == ("too short", 0)


def test_a_cell_not_measured_at_the_newest_commit_does_not_fail() -> None:
    s = series_of(lognormal(10, 0.01, seed=2))
    commits = [Commit(p.commit, p.date, 1) for p in s.points] + [Commit("new", "2025-02-01T00:00:00Z", 1)]
    res = judge.check([s], commits, 0.05)
    assert res.cells[0].verdict == "not measured" and res.exit_code == 0


# ---------------------------------------------------------------- the store

def test_store_round_trip_and_idempotence(tmp_path) -> None:
    folder = tmp_path / "h"
    d = doc([cell()], "run-1", commit="abc123", created="2025-03-04T05:06:07+02:00")
    first = store.add(folder, d, "run.json")
    assert first.status == "added" and first.entry.commit == "abc123" and first.entry.date == "2025-03-04T03:06:07Z"
    index = (folder / "index.json").read_bytes()
    assert store.add(folder, d, "run.json").status == "unchanged"
    assert (folder / "index.json").read_bytes() == index and len(list((folder / "runs").iterdir())) == 1
    again = store.add(folder, d, "run.json", commit="def456", date="2025-03-05")
    assert again.status == "updated" and len(store.load_index(folder)) == 1
    ((entry, stored),) = store.read_runs(folder)
    assert entry.commit == "def456" and entry.date == "2025-03-05T00:00:00Z" and stored["cells"][0]["id"] == "w/fake/cpu/0"
    assert not [p for p in folder.rglob("*.tmp")]  # atomic writes leave nothing behind


def test_ab_files_need_a_side_and_keep_only_its_cells(tmp_path) -> None:
    a, b = cell(side="A", id="A:w/fake/cpu/0"), cell(factor=2.0, side="B", id="B:w/fake/cpu/0")
    d = doc([a, b], "ab-1")
    d["ab"] = {"rounds": 3, "sides": {s: {"label": s, "python": "python3", "env": {},
                                          "environment": {**ENV, "git_commit": s.lower() * 3}} for s in "AB"}}
    with pytest.raises(store.UsageError, match="--side A or --side B"):
        store.add(tmp_path, d, "ab.json")
    e = store.add(tmp_path, d, "ab.json", side="B").entry
    assert e.commit == "bbb" and e.side == "B"
    ((_, stored),) = store.read_runs(tmp_path)
    assert [c["id"] for c in stored["cells"]] == ["w/fake/cpu/0"] and "ab" not in stored


# ---------------------------------------------------------------- the CLI

def test_cli_add_check_show(cli, tmp_path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("FWBENCH_HISTORY_DIR", str(tmp_path / "hist"))
    r = invoke(cli, "history", "check")
    assert r.exit_code == 2 and "is empty" in r.output
    nocommit = write(tmp_path, "nocommit.json", doc([cell()], "r0", commit=None))
    r = invoke(cli, "history", "add", nocommit)
    assert r.exit_code == 2 and "--commit" in r.output
    for i in range(8):  # 6 flat commits, then 2 commits 30% slower: checked when the first of them is newest
        f = write(tmp_path, f"r{i}.json", doc([cell(seed=i, factor=1.3 if i >= 6 else 1.0)], f"r{i}",
                                              commit=f"sha{i}", created=f"2025-01-0{i + 1}T00:00:00Z"))
        r = invoke(cli, "history", "add", f)
        assert r.exit_code == 0 and f"added: {f} -> commit sha{i}" in r.output
        if i == 6:
            r = invoke(cli, "history", "check", "--threshold", "10%")
            assert r.exit_code == 1, r.output
            assert "sha6" in r.output and "slower" in r.output and "penalty" in r.output
    r = invoke(cli, "history", "check", "--format", "json")
    assert r.exit_code == 0, r.output  # the step now starts at an older commit
    out = json.loads(r.output)
    assert out["cells"][0]["steps"][0]["commit"] == "sha6" and out["cells"][0]["verdict"] == "no step"
    assert summary.read_text().count("### fwbench history check") == 2
    r = invoke(cli, "history", "check", "--threshold", "lots")
    assert r.exit_code == 2 and "--threshold" in r.output
    r = invoke(cli, "history", "show", "--out-dir", str(tmp_path / "md"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "md" / "history.md").read_text()
    assert "## w/fake/cpu" in md and "(plots/w-fake-cpu.png)" in md and "▲ x1.3" in md
    assert (tmp_path / "md" / "plots" / "w-fake-cpu.png").read_bytes()[:4] == b"\x89PNG"


def test_html_is_self_contained(cli, tmp_path) -> None:
    for i in range(4):
        store.add(tmp_path / "h", doc([cell(seed=i)], f"r{i}", commit=f"s{i}", created=f"2025-01-0{i + 1}"), "x")
    r = invoke(cli, "history", "show", "--dir", str(tmp_path / "h"), "--out-dir", str(tmp_path / "o"),
               "--format", "html")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "o" / "history.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"https?:|//[a-z]", text) and "<script" not in text and "<link" not in text
    assert re.findall(r'src="([^"]*)"', page) and all(s.startswith("data:image/png;base64,")
                                                     for s in re.findall(r'src="([^"]*)"', page))


def test_hostile_names_are_escaped(cli, tmp_path) -> None:
    names = ["<img src=x onerror=alert(1)>", "[a](javascript:alert(1))", "# head `tick` $x$"]
    for i in range(4):
        cells = [cell(n, seed=i) for n in names]
        store.add(tmp_path / "h", doc(cells, f"r{i}", commit=f"<b>c{i}</b>", created=f"2025-01-0{i + 1}"), "x")
    for fmt in ("markdown", "html"):
        r = invoke(cli, "history", "show", "--dir", str(tmp_path / "h"), "--out-dir", str(tmp_path / fmt),
                   "--format", fmt)
        assert r.exit_code == 0, r.output
    page = (tmp_path / "html" / "history.html").read_text()
    assert "<img src=x" not in page and "<b>c" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    md = (tmp_path / "markdown" / "history.md").read_text()
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert rendered.count("<h1>") == 1 and rendered.count("<h2>") == 3  # the page's own headings only
    assert not re.search(r"<(a|script|b)\b|<img src=\"x\"|<img src=x", rendered), rendered
    r = invoke(cli, "history", "check", "--dir", str(tmp_path / "h"), "--format", "markdown")
    rendered = MarkdownIt("commonmark").enable("table").render(r.output)
    assert r.exit_code == 0 and not re.search(r"<(a|script|b)\b|<img src=x", rendered)


# ---------------------------------------------------------------- a real series, measured here

def test_real_fake_runner_series(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    files = sorted(REAL.glob("run-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    assert len(files) == 8
    h = str(tmp_path / "h")
    r = invoke(cli, "history", "add", "--dir", h, *map(str, files[:6]))  # commits recorded by the runs
    assert r.exit_code == 0, r.output
    r = invoke(cli, "history", "check", "--dir", h, "--format", "json")
    assert r.exit_code == 1, r.output  # run 6 is the newest and starts the +20% step
    (c,) = json.loads(r.output)["cells"]
    assert c["verdict"] == "slower" and [s["index"] for s in c["steps"]] == [5]
    r = invoke(cli, "history", "add", "--dir", h, *map(str, files))
    assert r.exit_code == 0 and r.output.count("unchanged:") == 6
    r = invoke(cli, "history", "check", "--dir", h, "--format", "json")
    assert r.exit_code == 0, r.output  # the step is now older than the newest commit
    (c,) = json.loads(r.output)["cells"]
    (s,) = c["steps"]
    assert s["index"] == 5 and 1.12 < s["ratio"] < 1.28 and c["verdict"] == "no step"
    first = json.loads(files[5].read_text())["environment"]["git_commit"]
    assert s["commit"] == first


def test_points_are_per_commit_pooled_and_use_processes_from_three(tmp_path) -> None:
    from fwbench.history.series import build, commits

    folder = tmp_path / "h"
    store.add(folder, doc([cell(seed=s, repeat=s) for s in range(3)], "r1", commit="a", created="2025-01-02"), "x")
    store.add(folder, doc([cell(seed=9)], "r2", commit="b", created="2025-01-01"), "x")
    store.add(folder, doc([cell(seed=8, factor=0.0)], "r3", commit="c", created="2025-01-03"), "x")  # zero steps
    runs = store.read_runs(folder)
    assert [c.commit for c in commits(runs)] == ["b", "a", "c"]  # date order, not insertion order
    (s,) = build(runs)
    assert [p.commit for p in s.points] == ["b", "a"]  # a zero step time has no logarithm: left out
    b, a = s.points
    assert (b.method, b.processes, a.method, a.processes) == ("steps", 1, "processes", 3)
    assert a.ci_low < a.centre < a.ci_high and b.ci_low <= b.centre <= b.ci_high
