"""Generated workload files and results documents (hypothesis): loading either never raises anything but
fwbench's own clear, one-line error (issue 9).

Documents are a valid one with a few random edits (a value of another type, a key removed or added,
a layer changed, nesting, NaN, huge or negative numbers, any text), then serialised and often cut or
corrupted at the byte level, so the generator reaches both the validator and the parsers beneath it.
"""

from __future__ import annotations

import dataclasses
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
from fwbench.workload import load_file
from fwbench.workload_spec import LAYER_FIELDS, Layer, WorkloadSpec, layer_shapes, parse_workload
from tests.conftest import TINY_CNN

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------ generators
KEYS = st.sampled_from(["name", "type", "units", "filters", "kernel_size", "pool_size", "strides", "padding",
                        "activation", "rate", "momentum", "epsilon", "input_shape", "classes", "batch_size",
                        "layers", "timing", "warmup", "status", "step_s", "summary", "median", "cells", "config",
                        "schema_version", "run_id", "id", "workload", "runner", "device", "repeat",
                        # the stored form's keys and the TOML form's tables, so that one may be taken for the other
                        "kind", "parity", "parity_steps", "steps", "source", "data", "test_fraction", "target",
                        "accuracy",
                        "distributed", "workers", "optimizer", "learning_rate", "description", "mode", "seed"]
                       ) | st.text(max_size=8)
SCALARS = (
    st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([0, 1, -1, 3, 2**31, 2**63, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
    | st.text(max_size=30) | st.sampled_from(["dense", "conv2d", "same", "relu", "ok", "<b>x</b>", "../../x", ""])
    | st.dates()
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=12)


def _mutate(data: st.DataObject, value: Any, depth: int = 0, values: Any = VALUES) -> Any:
    """One random edit somewhere inside ``value`` (a copy is returned)."""
    if isinstance(value, dict) and value and depth < 6 and data.draw(st.integers(0, 3)) > 0:
        out = dict(value)
        key = data.draw(st.sampled_from(sorted(out, key=str)))
        action = data.draw(st.sampled_from(["recurse", "recurse", "replace", "delete", "add"]))
        if action == "recurse":
            out[key] = _mutate(data, out[key], depth + 1, values)
        elif action == "replace":
            out[key] = data.draw(values)
        elif action == "delete":
            del out[key]
        else:
            out[data.draw(KEYS)] = data.draw(values)
        return out
    if isinstance(value, list) and value and depth < 6 and data.draw(st.integers(0, 3)) > 0:
        out = list(value)
        i = data.draw(st.integers(0, len(out) - 1))
        action = data.draw(st.sampled_from(["recurse", "recurse", "replace", "delete", "duplicate"]))
        if action == "recurse":
            out[i] = _mutate(data, out[i], depth + 1, values)
        elif action == "replace":
            out[i] = data.draw(values)
        elif action == "delete":
            del out[i]
        else:
            out.insert(i, out[i])
        return out
    return data.draw(values)


def mutated(data: st.DataObject, base: Any, values: Any = VALUES, most: int = 3) -> Any:
    doc = base
    for _ in range(data.draw(st.integers(1, most))):
        doc = _mutate(data, doc, 0, values)
    return doc


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


# ------------------------------------------- a stored spec (results file) and a TOML file: one set of rules
# Issue 13: `--resume` re-validates the specs a results file holds with WorkloadSpec.from_dict, which must
# refuse exactly what the TOML loader refuses. The two translations below are written here, independently
# of fwbench's, from the two documented forms (docs/workloads.md and WorkloadSpec.to_dict).
STORED_KEYS = {f.name for f in dataclasses.fields(WorkloadSpec)}
LAYER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Layer) if f.name != "kind"}
UNTRANSLATABLE = object()


def _default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == default
    if isinstance(default, bool):
        return value is default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float)) and value == default
    return type(value) is type(default) and value == default


def stored_to_toml(d: Any) -> Any:
    """The TOML document a stored spec stands for; a field the stored form cannot hold becomes an unknown key."""
    if not isinstance(d, dict):
        return d
    doc: dict[str, Any] = {}
    for k, v in d.items():
        if k in ("data", "test_fraction"):
            doc.setdefault("data", {})["source" if k == "data" else k] = v
        elif k == "parity_steps":
            doc.setdefault("parity", {})["steps"] = v
        elif k == "parity_learning_rate":
            if v is not None:
                doc.setdefault("parity", {})["learning_rate"] = v
        elif k == "vocabulary":
            if v is not None:
                doc[k] = v
        elif k == "alphabet":
            if v is not None:
                doc.setdefault("data", {})["alphabet"] = v
        elif k in ("target", "distributed"):
            if v is not None:  # a stored target holds None for the goal it does not set
                doc[k] = {kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v
        elif k == "source":
            if not (isinstance(v, str) and v.isprintable() and len(v) <= 4096):
                doc["<bad source>"] = v
        elif k == "layers" and isinstance(v, list):
            doc[k] = [stored_layer_to_toml(x) for x in v]
        elif k in STORED_KEYS:
            doc[k] = v
        else:
            doc["<stored only: " + str(k) + ">"] = v
    return doc


def stored_layer_to_toml(layer: Any) -> Any:
    if not isinstance(layer, dict):
        return layer
    out = {"type": layer.get("kind")} if "kind" in layer else {}
    fields = fields_of(layer.get("kind"))
    for k, v in layer.items():
        if k == "kind" or k in fields and (k == "name" and v == "" or k == "inputs" and v in ([], ())):
            continue  # an empty name or input list is "not given" in the stored form
        if k not in LAYER_DEFAULTS or k not in fields and not _default(v, LAYER_DEFAULTS[k]):
            out["<not a field of this layer: " + str(k) + ">"] = v
        elif k in fields:
            out[k] = v
    return out


def fields_of(kind: Any) -> dict:
    """The keys a layer of ``kind`` may hold: its kind's fields, and the graph's name and inputs (every kind)."""
    fields = LAYER_FIELDS.get(kind) if isinstance(kind, str) else None
    return {**fields, "name": None, "inputs": None} if fields is not None else {}


def toml_to_stored(doc: Any) -> Any:
    """The stored form of a TOML document, or UNTRANSLATABLE where the two forms cannot say the same thing."""
    if not isinstance(doc, dict):
        return doc
    d: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "data":
            if not isinstance(v, dict) or set(v) - {"source", "test_fraction", "alphabet"}:
                return UNTRANSLATABLE
            d.update({("data" if kk == "source" else kk): vv for kk, vv in v.items()})
        elif k == "parity":
            if not isinstance(v, dict) or set(v) - {"steps", "learning_rate"}:
                return UNTRANSLATABLE
            if "steps" in v:
                d["parity_steps"] = v["steps"]
            if "learning_rate" in v:
                d["parity_learning_rate"] = v["learning_rate"]
        elif k in ("target", "distributed", "vocabulary") and v is None:
            return UNTRANSLATABLE  # a stored null means "no table"; a TOML document has no null
        elif k == "layers" and isinstance(v, list):
            layers = [toml_layer_to_stored(x) for x in v]
            if UNTRANSLATABLE in layers:
                return UNTRANSLATABLE
            d[k] = layers
        elif k in STORED_KEYS - {"source", "parity_steps", "parity_learning_rate", "test_fraction", "alphabet"} \
                or k not in STORED_KEYS:
            d[k] = v
        else:
            return UNTRANSLATABLE
    return d


def toml_layer_to_stored(layer: Any) -> Any:
    if not isinstance(layer, dict):
        return layer
    if "kind" in layer or any(k in LAYER_DEFAULTS and k not in fields_of(layer.get("type")) for k in layer):
        return UNTRANSLATABLE  # a key the stored form holds for every layer kind
    if layer.get("name", None) == "" or layer.get("inputs", None) in ([], ()):
        return UNTRANSLATABLE  # the stored form's "not given"; a TOML file leaves the key out instead
    return {("kind" if k == "type" else k): v for k, v in layer.items()}


# Values a workload field may plausibly hold, so that edits often keep the rest of a document valid and
# reach the rules beneath the type checks.
_PLAUSIBLE = st.sampled_from([0, 1, 2, 3, 4, 5, 8, 10, 0.0, 0.5, 0.99, 0.001, 1e-7, "same", "valid", "relu", "linear",
                              "dense", "flatten", "conv2d", "maxpool2d", "dropout", "batchnorm", "activation", "adam",
                              "sgd", "digits", "synthetic", "train", "infer", "", None, [4], [8, 8, 1], {}])
NEAR_VALID = st.one_of(_PLAUSIBLE, _PLAUSIBLE, _PLAUSIBLE, VALUES)
TOP_FIELD_KEYS = st.sampled_from(sorted({"parity", "kind", "type", "layers",
                                         *(f.name for f in dataclasses.fields(WorkloadSpec))}))
LAYER_FIELD_KEYS = st.sampled_from(sorted({"kind", "type", "bias", *(f.name for f in dataclasses.fields(Layer))}))


def layer_edit(data: st.DataObject, doc: Any, kind_key: str) -> Any:
    """Set one key of one layer (a field of another kind, often) to a near-valid value."""
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list) or not doc["layers"]:
        return doc
    layers = list(doc["layers"])
    i = data.draw(st.integers(0, len(layers) - 1))
    if isinstance(layers[i], dict):
        key = data.draw(LAYER_FIELD_KEYS)
        layers[i] = {**layers[i], key: data.draw(NEAR_VALID)}
    return {**doc, "layers": layers}


def near_valid_edit(data: st.DataObject, base: dict, kind_key: str) -> Any:
    """One or two edits, each likely to keep the document valid: anywhere, at the top level, or in a layer."""
    doc = base
    for _ in range(data.draw(st.integers(1, 2))):
        how = data.draw(st.sampled_from(["top", "table", "layer", "layer", "anywhere"]))
        if how == "anywhere":
            doc = mutated(data, doc, NEAR_VALID, most=1)
        elif how == "top" and isinstance(doc, dict):
            doc = {**doc, data.draw(TOP_FIELD_KEYS): data.draw(NEAR_VALID)}
        elif how == "table" and isinstance(doc, dict):
            tables = sorted(k for k, v in doc.items() if isinstance(v, dict))
            if tables:
                table = data.draw(st.sampled_from(tables))
                keys = sorted({*doc[table], "steps", "source", "workers", "accuracy", "max_steps", "lr"})
                doc = {**doc, table: {**doc[table], data.draw(st.sampled_from(keys)): data.draw(NEAR_VALID)}}
        else:
            doc = layer_edit(data, doc, kind_key)
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


def verdict(load: Any, value: Any) -> WorkloadSpec | None:
    try:
        return load(value)
    except WorkloadError as exc:
        one_line_error(exc)
        return None


BASE_STORED = json.loads(json.dumps(parse_workload(BASE_WORKLOAD, "base.toml").to_dict()))


@FUZZ
@given(st.data())
def test_a_mutated_stored_spec_is_refused_by_from_dict_exactly_when_its_toml_form_is(data):
    d = near_valid_edit(data, BASE_STORED, "kind")
    from_stored = verdict(WorkloadSpec.from_dict, d)
    from_toml = verdict(lambda doc: parse_workload(doc, "t.toml"), stored_to_toml(d))
    assert (from_stored is None) == (from_toml is None), (d, from_stored, from_toml)
    if from_stored is not None:
        assert from_stored == dataclasses.replace(from_toml, source=d.get("source", ""))


@FUZZ
@given(st.data())
def test_a_mutated_toml_document_is_refused_exactly_when_its_stored_form_is(data):
    doc = near_valid_edit(data, BASE_WORKLOAD, "type")
    stored = toml_to_stored(doc)
    if stored is UNTRANSLATABLE:
        return
    from_toml = verdict(lambda x: parse_workload(x, "t.toml"), doc)
    from_stored = verdict(WorkloadSpec.from_dict, stored)
    assert (from_stored is None) == (from_toml is None), (doc, from_stored, from_toml)
    if from_toml is not None:
        assert from_stored == dataclasses.replace(from_toml, source="")


# Every single edit of a stored spec or a TOML document, exhaustively: each key of the top level, of each
# table and of each layer set to each of these values (or removed). The fuzz above combines edits.
EDIT_VALUES = [0, 1, 2, 3, 4, 8, 10, -1, 2**40, 0.0, 0.5, 0.99, 1e-3, 1e-7, 1.5, float("nan"), True, "", "same",
               "valid", "relu", "linear", "dense", "flatten", "conv2d", "maxpool2d", "dropout", "batchnorm",
               "activation", "adam", "sgd", "digits", "synthetic", "train", "infer", "x\x1b[2J", None, [4], [8, 8, 1],
               [], {}, {"workers": 2}, {"accuracy": 0.5}]
_DELETE = object()


def single_edits(base: dict) -> Any:
    def variants(mapping: dict, keys: Any) -> Any:
        for k in sorted(set(mapping) | set(keys)):
            if k in mapping:
                yield {kk: vv for kk, vv in mapping.items() if kk != k}
            for v in EDIT_VALUES:
                yield {**mapping, k: v}

    yield base
    yield from variants(base, {"parity", "kind", "type", *STORED_KEYS})
    for table in sorted(k for k, v in base.items() if isinstance(v, dict)):
        for edited in variants(base[table], {"steps", "source", "workers", "accuracy", "lr"}):
            yield {**base, table: edited}
    for i, layer in enumerate(base["layers"]):
        for edited in variants(layer, {"kind", "type", "bias", *LAYER_DEFAULTS}):
            yield {**base, "layers": [*base["layers"][:i], edited, *base["layers"][i + 1:]]}


def test_every_single_edit_is_refused_by_both_forms_or_by_neither():
    checked = accepted = 0
    for d in single_edits(BASE_STORED):
        from_stored = verdict(WorkloadSpec.from_dict, d)
        from_toml = verdict(lambda doc: parse_workload(doc, "t.toml"), stored_to_toml(d))
        assert (from_stored is None) == (from_toml is None), d
        checked, accepted = checked + 1, accepted + (from_stored is not None)
    for doc in single_edits(BASE_WORKLOAD):
        stored = toml_to_stored(doc)
        if stored is UNTRANSLATABLE:
            continue
        from_toml = verdict(lambda x: parse_workload(x, "t.toml"), doc)
        assert (verdict(WorkloadSpec.from_dict, stored) is None) == (from_toml is None), doc
        checked, accepted = checked + 1, accepted + (from_toml is not None)
    assert checked > 3000 and accepted > 300  # both verdicts are well represented


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


# ------------------------------------------------------------------------------------------- graphs
# Random graph documents: nodes that read random names (earlier, later, themselves, unknown, the input),
# merges of random arity, blocks with random bodies, args and repeats. Every one either parses into a
# consistent graph or is refused with fwbench's one-line error; a parsed graph reads back from its stored form.
_NODE_KINDS = st.sampled_from(["conv2d", "depthwise_conv2d", "maxpool2d", "avgpool2d", "global_avgpool2d",
                               "zero_padding2d", "flatten", "dense", "batchnorm", "activation", "add", "concat",
                               "dropout", "block"])


def graph_nodes(draw: Any, count: int, in_block: bool, args: dict | None = None) -> list[dict]:
    """``count`` nodes; each usually reads earlier names or the previous node, sometimes anything at all."""
    nodes: list[dict] = []
    named: list[str] = []
    for i in range(count):
        kind = draw(_NODE_KINDS.filter(lambda k: not in_block or k != "block") if draw(st.integers(0, 9))
                    else st.sampled_from(["block", "add", "conv2d"]))
        node: dict[str, Any] = {"type": kind}
        if kind in ("conv2d", "dense"):
            node["filters" if kind == "conv2d" else "units"] = draw(st.sampled_from([2, 4, 3] + (["$f"] if in_block else [])))
        if kind in ("conv2d", "depthwise_conv2d"):
            node["kernel_size"] = draw(st.sampled_from([1, 3]))
            node["padding"] = draw(st.sampled_from(["same", "same", "valid"]))
            if kind == "conv2d" and draw(st.integers(0, 3)) == 0:
                node["groups"] = 2
        if kind in ("maxpool2d", "avgpool2d"):
            node["pool_size"] = draw(st.sampled_from([1, 2]))
            node["padding"] = draw(st.sampled_from(["same", "valid"]))
        if kind == "zero_padding2d":
            node["pad"] = draw(st.sampled_from([1, [0, 1, 0, 1], [1, 2], -1]))
        if kind == "block":
            node["block"] = draw(st.sampled_from(["blk", "blk", "nosuch"]))
            node["repeat"] = draw(st.sampled_from([1, 2, 3, 0, 5000]))
            node["args"] = draw(st.sampled_from([args or {}] * 4 + [{"f": 2}, {}, {"f": 2, "g": 1}, {"f": "x"}]))
        if draw(st.integers(0, 2)) == 0:
            name = draw(st.sampled_from(["a", "b", "c", "d", "input", "x y", f"n{i}", f"n{i}", f"n{i}"]))
            node["name"] = name
            named.append(name)
        earlier = (named[:-1] if "name" in node else named) + ["input"]
        if kind in ("add", "concat"):
            node["inputs"] = draw(st.lists(st.sampled_from(earlier), min_size=2, max_size=3))
        elif draw(st.integers(0, 4)) == 0:
            node["inputs"] = draw(st.sampled_from(earlier + ["nosuch", "later", []]))
        nodes.append(node)
    return nodes


@st.composite
def graph_document(draw: Any) -> dict:
    body = graph_nodes(draw, draw(st.integers(1, 4)), True)
    uses_f = "$f" in json.dumps(body)
    layers = graph_nodes(draw, draw(st.integers(1, 6)), False, {"f": 2} if uses_f else {})
    tail = draw(st.sampled_from([[{"type": "global_avgpool2d"}, {"type": "dense", "units": 3}],
                                 [{"type": "flatten"}, {"type": "dense", "units": 3}], []]))
    doc = {"name": "g", "input_shape": draw(st.sampled_from([[6, 6, 2], [5, 7, 4], [6, 6, 4], [8]])), "classes": 3,
           "batch_size": 2, "layers": layers + tail}
    if any(layer.get("block") == "blk" for layer in layers) or draw(st.integers(0, 9)) == 0:
        doc["blocks"] = {"blk": {"layers": body}}
    return doc


@FUZZ
@given(graph_document())
def test_a_random_graph_parses_into_a_consistent_graph_or_is_refused_with_a_clear_error(doc):
    spec = verdict(lambda d: parse_workload(d, "g.toml"), doc)
    if spec is None:
        return
    seen = {"input"}
    read: set[str] = set()
    for layer in spec.layers:
        assert layer.name and layer.name not in seen and layer.inputs and set(layer.inputs) <= seen
        assert (len(layer.inputs) >= 2) == (layer.kind in ("add", "concat"))
        seen.add(layer.name)
        read.update(layer.inputs)
    assert all(layer.name in read for layer in spec.layers[:-1])  # no dead branch
    assert layer_shapes(spec.input_shape, spec.layers)[-1] == (3,)
    assert WorkloadSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
