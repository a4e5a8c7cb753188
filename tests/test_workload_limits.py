"""Whole-workload bounds and stored specs (issue 13): total activation and parameter memory, data-parallel
ranks, printable descriptions, and `WorkloadSpec.from_dict` holding a stored spec to the TOML rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fwbench import limits
from fwbench.errors import UsageError, WorkloadError
from fwbench.workload import load_workload
from fwbench.workload_spec import WorkloadSpec, activation_count, parse_workload
from tests.conftest import REPO

MLP = {"name": "w", "input_shape": [784], "classes": 10, "batch_size": 128,
       "layers": [{"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 10}]}


def deep(n: int, units: int, batch: int) -> dict:
    return {**MLP, "batch_size": batch, "input_shape": [units],
            "layers": [{"type": "dense", "units": units}] * n + [{"type": "dense", "units": 10}]}


def refused(doc: dict) -> WorkloadError:
    with pytest.raises(WorkloadError) as info:
        parse_workload(doc, "w.toml")
    return info.value


# ------------------------------------------------------------------------------------------- memory
def test_the_issues_480_gb_workload_is_refused():
    """29 dense layers of 8192 at batch 488000: each layer alone was under the old per-layer bounds."""
    err = refused(deep(29, 8192, 488_000))
    assert err.field == "layers" and "1,946,476,554 parameters need 7.3 GiB" in err.message
    err = refused(deep(29, 4096, 488_000))  # a quarter of the parameters; the activations alone are ~220 GiB
    assert err.field == "batch_size" and "the activations of one batch total 223.4 GiB" in err.message


@pytest.mark.parametrize("doc", [
    deep(10, 4096, 110_000),  # ~18.5 GiB over 11 layers, each one 1.7 GiB
    deep(300, 1024, 15_000),  # many modest layers: ~17 GiB in total
    {**MLP, "batch_size": 1_000_000, "input_shape": [1024],
     "layers": [{"type": "dense", "units": 1024}] * 4 + [{"type": "dense", "units": 10}]},
])
def test_total_activation_memory_is_bounded_and_the_error_names_the_totals(doc):
    err = refused(doc)
    assert err.field == "batch_size"
    assert "the activations of one batch total" in err.message and "GiB" in err.message
    assert f"{doc['batch_size']} x " in err.message and "more than the 16.0 GiB allowed" in err.message
    assert limits.ACTIVATION_GIB_ENV in err.message


def test_total_parameter_memory_is_bounded():
    doc = deep(20, 8192, 1)  # 20 x 67M = 1.3 billion parameters, 5 GiB in fp32; each layer is small
    err = refused(doc)
    assert err.field == "layers" and "parameters need 5.0 GiB in fp32" in err.message
    assert "more than the 4.0 GiB allowed" in err.message and limits.PARAMETER_GIB_ENV in err.message


def test_just_under_the_bounds_passes_and_the_environment_can_raise_or_lower_them(monkeypatch):
    per_sample = activation_count((1024,), tuple(parse_workload(deep(4, 1024, 1)).layers))
    batch = (16 << 30) // (per_sample * 4)
    assert parse_workload(deep(4, 1024, batch)).batch_size == batch
    refused(deep(4, 1024, batch + 1))
    monkeypatch.setenv(limits.ACTIVATION_GIB_ENV, "64")
    assert parse_workload(deep(4, 1024, batch + 1)).batch_size == batch + 1
    monkeypatch.setenv(limits.ACTIVATION_GIB_ENV, "0.0005")
    assert "more than the 0.5 MiB allowed" in refused(MLP).message
    monkeypatch.setenv(limits.PARAMETER_GIB_ENV, "8")
    monkeypatch.delenv(limits.ACTIVATION_GIB_ENV)
    assert len(parse_workload(deep(20, 8192, 1)).layers) == 21


@pytest.mark.parametrize("value", ["lots", "0", "-1", "nan", "inf", "1e30"])
def test_a_bad_override_is_a_usage_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(limits.ACTIVATION_GIB_ENV, value)
    with pytest.raises(UsageError, match=f"{limits.ACTIVATION_GIB_ENV}="):
        parse_workload(MLP)


# -------------------------------------------------------------------------------------------- workers
def test_workers_are_bounded_by_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.delenv(limits.WORKERS_ENV, raising=False)
    assert limits.max_workers() == 8
    assert parse_workload({**MLP, "distributed": {"workers": 8}}).distributed.workers == 8
    for n in (9, 1024, 1025):
        err = refused({**MLP, "distributed": {"workers": n}})
        assert err.field == "distributed.workers" and "from 1 to 8 (4 per core" in err.message
        assert limits.WORKERS_ENV in err.message
    monkeypatch.setenv(limits.WORKERS_ENV, "64")
    assert parse_workload({**MLP, "distributed": {"workers": 64}}).distributed.workers == 64
    for bad in ("0", "1025", "many", "²", "-3"):
        monkeypatch.setenv(limits.WORKERS_ENV, bad)
        with pytest.raises(UsageError, match=f"{limits.WORKERS_ENV}="):
            limits.max_workers()


# ------------------------------------------------------------------------------------------ descriptions
@pytest.mark.parametrize("text", ["\x1b[2J\x1b[H", "clear\x1bc", "a\nb", "tab\there", "bell\x07", "nul\x00",
                                  "rtl \u202e override", "del\x7f", "\x9b31m"])
def test_descriptions_are_printable_text_only(text):
    err = refused({**MLP, "description": text})
    assert err.field == "description" and "printable" in err.message and "\n" not in str(err)


def test_printable_descriptions_pass():
    text = "MLP — 784·512·10, 中文 ok, [b]markup[/b] is text, $x$ too"
    assert parse_workload({**MLP, "description": text}).description == text


# ------------------------------------------------------------------------------------------ stored specs
def stored(**changes) -> dict:
    d = json.loads(json.dumps(load_workload("cnn").to_dict()))
    for path, value in changes.items():
        *keys, last = path.split("__")
        target = d
        for k in keys:
            target = target[int(k)] if isinstance(target, list) else target[k]
        if isinstance(target, list):
            last = int(last)
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return d


@pytest.mark.parametrize("changes, field, words", [
    ({"layers__5__units": 50_000_000}, "layers[5].units", "from 1 to 8192"),
    ({"batch_size": 10**9}, "batch_size", "from 1"),
    ({"batch_size": "64"}, "batch_size", "integer"),
    ({"layers__0__kind": "capsule"}, "layers[0].kind", "unknown layer"),
    ({"layers__0__bias": True}, "layers[0].bias", "unknown key"),
    ({"layers__4__filters": 3}, "layers[4].filters", "not used by flatten"),
    ({"layers__5__padding": "same"}, "layers[5].padding", "not used by dense"),
    ({"layers__0__strides": True}, "layers[0].strides", "integer"),
    ({"layers": "conv"}, "layers", "non-empty array"),
    ({"layers__0": 3}, "layers[0]", "table"),
    ({"timing__max_steps": 2}, "timing.max_steps", "from 3"),
    ({"parity_steps": 0}, "parity_steps", "from 1"),
    ({"data": "imagenet"}, "data", "synthetic, digits"),
    ({"test_fraction": 2.0}, "test_fraction", "(0, 1)"),
    ({"target": {"max_steps": 5}}, "target.accuracy", "exactly one of accuracy and excess_loss"),
    ({"distributed": {"workers": 100_000}}, "distributed.workers", "from 1 to"),
    ({"description": "\x1b[2J"}, "description", "printable"),
    ({"name": KeyError}, "name", "missing"),
    ({"optimizer": None}, "optimizer", "table"),
    ({"source": 3}, "source", "printable string"),
    ({"colour": "red"}, "colour", "unknown key"),
    ({"layers__6__units": 11}, "layers[6]", "10 logits"),
])
def test_from_dict_refuses_what_a_toml_file_would_naming_the_stored_field(changes, field, words):
    with pytest.raises(WorkloadError) as info:
        WorkloadSpec.from_dict(stored(**changes), where="run.json:workloads.cnn")
    err = info.value
    assert err.field == field and words in err.message, str(err)
    assert str(err).startswith(f"run.json:workloads.cnn:{field}: ")


def test_from_dict_refuses_a_non_mapping():
    with pytest.raises(WorkloadError, match="^stored workload: must be a table"):
        WorkloadSpec.from_dict(["cnn"])


def test_from_dict_round_trips_every_bundled_workload_and_stored_golden_specs():
    for name in ("cnn", "mlp", "digits", "ddp", "resnet20", "mobilenet"):
        spec = load_workload(name)
        assert WorkloadSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        assert WorkloadSpec.from_dict(spec.to_dict()) == spec  # tuples, as to_dict gives them
    for path in [REPO / "tests" / "golden" / "ddp_cpu.json", REPO / "results" / "sample" / "run.json"]:
        if path.exists():
            for d in json.loads(path.read_text())["workloads"].values():
                back = WorkloadSpec.from_dict(d).to_dict()
                assert {k: back[k] for k in d if k != "layers"} == {
                    **{k: v for k, v in d.items() if k != "layers"}, "input_shape": tuple(d["input_shape"])}
                added = {k: back[k] for k in set(back) - set(d)}  # fields added since: their defaults
                assert all(v is None for k, v in added.items() if k != "scenario") and added.get("scenario", "train") == "train"
                # a file older than the graph form: its layers read back with the fields it has, plus a name
                # and the previous node as input
                for i, (new, old) in enumerate(zip(back["layers"], d["layers"])):
                    assert json.loads(json.dumps({k: new[k] for k in old})) == old
                    if "inputs" not in old:
                        assert new["inputs"] == ((back["layers"][i - 1]["name"],) if i else ("input",))


def test_from_dict_takes_defaults_for_fields_an_older_file_lacks():
    d = stored()
    for k in ("seed", "mode", "loss", "parity_steps", "target", "distributed", "source", "test_fraction"):
        del d[k]
    spec = WorkloadSpec.from_dict(d)
    assert spec.parity_steps == 5 and spec.distributed is None and spec.source == ""


def test_from_dict_and_with_timing_keep_quick_and_long_budgets_valid():
    spec = load_workload("cnn")
    for budget in ({"warmup": 2, "min_steps": 5, "max_steps": 20, "min_seconds": 0.0, "max_seconds": 2.0},
                   {"min_steps": 3, "max_steps": 10_000_000, "min_seconds": 600.0, "max_seconds": 600.0}):
        timed = spec.with_timing(**budget)
        assert WorkloadSpec.from_dict(copy.deepcopy(timed.to_dict())) == timed


def test_every_bundled_file_is_in_the_package_folder():
    assert sorted(p.stem for p in (REPO / "fwbench" / "workloads").glob("*.toml")) == ["cnn", "ddp", "digits", "lstm", "mlp", "mobilenet", "resnet20", "resnet20-digits", "transformer"]
    assert not (REPO / "workloads").exists() or not any(Path(REPO / "workloads").glob("*.toml"))
