"""Results documents: atomic round trip, version and structure checks, the pandas loader."""

from __future__ import annotations

import json

import pytest

from fwbench import results
from fwbench.errors import ResultsError


def make_doc():
    doc = results.new_document({"workloads": ["w"]}, {"cpu": "x", "cores": 2})
    results.upsert_cell(doc, {"id": "w/torch/cpu/0", "workload": "w", "runner": "torch", "device": "cpu",
                              "repeat": 0, "status": "ok", "step_s": [0.01, 0.011, 0.012],
                              "summary": {"n": 3, "median": 0.011, "ci_low": 0.01, "ci_high": 0.012},
                              "samples_per_s": 5818.2, "parity": {"initial_loss": 2.3, "kstep_loss": 2.2,
                                                                  "status": "reference"}})
    results.upsert_cell(doc, {"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "device": "cpu",
                              "repeat": 0, "status": "crashed", "reason": "worker killed by signal SIGABRT"})
    return doc


def test_round_trip_and_loader(tmp_path):
    path = tmp_path / "run.json"
    doc = make_doc()
    results.save(path, doc)
    assert results.read(path) == json.loads(path.read_text())
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed, not left behind
    df = results.load(path)
    assert list(df["runner"]) == ["torch", "fake"]
    assert df.loc[0, "median_s"] == 0.011 and df.loc[0, "initial_loss"] == 2.3
    assert df.loc[1, "status"] == "crashed"


def test_upsert_replaces_a_cell_with_the_same_id():
    doc = make_doc()
    results.upsert_cell(doc, {"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "device": "cpu",
                              "status": "ok"})
    assert [c["status"] for c in doc["cells"]] == ["ok", "ok"] and len(doc["cells"]) == 2


def test_run_ids_are_unique():
    assert len({results.new_run_id() for _ in range(200)}) == 200


@pytest.mark.parametrize("content, words", [
    ('{"schema_version": 1, "run_id": "x", "config": {}', "truncated"),
    ("hello", "not valid JSON"),
    ("[1, 2]", "not an fwbench results file"),
    ('{"schema_version": 99, "fwbench_version": "9.0", "run_id": "x"}', "newer than this fwbench reads"),
    ('{"schema_version": 0}', "older than this fwbench reads"),
    ('{"schema_version": 1, "run_id": "x", "config": {}, "environment": {}}', "'cells' missing"),
    ('{"schema_version": 1, "run_id": "x", "config": {}, "environment": {}, "cells": [{"id": "a", "workload": "w",'
     ' "runner": "r", "device": "cpu", "status": "great"}]}', "cells[0].status' is 'great'"),
    ('{"schema_version": 1, "run_id": "x", "config": {}, "environment": {}, "cells": [{"id": "a", "workload": "w",'
     ' "runner": "r", "device": "cpu", "status": "ok", "step_s": [-1]}]}', "step_s"),
])
def test_bad_files_give_one_line_reasons_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError) as info:
        results.read(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        results.read(tmp_path / "absent.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ResultsError, match="not UTF-8"):
        results.read(tmp_path / "bin.json")
