"""The graph form of a workload: named nodes, inputs, merges, blocks with repeat and args (pure, no framework)."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

from fwbench.errors import WorkloadError
from fwbench.workload import load_workload
from fwbench.workload_graph import MAX_NODES
from fwbench.workload_spec import WorkloadSpec, layer_shapes, parameter_count, parse_workload
from tests.conftest import TINY_GRAPH, invoke

HEAD = 'name = "g"\ninput_shape = [8, 8, 2]\nclasses = 3\nbatch_size = 2\n'


def parse(text: str) -> WorkloadSpec:
    return parse_workload(tomllib.loads(HEAD + textwrap.dedent(text)), "g.toml")


def error(text: str) -> WorkloadError:
    with pytest.raises(WorkloadError) as info:
        parse(text)
    return info.value


def test_a_plain_list_reads_each_previous_node_and_gets_generated_names():
    spec = load_workload("cnn")
    assert [l.name for l in spec.layers] == [f"#{i}" for i in range(len(spec.layers))]
    assert [l.inputs for l in spec.layers] == [("input",)] + [(f"#{i}",) for i in range(len(spec.layers) - 1)]


def test_named_inputs_merge_with_add_and_concat():
    spec = parse("""
        layers = [
          { type = "conv2d", filters = 2, kernel_size = 3, padding = "same", name = "a" },
          { type = "conv2d", filters = 2, kernel_size = 1, name = "b", inputs = "input" },
          { type = "add", inputs = ["a", "b"], name = "sum" },
          { type = "concat", inputs = ["sum", "input", "a"] },
          { type = "global_avgpool2d" },
          { type = "dense", units = 3 },
        ]""")
    assert [l.inputs for l in spec.layers][:4] == [("input",), ("input",), ("a", "b"), ("sum", "input", "a")]
    assert layer_shapes(spec.input_shape, spec.layers)[3] == (8, 8, 6)


def test_blocks_expand_with_args_prefixed_names_and_each_instance_reading_the_last():
    spec = parse("""
        layers = [
          { type = "block", block = "res", name = "s", repeat = 2, args = { f = 2, act = "relu" } },
          { type = "block", block = "res", args = { f = 2, act = "gelu" } },
          { type = "flatten" },
          { type = "dense", units = 3 },
        ]
        [blocks.res]
        layers = [
          { type = "conv2d", filters = "$f", kernel_size = 3, padding = "same", activation = "$act", name = "c" },
          { type = "add", inputs = ["c", "input"] },
        ]""")
    names = [l.name for l in spec.layers]
    assert names == ["s.1/c", "s.1/#1", "s.2/c", "s.2/#1", "res.1/c", "res.1/#1", "#6", "#7"]
    assert spec.layers[3].inputs == ("s.2/c", "s.1/#1")  # "input" inside a block is the block's input
    assert spec.layers[4].inputs == ("s.2/#1",) and spec.layers[4].activation == "gelu"
    assert spec.layers[0].filters == 2 and spec.layers[0].activation == "relu"


def test_the_bundled_graphs_are_short_and_have_the_papers_sizes():
    resnet = load_workload("resnet20")
    assert parameter_count(resnet) == 272_474  # He et al.: 0.27 M
    convs = [l for l in resnet.layers if l.kind == "conv2d"]
    assert len(convs) == 19 + 2  # 6n + 1 = 19 3x3 convs, plus the two 1x1 projections (the dense makes 20)
    assert sum(1 for l in resnet.layers if l.kind == "add") == 9
    assert parameter_count(load_workload("mobilenet")) == 213_586
    assert sum(1 for l in load_workload("mobilenet").layers if l.kind == "depthwise_conv2d") == 13
    from tests.conftest import REPO

    assert len((REPO / "fwbench" / "workloads" / "resnet20.toml").read_text().splitlines()) < 120


def test_the_stored_graph_reads_back_identically():
    for spec in (load_workload("resnet20"), load_workload("mobilenet"), parse_workload(tomllib.loads(TINY_GRAPH))):
        assert WorkloadSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("text, field, words", [
    # a cycle: a node reading itself, or a later node
    ('layers = [{ type = "flatten", name = "f", inputs = "f" }, { type = "dense", units = 3 }]',
     "layers[0].inputs", "reads itself"),
    ('layers = [{ type = "add", inputs = ["input", "later"] }, { type = "flatten", name = "later" },'
     ' { type = "dense", units = 3 }]', "layers[0].inputs", "'later' comes later"),
    ('layers = [{ type = "flatten", inputs = "nosuch" }, { type = "dense", units = 3 }]',
     "layers[0].inputs", "unknown node 'nosuch'"),
    # merges
    ('layers = [{ type = "conv2d", filters = 4, kernel_size = 1, name = "c" }, { type = "add", inputs = ["c", "input"] },'
     ' { type = "flatten" }, { type = "dense", units = 3 }]', "layers[1]", "add needs inputs of one shape"),
    ('layers = [{ type = "maxpool2d", pool_size = 2, name = "p" }, { type = "concat", inputs = ["p", "input"] },'
     ' { type = "flatten" }, { type = "dense", units = 3 }]', "layers[1]", "concat joins the last axis"),
    ('layers = [{ type = "add" }, { type = "flatten" }, { type = "dense", units = 3 }]', "layers[0]", "two or more"),
    ('layers = [{ type = "flatten", name = "a" }, { type = "dense", units = 3, inputs = ["a", "a"] }]',
     "layers[1].inputs", "dense reads one node"),
    # a dead branch, duplicates, names
    ('layers = [{ type = "flatten", name = "a" }, { type = "flatten", inputs = "input" }, { type = "dense", units = 3 }]',
     "layers[0]", "not read by any later node"),
    ('layers = [{ type = "flatten", name = "a" }, { type = "dense", units = 3, name = "a" }]', "layers[1].name",
     "duplicate node name 'a'"),
    ('layers = [{ type = "flatten", name = "input" }, { type = "dense", units = 3 }]', "layers[0].name", "not 'input'"),
    ('layers = [{ type = "flatten", name = "a b" }, { type = "dense", units = 3 }]', "layers[0].name", "letters"),
    ('layers = [{ type = "flatten", inputs = [] }, { type = "dense", units = 3 }]', "layers[0].inputs", "node name"),
    # kinds
    ('layers = [{ type = "conv2d", filters = 3, kernel_size = 1, groups = 2 }, { type = "flatten" },'
     ' { type = "dense", units = 3 }]', "layers[0]", "groups = 2 must divide"),
    ('layers = [{ type = "zero_padding2d", pad = [1, 2] }, { type = "flatten" }, { type = "dense", units = 3 }]',
     "layers[0].pad", "[top, bottom, left, right]"),
    ('layers = [{ type = "global_avgpool2d" }, { type = "global_avgpool2d" }, { type = "dense", units = 3 }]',
     "layers[1]", "[height, width, channels]"),
])
def test_graph_errors_name_the_node_and_say_what_is_wrong(text, field, words):
    err = error(text)
    assert err.file == "g.toml" and err.field == field and words in err.message, str(err)


@pytest.mark.parametrize("text, field, words", [
    ('layers = [{ type = "block", block = "nosuch" }, { type = "dense", units = 3 }]', "layers[0].block",
     "unknown block 'nosuch'"),
    ('layers = [{ type = "block", block = "b", args = { f = 2 } }, { type = "flatten" }, { type = "dense", units = 3 }]\n'
     '[blocks.b]\nlayers = [{ type = "conv2d", filters = "$g", kernel_size = 1 }]', "blocks.b.layers[0].filters",
     "'$g' is not given"),
    ('layers = [{ type = "block", block = "b", args = { f = 2, unused = 1 } }, { type = "flatten" },'
     ' { type = "dense", units = 3 }]\n[blocks.b]\nlayers = [{ type = "conv2d", filters = "$f", kernel_size = 1 }]',
     "layers[0].args.unused", "is not used by block 'b'"),
    ('layers = [{ type = "block", block = "b" }, { type = "dense", units = 3 }]\n'
     '[blocks.b]\nlayers = [{ type = "block", block = "b" }]', "blocks.b.layers[0].type", "do not nest"),
    ('layers = [{ type = "block", block = "b", args = { f = "x" } }, { type = "flatten" }, { type = "dense", units = 3 }]\n'
     '[blocks.b]\nlayers = [{ type = "conv2d", filters = "$f", kernel_size = 1 }]', "blocks.b.layers[0].filters",
     "integer"),
    ('layers = [{ type = "block", block = "b", repeat = 0 }, { type = "dense", units = 3 }]\n'
     '[blocks.b]\nlayers = [{ type = "flatten" }]', "layers[0].repeat", "from 1"),
    ('layers = [{ type = "flatten" }, { type = "dense", units = 3 }]\n[blocks.b]\nlayers = []', "blocks.b.layers",
     "non-empty"),
    ('layers = [{ type = "flatten" }, { type = "dense", units = 3 }]\n[blocks.b]\nlayers = [{ type = "flaten" }]',
     "blocks.b", "no layer uses it"),
    ('layers = [{ type = "block", block = "b", color = 1 }, { type = "dense", units = 3 }]\n'
     '[blocks.b]\nlayers = [{ type = "flatten" }]', "layers[0].color", "unknown key for a block instance"),
])
def test_block_errors_name_the_block_layer_or_instance(text, field, words):
    err = error(text)
    assert err.field == field and words in err.message, str(err)


def test_a_repeat_that_explodes_the_node_count_is_refused_before_expanding():
    err = error(f"""
        layers = [{{ type = "block", block = "b", repeat = {MAX_NODES} }}, {{ type = "dense", units = 3 }}]
        [blocks.b]
        layers = [{{ type = "activation" }}, {{ type = "activation" }}]""")
    assert err.field == "layers[0].repeat" and f"past {MAX_NODES} nodes" in err.message
    # two instances that each fit but together do not
    half = MAX_NODES // 2
    err = error(f"""
        layers = [{{ type = "block", block = "b", repeat = {half} }}, {{ type = "block", block = "b", repeat = {half} }},
                  {{ type = "flatten" }}, {{ type = "dense", units = 3 }}]
        [blocks.b]
        layers = [{{ type = "activation" }}]""")
    assert "past" in err.message or "more than" in err.message


def test_the_cli_refuses_a_cyclic_graph_with_exit_2_naming_file_and_node(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cyc.toml").write_text(HEAD + 'layers = [{ type = "add", inputs = ["input", "b"], name = "a" },'
                                              ' { type = "flatten", name = "b" }, { type = "dense", units = 3 }]\n')
    res = invoke(cli, "run", "-r", "fake", "-w", "./cyc.toml", "-o", str(tmp_path / "r.json"))
    assert res.exit_code == 2
    assert "cyc.toml:layers[0].inputs" in res.output and "'b' comes later" in res.output
    assert not (tmp_path / "r.json").exists()
