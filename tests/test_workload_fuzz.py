"""Generated workload files and results documents (hypothesis): loading either never raises anything but
fwbench's own clear, one-line error (issue 9).

Documents are a valid one with a few random edits (a value of another type, a key removed or added,
a layer changed, nesting, NaN, huge or negative numbers, any text), then serialised and often cut or
corrupted at the byte level, so the generator reaches both the validator and the parsers beneath it.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwbench import results
from fwbench.errors import ResultsError, WorkloadError
from fwbench.launch import cell_stem
from fwbench.workload import WorkloadSpec, layer_shapes, load_file, parse_workload
from tests.conftest import TINY_CNN

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------ generators
KEYS = st.sampled_from(["name", "type", "units", "filters", "kernel_size", "pool_size", "strides", "padding",
                        "activation", "rate", "momentum", "epsilon", "input_shape", "classes", "batch_size",
                        "layers", "timing", "warmup", "status", "step_s", "summary", "median", "cells", "config",
                        "schema_version", "run_id", "id", "workload", "runner", "device", "repeat"]) | st.text(max_size=8)
SCALARS = (
    st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([0, 1, -1, 3, 2**31, 2**63, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
    | st.text(max_size=30) | st.sampled_from(["dense", "conv2d", "same", "relu", "ok", "<b>x</b>", "../../x", ""])
    | st.dates()
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=12)


def _mutate(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """One random edit somewhere inside ``value`` (a copy is returned)."""
    if isinstance(value, dict) and value and depth < 6 and data.draw(st.integers(0, 3)) > 0:
        out = dict(value)
        key = data.draw(st.sampled_from(sorted(out, key=str)))
        action = data.draw(st.sampled_from(["recurse", "recurse", "replace", "delete", "add"]))
        if action == "recurse":
            out[key] = _mutate(data, out[key], depth + 1)
        elif action == "replace":
            out[key] = data.draw(VALUES)
        elif action == "delete":
            del out[key]
        else:
            out[data.draw(KEYS)] = data.draw(VALUES)
        return out
    if isinstance(value, list) and value and depth < 6 and data.draw(st.integers(0, 3)) > 0:
        out = list(value)
        i = data.draw(st.integers(0, len(out) - 1))
        action = data.draw(st.sampled_from(["recurse", "recurse", "replace", "delete", "duplicate"]))
        if action == "recurse":
            out[i] = _mutate(data, out[i], depth + 1)
        elif action == "replace":
            out[i] = data.draw(VALUES)
        elif action == "delete":
            del out[i]
        else:
            out.insert(i, out[i])
        return out
    return data.draw(VALUES)


def mutated(data: st.DataObject, base: Any) -> Any:
    doc = base
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate(data, doc)
    return doc


def corrupt(data: st.DataObject, raw: bytes) -> bytes:
    """Maybe cut the bytes short, or overwrite / insert a few random bytes."""
    how = data.draw(st.sampled_from(["keep", "keep", "truncate", "overwrite", "insert"]))
    if how == "truncate":
        return raw[:data.draw(st.integers(0, len(raw)))]
    if how in ("overwrite", "insert") and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=4))
        return raw[:at] + junk + raw[at + (len(junk) if how == "overwrite" else 0):]
    return raw


def toml_value(v: Any) -> str:
    """TOML text for a generated value (every key of a table quoted; None has no TOML form: dropped)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(x)}"
                               for k, x in v.items() if x is not None) + "}"
    raise TypeError(type(v))


def toml_document(doc: Any) -> str:
    if not isinstance(doc, dict):  # an edit replaced the whole document
        doc = {"name": doc}
    return "\n".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}"
                     for k, v in doc.items() if v is not None) + "\n"


BASE_WORKLOAD = tomllib.loads(TINY_CNN)


def one_line_error(exc: Exception) -> None:
    assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)


# --------------------------------------------------------------------------------------- workloads
@FUZZ
@given(st.data())
def test_generated_workload_mappings_validate_or_raise_workload_error(data):
    doc = mutated(data, BASE_WORKLOAD)
    try:
        spec = parse_workload(doc, "gen.toml")
    except WorkloadError as exc:
        one_line_error(exc)
        assert str(exc).startswith("gen.toml")
        return
    # whatever validates is a network every runner can build, and survives the trip through a job file
    assert layer_shapes(spec.input_shape, spec.layers)[-1] == (spec.classes,)
    assert WorkloadSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", cell_stem(f"{spec.name}/fake/cpu/0"))


@FUZZ
@given(st.data())
def test_generated_workload_files_load_or_raise_workload_error(data):
    doc = mutated(data, BASE_WORKLOAD) if data.draw(st.booleans()) else BASE_WORKLOAD
    raw = corrupt(data, toml_document(doc).encode("utf-8"))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gen.toml"
        path.write_bytes(raw)
        try:
            load_file(path)
        except WorkloadError as exc:
            one_line_error(exc)
            assert str(exc).startswith(str(path))


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
def test_arbitrary_bytes_as_a_workload_file_raise_workload_error(raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "junk.toml"
        path.write_bytes(raw)
        try:
            load_file(path)
        except WorkloadError as exc:
            one_line_error(exc)


# ---------------------------------------------------------------------------------------- results
def base_results() -> dict:
    doc = results.new_document({"runners": ["fake"], "workloads": ["w"]}, {"python": "3.11"})
    doc["workloads"] = {"w": {"name": "w"}}
    doc["cells"] = [
        {"id": "w/fake/cpu/0", "workload": "w", "runner": "fake", "family": "fake", "device": "cpu", "repeat": 0,
         "status": "ok", "reason": "", "step_s": [0.002, 0.0021, 0.002],
         "summary": {"median": 0.002, "ci_low": 0.0019, "ci_high": 0.0021, "n": 3},
         "samples_per_s": 2000.0, "parity": {"initial_loss": 2.3, "kstep_loss": 2.2, "status": "n/a"}},
        {"id": "w/fake/cpu/1", "workload": "w", "runner": "fake", "family": "fake", "device": "cpu", "repeat": 1,
         "status": "diverged", "reason": "loss became nan at step 2", "diverged_step": 2, "final_loss": None},
    ]
    return doc


BASE_RESULTS = base_results()


@FUZZ
@given(st.data())
def test_generated_results_documents_read_or_raise_results_error(data):
    doc = mutated(data, BASE_RESULTS) if data.draw(st.integers(0, 4)) else BASE_RESULTS
    raw = corrupt(data, json.dumps(doc, default=str).encode("utf-8"))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.json"
        path.write_bytes(raw)
        try:
            checked = results.read(path)
        except ResultsError as exc:
            one_line_error(exc)
            assert str(exc).startswith(str(path))
            return
        # what reads as valid is usable: it loads into the table every report is built from
        frame = results.load([path])
        assert len(frame) == len(checked["cells"])


@FUZZ
@given(VALUES)
def test_any_parsed_json_value_is_checked_without_crashing(value):
    try:
        results.check(value, "x.json")
    except ResultsError as exc:
        one_line_error(exc)
