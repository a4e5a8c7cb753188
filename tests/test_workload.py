"""Workload validation: every error names the file, the field and what is allowed."""

from __future__ import annotations

import textwrap

import pytest

from fwbench.errors import WorkloadError
from fwbench.workload import load_file, load_workload
from fwbench.workload_spec import layer_shapes, parameter_count, parse_workload

BASE = {"name": "w", "input_shape": [8, 8, 1], "classes": 4, "batch_size": 2,
        "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "flatten"},
                   {"type": "dense", "units": 4}]}


def with_(**changes):
    doc = {**BASE, **changes}
    return {k: v for k, v in doc.items() if v is not None}


def error_of(doc) -> WorkloadError:
    with pytest.raises(WorkloadError) as info:
        parse_workload(doc, "my.toml")
    return info.value


@pytest.mark.parametrize("doc, field, words", [
    (with_(name=None), "name", "missing"),
    (with_(layers=None), "layers", "missing"),
    (with_(colour="red"), "colour", "unknown key"),
    (with_(classes="ten"), "classes", "integer"),
    (with_(classes=True), "classes", "integer"),
    (with_(batch_size=-3), "batch_size", "from 1"),
    (with_(batch_size=10**9), "batch_size", "from 1"),
    (with_(input_shape=[8, 8]), "input_shape", "[height, width, channels]"),
    (with_(input_shape=[8, 0, 1]), "input_shape[1]", "from 1"),
    (with_(input_shape=[8, 10**6, 1]), "input_shape[1]", "from 1"),
    (with_(mode="fly"), "mode", "train, infer"),
    (with_(loss="hinge"), "loss", "sparse_categorical_crossentropy"),
    (with_(layers=[]), "layers", "non-empty"),
    (with_(layers=["dense"]), "layers[0]", "table"),
    (with_(layers=[{"type": "transformer"}]), "layers[0].type", "conv2d"),
    (with_(layers=[{"type": "dense"}]), "layers[0].units", "missing"),
    (with_(layers=[{"type": "dense", "units": 4, "bias": False}]), "layers[0].bias", "unknown key"),
    (with_(layers=[{"type": "dense", "units": 4, "activation": "mish"}]), "layers[0].activation", "relu"),
    (with_(layers=[{"type": "dropout", "rate": 1.5}]), "layers[0].rate", "[0, 1)"),
    (with_(layers=[{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"}]), "layers[0].padding", "same"),
    (with_(layers=[{"type": "dense", "units": 4}]), "layers[0]", "flatten"),
    (with_(layers=[{"type": "conv2d", "filters": 2, "kernel_size": 9}]), "layers[0]", "larger than its input"),
    (with_(layers=[{"type": "flatten"}, {"type": "dense", "units": 5}]), "layers[1]", "4 logits"),
    (with_(optimizer={"name": "lbfgs"}), "optimizer.name", "adam, sgd"),
    (with_(optimizer={"learning_rate": float("nan")}), "optimizer.learning_rate", "(0, 10)"),
    (with_(optimizer={"lr": 0.1}), "optimizer.lr", "unknown key"),
    (with_(optimizer=3), "optimizer", "table"),
    (with_(data={"source": "imagenet"}), "data.source", "synthetic, digits"),
    (with_(data={"source": "digits"}), "input_shape", "8x8x1"),
    (with_(timing={"min_steps": 10, "max_steps": 5}), "timing.max_steps", ">= timing.min_steps"),
    (with_(target={"max_steps": 5}), "target.accuracy", "exactly one of accuracy and excess_loss"),
    (with_(input_shape=[8192, 8192, 64], batch_size=1, layers=[{"type": "flatten"}, {"type": "dense", "units": 4}]),
     "layers", "parameters"),
    (with_(batch_size=100000, input_shape=[4096, 4096, 1], layers=[{"type": "maxpool2d", "pool_size": 4096},
                                                                   {"type": "flatten"}, {"type": "dense", "units": 4}]),
     "batch_size", "activations"),
])
def test_invalid_documents_name_field_and_what_is_allowed(doc, field, words):
    err = error_of(doc)
    assert err.file == "my.toml" and err.field == field, str(err)
    assert words in err.message
    assert str(err).startswith(f"my.toml:{field}: ")


def test_bundled_cnn_is_exactly_the_documents_network():
    spec = load_workload("cnn")
    assert spec.input_shape == (28, 28, 1) and spec.classes == 10 and spec.batch_size == 64
    assert [(l.kind, l.filters or l.units or l.pool_size, l.activation) for l in spec.layers] == [
        ("conv2d", 32, "relu"), ("maxpool2d", 2, "linear"), ("conv2d", 64, "relu"), ("maxpool2d", 2, "linear"),
        ("flatten", 0, "linear"), ("dense", 64, "relu"), ("dense", 10, "linear")]
    assert spec.optimizer.name == "adam" and spec.loss == "sparse_categorical_crossentropy"
    assert parameter_count(spec) == 121_930  # Keras's model.summary() of the document's CNN says the same


def test_bundled_mlp_and_digits():
    mlp = load_workload("mlp")
    assert mlp.input_shape == (784,) and [l.units for l in mlp.layers] == [512, 512, 10] and mlp.batch_size == 128
    digits = load_workload("digits")
    assert digits.data == "digits" and digits.target is not None and digits.target.accuracy >= 0.95


def test_layer_shapes_same_padding_and_strides():
    spec = parse_workload(with_(input_shape=[7, 5, 1], layers=[
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
        {"type": "maxpool2d", "pool_size": 2, "padding": "same"}, {"type": "flatten"}, {"type": "dense", "units": 4}]))
    assert layer_shapes(spec.input_shape, spec.layers) == [(4, 3, 2), (2, 2, 2), (8,), (4,)]


def test_file_errors(tmp_path):
    bad_bytes = tmp_path / "bin.toml"
    bad_bytes.write_bytes(b"name = \"\xff\xfe\"\n")
    with pytest.raises(WorkloadError, match="not UTF-8"):
        load_file(bad_bytes)
    bad_toml = tmp_path / "syntax.toml"
    bad_toml.write_text("name = \n")
    with pytest.raises(WorkloadError, match=r"syntax.toml: not valid TOML"):
        load_file(bad_toml)
    with pytest.raises(WorkloadError, match="cannot read"):
        load_file(tmp_path / "absent.toml")


def test_by_name_by_path_and_unknown_names_list_available(tmp_path, workload_dir):
    assert load_workload("tinycnn").name == "tinycnn"
    own = tmp_path / "own.toml"
    own.write_text(textwrap.dedent("""
        name = "own"
        input_shape = [3]
        classes = 2
        batch_size = 1
        [[layers]]
        type = "dense"
        units = 2
    """))
    assert load_workload(str(own)).name == "own"
    with pytest.raises(WorkloadError, match=r"unknown workload 'nope'; available: .*cnn.*tinycnn"):
        load_workload("nope")


def test_loading_never_executes_code(tmp_path):
    evil = tmp_path / "evil.toml"
    evil.write_text('name = "__import__(\'os\').system(\'touch pwned\')"\ninput_shape = [3]\nclasses = 2\n'
                    'batch_size = 1\n[[layers]]\ntype = "dense"\nunits = 2\n')
    spec = load_workload(str(evil))
    assert spec.name.startswith("__import__") and not (tmp_path / "pwned").exists()
