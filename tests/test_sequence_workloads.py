"""Token workloads: the schema's rules, the token sources with a known optimum, FLOPs of the sequence kinds,
and a loss target through the CLI (fake runner). The runners' own sequence tests are tests/test_seq_*.py."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pytest

from fwbench import flops
from fwbench.data import DataSource
from fwbench.errors import WorkloadError
from fwbench.markov import MarkovChain
from fwbench.tables import tta_rows
from fwbench.workload import load_workload
from fwbench.workload_spec import parameter_count, parse_workload
from tests.conftest import TINY_LM, invoke


def test_bundled_sequence_workloads():
    t = load_workload("transformer")
    assert t.tokens and t.per_token and t.label_shape == (64,) and parameter_count(t) == 470_784
    lstm = load_workload("lstm")
    assert lstm.tokens and not lstm.per_token and lstm.label_shape == () and parameter_count(lstm) == 101_380
    assert t.target.metric == "loss" and lstm.target.metric == "accuracy"


LM = """
name = "lm"
input_shape = [8]
vocabulary = 12
classes = 12
batch_size = 4
layers = [{ type = "embedding", input_dim = 12, output_dim = 4 }, { type = "dense", units = 12 }]
"""


def _error(text: str, **replace: str) -> WorkloadError:
    for old, new in replace.items():
        text = text + "\n" + new if old == "<END>" else text.replace(old, new)
    with pytest.raises(WorkloadError) as exc:
        parse_workload(tomllib.loads(text), "t.toml")
    return exc.value


@pytest.mark.parametrize("edit,field,words", [
    ({"vocabulary = 12\n": ""}, "layers[0]", "set vocabulary"),
    ({'{ type = "embedding", input_dim = 12, output_dim = 4 }': '{ type = "dense", units = 4 }'}, "layers[0]",
     "only an embedding"),
    ({"input_dim = 12": "input_dim = 5"}, "layers[0].input_dim", "cover the vocabulary"),
    ({"input_shape = [8]": "input_shape = [8, 8, 1]"}, "input_shape", "[time]"),
    ({'{ type = "dense", units = 12 }': '{ type = "lstm", units = 3 }'}, "layers[1]", "logits"),
    ({'{ type = "dense", units = 12 }': '{ type = "position_embedding", max_length = 4 }, { type = "dense", units = 12 }'},
     "layers[1]", "more than max_length"),
    ({'{ type = "dense", units = 12 }': '{ type = "layernorm" }, { type = "dense", units = 12 }'},
     "layers[1].epsilon", "missing"),
    ({"<END>": '[data]\nsource = "recall"'}, "data.source", "whole sequence"),
    ({"<END>": '[data]\nsource = "markov"\nalphabet = 13'}, "data.alphabet", "at most"),
    ({"<END>": '[target]\nexcess_loss = 0.1'}, "target.excess_loss", "known exactly"),
    ({"<END>": '[target]\nexcess_loss = 0.1\naccuracy = 0.5'}, "target.accuracy",
     "exactly one"),
])
def test_token_workload_rules_name_the_field(edit, field, words):
    err = _error(LM, **edit)
    assert err.field == field and words in err.message, str(err)


def test_markov_source_is_deterministic_shifted_and_its_optimum_is_exact():
    spec = parse_workload(tomllib.loads(LM + '[data]\nsource = "markov"\nalphabet = 5'))
    data = DataSource(spec)
    x, y = data.batch(3)
    x2, y2 = DataSource(spec).batch(3)
    np.testing.assert_array_equal(x, x2)
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64 and x.max() < 5
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # the labels are the next tokens
    opt = data.optimum()
    chain = MarkovChain.seeded(0, 5)
    assert opt["entropy_rate"] == pytest.approx(chain.entropy_rate())
    assert chain.entropy_rate() < opt["optimal_loss"] < chain.first_step_entropy() < math.log(5)
    # the chain's Bayes loss on many sequences converges to the optimal expected loss
    many = chain.sample(np.random.default_rng(9), 4000, 9)
    assert chain.bayes_loss(many) == pytest.approx(chain.optimal_loss(8), abs=0.02)
    # the stationary distribution is stationary
    pi = chain.stationary()
    nxt = np.einsum("ab,abc->bc", pi, chain.transitions)
    np.testing.assert_allclose(nxt, pi, atol=1e-12)


def test_recall_labels_are_the_first_token_and_the_rest_is_noise():
    spec = load_workload("lstm")
    x, y = DataSource(spec).batch(0)
    np.testing.assert_array_equal(x[:, 0], y)
    assert (x[:, 1:] >= spec.classes).all() and x.max() < spec.alphabet


def test_flops_of_attention_and_recurrent_nodes():
    spec = load_workload("transformer")
    by_kind = {}
    for lf in flops.layer_flops(spec):
        by_kind.setdefault(lf.kind, lf)
    t, d, h, k = 64, 128, 4, 32
    proj, attn = 2 * t * d * h * k, 2 * t * t * h * k
    mha = by_kind["multi_head_attention"]
    assert mha.forward == 4 * proj + 2 * attn and mha.weight_grad == 4 * proj
    assert mha.input_grad == proj + 2 * 2 * attn + 3 * proj  # its input depends on the embeddings
    assert by_kind["dense"].forward == 2 * t * d * 4 * d  # per token
    lstm = {lf.kind: lf for lf in flops.layer_flops(load_workload("lstm"))}["lstm"]
    w, r = 2 * 16 * 64 * 4 * 128, 2 * 16 * 128 * 4 * 128
    assert (lstm.forward, lstm.weight_grad, lstm.input_grad) == (w + r, w + r, r + w)


def test_a_loss_target_through_the_cli_records_the_optimum(cli, tmp_path):
    wl = tmp_path / "lm.toml"
    wl.write_text(TINY_LM + '[data]\nsource = "markov"\nalphabet = 4\n[target]\nexcess_loss = 0.05\nmax_steps = 6\n'
                  'eval_every = 3\n')
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "fake", "-w", str(wl), "-o", str(out))
    assert res.exit_code == 0, res.output
    cell = json.loads(out.read_text())["cells"][0]
    tta = cell["time_to_accuracy"]
    assert tta["metric"] == "loss" and not tta["reached"]  # the fake runner predicts zeros: loss = log(11)
    assert tta["final_loss"] == pytest.approx(math.log(11)) and len(tta["curve"]) == 2
    assert tta["target_loss"] == pytest.approx(tta["optimum_loss"] + 0.05)
    assert tta["entropy_rate"] < tta["optimal_expected_loss"]
    row = tta_rows(json.loads(out.read_text()))["tinylm"][0]
    assert row["reached"] == "NO" and row["target"].startswith("loss <= ") and "loss 2.3979" in row["final"]
    assert "time to target" in res.output
