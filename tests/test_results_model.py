"""Schema v2: the upgrade from v1 (golden), strict JSON with non-finite flags, and the typed, fully checked model."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from fwbench import export, jsonio, results, tables
from fwbench.cells import Cell, Probe
from fwbench.errors import ResultsError
from fwbench.report.corpus import Corpus

GOLDEN = Path(__file__).parent / "golden"
SAMPLE = Path(__file__).parent.parent / "results" / "sample" / "run.json"


def reject(name: str):
    raise ValueError(f"bare {name} in a results file")


def strict_load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


# ---------------------------------------------------------------------------------------------- upgrade
def test_v1_file_upgrades_to_the_committed_v2_golden_exactly():
    """tests/golden/v1_diverged.json: written by fwbench at schema 1 (a NaN and an Infinity loss, bare)."""
    v1 = GOLDEN / "v1_diverged.json"
    assert json.loads(v1.read_text())["schema_version"] == 1
    with pytest.raises(ValueError, match="bare NaN"):
        strict_load(v1)
    text = results.to_json(results.read(v1))
    assert text == (GOLDEN / "v1_diverged.v2.json").read_text(encoding="utf-8")
    strict_load(GOLDEN / "v1_diverged.v2.json")


def test_upgrade_moves_threads_into_options_with_the_runner_option_defaults():
    doc = results.read(GOLDEN / "v1_diverged.json")
    cfg = doc["config"]
    assert doc["schema_version"] == 2 and "threads" not in cfg
    assert cfg["options"] == {"channels_last": False, "precision": "fp32", "tf32": False, "sync_check": False,
                              "keras_jit_compile": None, "distributed": None, "threads": 2}
    assert all(c["options"]["threads"] == c["threads"] == 2 for c in doc["cells"])
    # in memory the numbers are what was measured: the non-finite losses are back
    cells = {c.workload: c for c in results.cells(doc)}
    assert math.isnan(cells["tinymlp"].final_loss) and cells["toinf"].final_loss == math.inf
    assert math.isnan(cells["tinymlp"]["parity"]["losses"][4])


@pytest.mark.parametrize("name", ["tiny_all.json", "tiny_partial.json", "ddp_cpu.json"])
def test_committed_v1_files_upgrade_and_keep_their_distributed_options(name):
    raw = json.loads((GOLDEN / name).read_text())
    doc = results.read(GOLDEN / name)
    assert doc["config"]["options"]["threads"] == raw["config"]["threads"]
    assert doc["config"]["options"]["distributed"] == raw["config"]["options"].get("distributed")
    assert len(results.cells(doc)) == len(raw["cells"])


def test_upgrading_twice_changes_nothing_and_v2_reads_back_identically(tmp_path):
    doc = results.read(GOLDEN / "v1_diverged.json")
    results.save(tmp_path / "v2.json", doc)
    again = results.read(tmp_path / "v2.json")
    assert results.to_json(again) == results.to_json(doc)
    assert results.upgrade_config(doc["config"]) == doc["config"]


def test_history_documents_every_version():
    assert sorted(results.SCHEMA_HISTORY) == list(range(1, results.SCHEMA_VERSION + 1))
    assert set(results.UPGRADES) == set(range(1, results.SCHEMA_VERSION))
    text = (Path(__file__).parent.parent / "docs" / "results.md").read_text()
    assert f"schema version {results.SCHEMA_VERSION}" in text and "nonfinite" in text


# ---------------------------------------------------------------------------------------- strict JSON
def _doc_with_nonfinite():
    doc = results.new_document({"runners": ["fake"], "threads": 3}, {"cpu": "x"})
    doc["cells"].append({"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "device": "cpu", "status": "diverged",
                         "final_loss": math.nan, "samples_per_s": math.inf,
                         "parity": {"status": "n/a", "kstep_loss": -math.inf, "losses": [1.0, math.nan]},
                         "settings": {"odd.key~": math.nan}})
    doc["probes"] = [{"id": "p", "probe": "debug-value", "runner": "fake", "device": "cpu", "status": "ok",
                      "findings": {"value": math.inf}}]
    doc["parity"] = {"tolerances": {"initial_loss": math.nan}, "mismatches": []}
    return doc


def test_every_writer_emits_strict_json_and_read_restores_the_numbers(tmp_path):
    doc = _doc_with_nonfinite()
    results.save(tmp_path / "run.json", doc)
    on_disk = strict_load(tmp_path / "run.json")
    cell = on_disk["cells"][0]
    assert cell["final_loss"] is None and cell["nonfinite"] == {
        "final_loss": "nan", "samples_per_s": "inf", "parity.kstep_loss": "-inf", "parity.losses.1": "nan",
        "settings.odd~1key~0": "nan"}
    assert on_disk["probes"][0]["nonfinite"] == {"findings.value": "inf"}
    assert on_disk["nonfinite"] == {"parity.tolerances.initial_loss": "nan"}
    back = results.read(tmp_path / "run.json")
    c = back["cells"][0]
    assert math.isnan(c["final_loss"]) and c["samples_per_s"] == math.inf and c["parity"]["kstep_loss"] == -math.inf
    assert math.isnan(c["settings"]["odd.key~"]) and "nonfinite" not in c
    assert back["probes"][0]["findings"]["value"] == math.inf and math.isnan(back["parity"]["tolerances"]["initial_loss"])
    assert doc["cells"][0]["final_loss"] != doc["cells"][0]["final_loss"]  # saving did not touch the document


def test_plain_json_files_such_as_worker_results_round_trip_through_jsonio(tmp_path):
    jsonio.write_json_atomic(tmp_path / "cell.json", {"status": "diverged", "final_loss": math.nan, "ok": [math.inf]})
    text = (tmp_path / "cell.json").read_text()
    json.loads(text, parse_constant=reject)
    back = jsonio.loads(text)
    assert math.isnan(back["final_loss"]) and back["ok"] == [math.inf] and "nonfinite" not in back
    jsonio.write_json_atomic(tmp_path / "list.json", [math.nan, 1.0])  # no object to flag in: null
    assert json.loads((tmp_path / "list.json").read_text(), parse_constant=reject) == [None, 1.0]


def test_a_cell_read_from_a_worker_file_gets_its_numbers_back_when_recorded():
    doc = results.new_document({}, {})
    results.upsert_cell(doc, {"id": "a", "workload": "w", "runner": "r", "device": "cpu", "status": "diverged",
                              "final_loss": None, "nonfinite": {"final_loss": "nan"}})
    assert math.isnan(doc["cells"][0]["final_loss"]) and "nonfinite" not in doc["cells"][0]


@pytest.mark.parametrize("flags, words", [
    ({"final_loss": "nan"}, "does not name a null"),          # the value is a number, not null
    ({"no.such.path": "nan"}, "does not name a null"),
    ({"reason": "zero"}, "one of nan, inf, -inf"),
    (["final_loss"], "must be an object"),
])
def test_bad_nonfinite_flags_are_one_line_errors(tmp_path, flags, words):
    doc = results.read(GOLDEN / "tiny_partial.json")
    text = json.loads(results.to_json(doc))
    text["cells"][0]["nonfinite"] = flags
    (tmp_path / "bad.json").write_text(json.dumps(text))
    with pytest.raises(ResultsError, match=words) as info:
        results.read(tmp_path / "bad.json")
    assert "\n" not in str(info.value) and "cells[0]" in str(info.value)


# ------------------------------------------------------------------------------------------ typed model
def _mutated(tmp_path: Path, change) -> Path:
    doc = json.loads((GOLDEN / "tiny_all.json").read_text())
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


WRONG_TYPES = {
    "workloads is a list": (_set("workloads", []), "'workloads' must be an object"),
    "a workload is a string": (_set("workloads", "tinycnn", "x"), "'workloads.tinycnn' must be an object"),
    "samples_per_s is a string": (_set("cells", 0, "samples_per_s", "fast"), "cells[0].samples_per_s' must be a number"),
    "batch_size is a string": (_set("cells", 0, "batch_size", "64"), "cells[0].batch_size' must be an integer"),
    "batch_size is huge": (_set("cells", 0, "batch_size", 10**30), "cells[0].batch_size"),
    "mismatches is an int": (_set("parity", "mismatches", 3), "'parity.mismatches' must be a list"),
    "cell parity is a list": (_set("cells", 0, "parity", []), "cells[0].parity' must be an object"),
    "summary median is text": (_set("cells", 0, "summary", "median", "x"), "cells[0].summary.median"),
    "repeat is a bool": (_set("cells", 0, "repeat", True), "cells[0].repeat"),
    "reason is a number": (_set("cells", 1, "reason", 7), "cells[1].reason"),
    "probe findings shapes": (_set("probes", 10, "findings", "shapes", 5), "probes[10].findings.shapes"),
    "probe findings is a list": (_set("probes", 0, "findings", []), "probes[0].findings"),
    "gpus is a string": (_set("environment", "gpus", "x"), "'environment.gpus' must be a list"),
    "options is a list": (_set("config", "options", []), "'config.options' must be an object"),
    "quick is a string": (_set("config", "quick", "yes"), "'config.quick'"),
    "tta curve": (_set("cells", 0, "time_to_accuracy", {"target_accuracy": 0.9, "reached": True, "train_s": 1,
                                                        "final_accuracy": 0.9, "curve": 3}), "time_to_accuracy.curve"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_are_refused_with_one_line_naming_the_field(tmp_path, case):
    change, words = WRONG_TYPES[case]
    path = _mutated(tmp_path, change)
    with pytest.raises(ResultsError) as info:
        results.read(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and words in msg and "\n" not in msg


def test_every_reader_gets_the_same_typed_cells():
    doc = results.read(SAMPLE)
    cells = results.cells(doc)
    assert all(isinstance(c, Cell) for c in cells) and len(cells) == len(doc["cells"])
    assert all(isinstance(p, Probe) for p in results.probes(doc))
    ok = next(c for c in cells if c.ok)
    assert ok.summary.median == ok["summary"]["median"] and ok.parity.status == ok["parity"]["status"]
    corpus = Corpus([("run.json", doc)])
    assert [r.data for r in corpus.cells] == cells  # the report's records are the typed cells
    groups = {(c.workload, c.runner, c.device) for c in cells}  # repeats are one row
    assert sum(len(v) for v in tables.run_rows(doc).values()) == len(groups)
    assert {(r.workload, r.runner, r.device) for r in export.rows(doc)} == groups


def test_cell_attributes_default_when_fields_are_absent():
    cell = Cell.from_dict({"id": "a", "workload": "w", "runner": "r", "device": "cpu", "status": "skipped"})
    assert (cell.repeat, cell.reason, cell.summary, cell.parity, cell.step_s, cell.options) == (0, "", None, None, (), {})


def test_readers_do_not_mutate_a_copy_of_the_document():
    doc = results.read(SAMPLE)
    before = copy.deepcopy(doc)
    tables.run_rows(doc)
    export.to_csv(doc)
    assert doc == before
