"""Sequence workloads in PyTorch: the fx model built from nn.Embedding, nn.LayerNorm, the packed-QKV attention
with F.scaled_dot_product_attention, nn.LSTM and nn.GRU against the NumPy reference; every Keras -> PyTorch
conversion broken on purpose (the reference must then disagree); several sequence lengths in one session;
recompiles counted by torch-compile; and the torch runner end to end on TINY_LM."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pytest

from fwbench import layout, parity, reference
from fwbench.data import DataSource
from fwbench.job import Job, RunnerOptions
from fwbench.weights import init_params
from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_LM, TINY_SEQ, invoke

torch = pytest.importorskip("torch")
from fwbench.runners import torch_runner  # noqa: E402

SPECS = {"tinylm": TINY_LM, "tinyseq": TINY_SEQ}


def spec_of(name):
    return parse_workload(tomllib.loads(SPECS[name]))


def randomize(params, seed=0):
    """Non-zero biases (attention, LSTM, both GRU biases), layer-norm parameters and tables, so that their
    conversion matters: the initial biases are zeros, which would hide a bias put in the wrong place."""
    rng = np.random.default_rng(seed)
    return [{k: (v + rng.uniform(-0.5, 0.5, v.shape)).astype(np.float32) if "kernel" not in k else v
             for k, v in p.items()} for p in params]


def torch_forward(spec, params, x, dtype=torch.float32):
    model = torch_runner.build_module(spec, params).to(dtype).eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).double().numpy()


def assert_matches(got, want, tol=1e-5):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, np.abs(want).max()))


def assert_differs(got, want, labels, loss=True):
    """The broken model's logits differ from the reference's (by over 10x the 1e-5 of the forward tests) and,
    with ``loss``, by enough that the parity check's initial-loss comparison (rtol = atol = 1e-4) fails."""
    assert got.shape == want.shape
    assert np.abs(got - want).max() > 1e-4 * max(1.0, np.abs(want).max())
    if loss:
        assert not parity.close(reference.cross_entropy(got, labels), reference.cross_entropy(want, labels),
                                parity.TOLERANCES["fp32"][0])


def _session(spec, cls=None, **options):
    cls = cls or torch_runner.TorchSession
    runner = "torch-compile" if cls.compiled else "torch"
    s = cls(Job(workload=spec.to_dict(), runner=runner, device="cpu", options=RunnerOptions(threads=1, **options)))
    s.setup()
    s.build(spec, init_params(spec))
    return s


# --- the model against the reference ------------------------------------------------------------------

@pytest.mark.parametrize("params_of", [init_params, lambda s: randomize(init_params(s))], ids=["init", "random"])
@pytest.mark.parametrize("name", list(SPECS))
def test_forward_matches_reference_float32(name, params_of):
    spec = spec_of(name)
    params = params_of(spec)
    x = DataSource(spec).batch(0)[0]
    assert x.dtype == np.int64
    want = reference.forward(spec, params, x)
    assert want.shape == ((8, 6, 11) if name == "tinylm" else (8, 3))
    assert_matches(torch_forward(spec, params, x), want, 1e-5)


@pytest.mark.parametrize("name", list(SPECS))
def test_first_training_loss_and_predict_match_reference(name):
    spec = spec_of(name)
    x, y = DataSource(spec).batch(0)
    want = reference.forward(spec, init_params(spec), x)
    s = _session(spec)
    tx, ty = s.put((x, y))
    assert tx.dtype == ty.dtype == torch.int64 and tuple(ty.shape) == y.shape  # ids stay integers
    assert_matches(s.predict(x), want, 1e-5)  # [n, T, C] for the per-token model
    assert s.value(s.train_step((tx, ty))) == pytest.approx(reference.cross_entropy(want, y), rel=1e-5)
    assert s.batchnorm_stats() == []


def test_per_token_loss_is_the_mean_over_batch_and_time():
    logits = torch.randn(3, 4, 5, dtype=torch.float64)
    labels = torch.randint(0, 5, (3, 4))
    got = float(torch_runner.cross_entropy(logits, labels))
    assert got == pytest.approx(reference.cross_entropy(logits.numpy(), labels.numpy()), rel=1e-12)
    per_sample = [float(torch.nn.functional.cross_entropy(logits[i], labels[i])) for i in range(3)]
    assert got == pytest.approx(np.mean(per_sample), rel=1e-12)


def test_model_uses_pytorch_building_blocks():
    spec = spec_of("tinylm")
    model = torch_runner.build_module(spec, init_params(spec))
    kinds = {type(m) for m in model.modules()}
    assert {torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.LSTM, torch.nn.GRU, torch_runner.SelfAttention,
            torch_runner.PositionEmbedding} <= kinds
    attn = next(m for m in model.modules() if isinstance(m, torch_runner.SelfAttention))
    assert attn.c_attn.weight.shape == (3 * 2 * 3, 8) and attn.c_proj.weight.shape == (8, 6) and attn.causal
    lns = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [m.eps for m in lns] == [1e-5, 1e-3]
    rnns = [m for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
    assert all(m.batch_first and m.num_layers == 1 and not m.bidirectional for m in rnns)
    assert "for " not in model.code  # straight-line fx code


# --- converters that break: each must make the forward differ from the reference ---------------------

def _broken(name="tinylm", random=True):
    """(PyTorch logits, reference logits, labels) on batch 0 (randomized biases unless ``random`` is false)."""
    spec = spec_of(name)
    params = randomize(init_params(spec)) if random else init_params(spec)
    x, y = DataSource(spec).batch(0)
    return torch_forward(spec, params, x), reference.forward(spec, params, x), y


@pytest.mark.parametrize("name", list(SPECS))
def test_fixture_is_sound_before_breaking(name):
    got, want, _ = _broken(name)
    assert_matches(got, want, 1e-5)


def _swap_blocks(a, i, j, n, axis=-1):
    """Swap gate blocks ``i`` and ``j`` of ``n`` along ``axis``."""
    blocks = np.split(a, n, axis=axis)
    blocks[i], blocks[j] = blocks[j], blocks[i]
    return np.concatenate(blocks, axis=axis)


@pytest.mark.parametrize("name", list(SPECS))
def test_lstm_gate_order_swapped_is_caught(monkeypatch, name):
    original = layout.lstm_weights

    def f_and_g_swapped(p):  # PyTorch's f and g blocks filled from Keras's c and f
        return {k: _swap_blocks(v, 1, 2, 4, axis=0) for k, v in original(p).items()}

    monkeypatch.setattr(layout, "lstm_weights", f_and_g_swapped)
    assert_differs(*_broken(name))


def test_lstm_bias_counted_twice_is_caught(monkeypatch):
    original = layout.lstm_weights
    monkeypatch.setattr(layout, "lstm_weights", lambda p: {**original(p), "bias_hh_l0": p["bias"].copy()})
    assert_differs(*_broken())


@pytest.mark.parametrize("name", list(SPECS))
def test_gru_keras_block_order_is_caught(monkeypatch, name):
    monkeypatch.setattr(layout, "gru_gates_to_torch", lambda a: a)  # z, r, h used as r, z, n
    assert_differs(*_broken(name))


def test_gru_input_and_recurrent_biases_swapped_is_caught(monkeypatch):
    original = layout.gru_weights

    def swapped(p):
        w = original(p)
        return {**w, "bias_ih_l0": w["bias_hh_l0"], "bias_hh_l0": w["bias_ih_l0"]}

    monkeypatch.setattr(layout, "gru_weights", swapped)
    assert_differs(*_broken())


@pytest.mark.parametrize("name", list(SPECS))
def test_qkv_packing_with_q_and_k_swapped_is_caught(monkeypatch, name):
    original = layout.attention_in_projection

    def q_k_swapped(p):
        return original({**p, "query_kernel": p["key_kernel"], "key_kernel": p["query_kernel"],
                         "query_bias": p["key_bias"], "key_bias": p["query_bias"]})

    monkeypatch.setattr(layout, "attention_in_projection", q_k_swapped)
    # TINY_SEQ's one non-causal head, mean-pooled, moves its logits by ~1e-3 but its loss by under 1e-4: the
    # forward test catches it there, the initial-loss parity would not
    assert_differs(*_broken(name), loss=name == "tinylm")


def test_qkv_packing_key_dim_major_is_caught(monkeypatch):
    """Heads interleaved (row ``j * heads + head`` instead of ``head * key_dim + j``) split q, k and v into the
    wrong heads (TINY_LM has 2 heads)."""
    original = layout.attention_in_projection

    def key_dim_major(p):
        return original({k: v if k.startswith("output_") else v.swapaxes(-1, -2) for k, v in p.items()})

    monkeypatch.setattr(layout, "attention_in_projection", key_dim_major)
    assert_differs(*_broken())


def test_output_projection_key_dim_major_is_caught(monkeypatch):
    def key_dim_major(p):
        h, k, d = p["output_kernel"].shape
        return np.ascontiguousarray(p["output_kernel"].transpose(1, 0, 2).reshape(h * k, d).T), p["output_bias"]

    monkeypatch.setattr(layout, "attention_out_projection", key_dim_major)
    assert_differs(*_broken())


def test_attention_without_causal_mask_is_caught(monkeypatch):
    original = torch_runner.SelfAttention.__init__

    def never_causal(self, d, heads, key_dim, causal):
        original(self, d, heads, key_dim, False)

    monkeypatch.setattr(torch_runner.SelfAttention, "__init__", never_causal)
    assert_differs(*_broken())


def test_position_table_from_its_end_is_caught(monkeypatch):
    """TINY_LM's table has 8 rows for 6 steps: the first 6 rows are added, not the last."""
    monkeypatch.setattr(torch_runner.PositionEmbedding, "forward", lambda self, x: x + self.weight[-x.shape[1]:])
    assert_differs(*_broken())


def test_embedding_rows_shifted_is_caught(monkeypatch):
    original = layout.to_channels_first

    def shifted(spec, params):
        out = original(spec, params)
        return [{**p, "embeddings": np.roll(p["embeddings"], 1, axis=0)} if layer.kind == "embedding" else p
                for layer, p in zip(spec.layers, out)]

    monkeypatch.setattr(layout, "to_channels_first", shifted)
    monkeypatch.setattr(torch_runner, "to_channels_first", shifted)
    assert_differs(*_broken())


def test_layernorm_epsilon_ignored_is_caught(monkeypatch):
    layer_norm = torch.nn.LayerNorm
    monkeypatch.setattr(torch_runner.nn, "LayerNorm", lambda d, eps: layer_norm(d, eps=1e-3))  # Keras's default
    # TINY_LM's first layer norm has epsilon 1e-5 and reads the initial embeddings (|x| <= 0.05), whose variance
    # (about 1e-3) the wrong epsilon would nearly double
    assert_differs(*_broken(random=False))


def test_first_step_instead_of_last_is_caught(monkeypatch):
    monkeypatch.setattr(torch_runner, "LAST_STEP", (slice(None), 0))
    assert_differs(*_broken("tinyseq"))  # the LSTM's sequence_pool "last" and the GRU's last state


# --- any sequence length in one session ----------------------------------------------------------------

def test_one_session_trains_and_predicts_at_several_lengths():
    spec = spec_of("tinylm")
    params = init_params(spec)
    x, y = DataSource(spec).batch(0)
    s = _session(spec)
    first = s.value(s.train_step(s.put((x[:, :4], y[:, :4]))))  # shorter than the spec's 6, first of all
    assert first == pytest.approx(reference.cross_entropy(reference.forward(spec, params, x[:, :4]), y[:, :4]),
                                  rel=1e-5)
    for i, t in enumerate((6, 5, 8), 1):  # 8: as long as the position table
        xi, yi = DataSource(spec).batch(i)
        xi, yi = np.tile(xi, 2)[:, :t], np.tile(yi, 2)[:, :t]
        assert np.isfinite(s.value(s.train_step(s.put((xi, yi)))))
        assert s.predict(xi).shape == (8, t, 11)
    assert s.retraces() is None  # eager: nothing to retrace


class EagerBackendCompile(torch_runner.TorchCompileSession):
    """torch-compile with dynamo's ``eager`` backend: the same tracing, guards and recompiles, without
    inductor's code generation (minutes on this machine)."""

    backend = "eager"


@pytest.mark.parametrize("name", list(SPECS))
def test_compile_recompiles_once_for_new_lengths(name):
    """dynamic=None: the first length compiles statically, the second recompiles with time symbolic, a third
    reuses that. Dynamo cannot resume after an nn.LSTM / nn.GRU: TINY_LM is compiled up to its GRU; TINY_SEQ,
    whose LSTM comes second, runs its fx forward eagerly and compiles only its attention module's own forward."""
    spec = spec_of(name)
    x, y = DataSource(spec).batch(0)
    s = _session(spec, EagerBackendCompile)
    lengths = (5, 3, 4)
    for t in lengths:
        s.value(s.train_step(s.put((x[:, :t], y[:, :t] if spec.per_token else y))))
        if t == lengths[0]:
            assert s.retraces() == 0
    settings = s.settings()
    assert settings["dynamic_shapes"].startswith("torch.compile(dynamic=None)") and "compile_graph_breaks" in settings
    assert any("RNN, GRU, or LSTM" in k for k in settings["compile_graph_breaks"])
    assert s.retraces() == 1 and settings["compile_graphs"] == 2  # one graph per length: 5, then 3 and 4


def test_compile_of_attention_only_model_recompiles_once():
    spec = parse_workload({
        "name": "attn", "input_shape": [8], "vocabulary": 7, "classes": 7, "batch_size": 2,
        "layers": [{"type": "embedding", "input_dim": 7, "output_dim": 4},
                   {"type": "position_embedding", "max_length": 8},
                   {"type": "multi_head_attention", "heads": 2, "key_dim": 2, "causal": True},
                   {"type": "dense", "units": 7}]})
    x, y = DataSource(spec).batch(0)
    s = _session(spec, EagerBackendCompile)
    for t in (4, 6, 8, 5):
        s.value(s.train_step(s.put((x[:, :t], y[:, :t]))))
    assert s.retraces() == 1 and "compile_graph_breaks" not in s.settings()


# --- settings and precision ----------------------------------------------------------------------------

def test_settings_record_the_kernels_used():
    s = _session(spec_of("tinylm"))
    st = s.settings()
    assert st["layout"] == "[batch, time, features]"
    assert st["attention_impl"].startswith("F.scaled_dot_product_attention, backend: ")
    assert "CPU" in st["attention_impl"]
    for key in ("lstm_impl", "gru_impl"):
        assert st[key] and "probe failed" not in st[key]
    if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        assert st["lstm_impl"].startswith("oneDNN")
    assert st["gru_impl"].startswith("aten per-step cells")  # PyTorch has no fused CPU GRU
    only_lstm = parse_workload({"name": "l", "input_shape": [3], "vocabulary": 5, "classes": 2, "batch_size": 2,
                                "layers": [{"type": "embedding", "input_dim": 5, "output_dim": 3},
                                           {"type": "lstm", "units": 2}, {"type": "dense", "units": 2}]})
    assert {k for k in _session(only_lstm).settings() if k.endswith("_impl")} == {"lstm_impl"}


def test_bf16_autocast_keeps_token_ids_and_agrees():
    spec = parse_workload({
        "name": "attn", "input_shape": [6], "vocabulary": 9, "classes": 9, "batch_size": 4, "seed": 5,
        "layers": [{"type": "embedding", "input_dim": 9, "output_dim": 8},
                   {"type": "position_embedding", "max_length": 6},
                   {"type": "layernorm", "epsilon": 1e-5},
                   {"type": "multi_head_attention", "heads": 2, "key_dim": 4, "causal": True},
                   {"type": "dense", "units": 9}]})
    x, y = DataSource(spec).batch(0)
    s = _session(spec, precision="bf16")
    tx, _ = s.put((x, y))
    assert tx.dtype == torch.int64
    want = reference.cross_entropy(reference.forward(spec, init_params(spec), x), y)
    assert s.value(s.train_step(s.put((x, y)))) == pytest.approx(want, rel=2e-2)


# --- layout converters, in NumPy -----------------------------------------------------------------------

def test_gru_block_reorder_and_bias_split():
    u = 2
    kernel = np.concatenate([np.full((3, u), v) for v in (1.0, 2.0, 3.0)], axis=1)  # Keras z, r, h
    bias = np.stack([np.repeat([1.0, 2.0, 3.0], u), np.repeat([10.0, 20.0, 30.0], u)])
    w = layout.gru_weights({"kernel": kernel, "recurrent_kernel": kernel[:u], "bias": bias})
    assert w["weight_ih_l0"].shape == (3 * u, 3) and w["weight_hh_l0"].shape == (3 * u, u)
    assert list(w["weight_ih_l0"][::u, 0]) == [2.0, 1.0, 3.0]  # PyTorch r, z, n
    assert list(w["bias_ih_l0"][::u]) == [2.0, 1.0, 3.0] and list(w["bias_hh_l0"][::u]) == [20.0, 10.0, 30.0]


def test_attention_projection_layout_is_head_major():
    d, h, k = 2, 3, 4
    q = np.arange(d * h * k, dtype=np.float64).reshape(d, h, k)
    p = {"query_kernel": q, "key_kernel": q + 100, "value_kernel": q + 200,
         "query_bias": np.zeros((h, k)), "key_bias": np.ones((h, k)), "value_bias": np.full((h, k), 2.0),
         "output_kernel": np.arange(h * k * d, dtype=np.float64).reshape(h, k, d), "output_bias": np.zeros(d)}
    w, b = layout.attention_in_projection(p)
    assert w.shape == (3 * h * k, d) and b.shape == (3 * h * k,)
    assert w[1 * k + 2, 1] == q[1, 1, 2] and w[h * k + 0, 0] == q[0, 0, 0] + 100  # row head*k + j, then k
    assert list(b[::h * k]) == [0.0, 1.0, 2.0]
    ow, _ = layout.attention_out_projection(p)
    assert ow.shape == (d, h * k) and ow[1, 2 * k + 3] == p["output_kernel"][2, 3, 1]


# --- end to end ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torch_runner_trains_tinylm_and_tinyseq_in_workers(cli, tmp_path, workload_dir):
    """`fwbench run -r torch` on the sequence workloads: timing and parity phases in real workers; the initial
    loss is the reference's, and the K-step loss the same K Adam steps replayed in float64."""
    out = tmp_path / "run.json"
    result = invoke(cli, "run", "-r", "torch", "-w", "tinylm", "-w", "tinyseq", "--threads", "1", "--quick",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    cells = {c["workload"]: c for c in json.loads(out.read_text())["cells"]}
    assert set(cells) == {"tinylm", "tinyseq"}
    for name, cell in cells.items():
        assert cell["status"] == "ok", cell.get("reason")
        assert cell["final_loss"] > 0 and len(cell["step_s"]) >= 3
        st = cell["settings"]
        assert {"lstm_impl", "gru_impl", "attention_impl"} <= set(st) and st["compiled"] is False
        spec = spec_of(name)
        p = cell["parity"]
        assert len(p["losses"]) == spec.parity_steps == 3
        x, y = DataSource(spec).batch(0)
        want = reference.cross_entropy(reference.forward(spec, init_params(spec), x), y)
        assert p["initial_loss"] == pytest.approx(want, rel=1e-5)
        assert p["kstep_loss"] == pytest.approx(_float64_replay(spec), rel=2e-3, abs=2e-3)  # parity's tolerance


def _float64_replay(spec):
    """The loss after K - 1 Adam steps, in float64 (the same PyTorch model and optimizer)."""
    model = torch_runner.build_module(spec, init_params(spec)).double()
    opt = torch_runner.make_optimizer(spec, model.parameters())
    data = DataSource(spec)
    for i in range(spec.parity_steps):
        x, y = (torch.from_numpy(a) for a in data.batch(i))
        opt.zero_grad()
        loss = torch_runner.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return float(loss.detach())


def test_compile_recompiles_as_the_seq_length_probe_counts_them():
    """The seq-length probe's sequence on the full-size transformer: one session, lengths 32, 48, 64, the
    retraces read before the first step and after each length: none for 32 (the first compile), one for 48
    (time made symbolic), none for 64."""
    from fwbench.workload import load_workload

    spec = load_workload("transformer")
    x, y = DataSource(spec).batch(0)
    s = _session(spec, EagerBackendCompile)
    before, per_length = s.retraces(), []
    for t in (32, 48, 64):
        s.value(s.train_step(s.put((x[:, :t], y[:, :t]))))
        per_length.append(s.retraces() - before)
        before = s.retraces()
    assert per_length == [0, 1, 0]


ONE_LSTM = """
name = "onelstm"
input_shape = [7]
vocabulary = 6
classes = 3
batch_size = 8
seed = 5
layers = [{ type = "embedding", input_dim = 6, output_dim = 4 }, { type = "lstm", units = 5 },
          { type = "dense", units = 3 }]
"""


def _keras_lstm_training(spec, params, batches, lr):
    """Keras's LSTM trained by Adam, written out in float64 torch autograd: ONE bias vector per LSTM."""
    e, (w, u, b), (wd, bd) = (torch.tensor(params[0]["embeddings"], dtype=torch.float64),
                              [torch.tensor(params[1][k], dtype=torch.float64) for k in ("kernel", "recurrent_kernel", "bias")],
                              [torch.tensor(params[2][k], dtype=torch.float64) for k in ("kernel", "bias")])
    weights = [t.requires_grad_() for t in (e, w, u, b, wd, bd)]
    o = spec.optimizer
    opt = torch.optim.Adam(weights, lr=lr, betas=(o.beta_1, o.beta_2), eps=o.epsilon)
    losses = []
    for x, y in batches:
        h = c = torch.zeros(len(x), 5, dtype=torch.float64)
        seq = e[torch.from_numpy(x)]
        for t in range(seq.shape[1]):
            i, f, g, og = (seq[:, t] @ w + h @ u + b).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(og) * torch.tanh(c)
        loss = torch.nn.functional.cross_entropy(h @ wd + bd, torch.from_numpy(y))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def _runner_training(spec, params, batches, lr, freeze=True):
    model = torch_runner.build_module(spec, params).double()
    if not freeze:  # the broken conversion: PyTorch's second LSTM bias left trainable
        for name, p in model.named_parameters():
            if "bias_hh" in name:
                p.requires_grad_(True)
    o = spec.optimizer
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(o.beta_1, o.beta_2),
                           eps=o.epsilon)
    losses = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_lstm_trains_one_bias_as_keras_does_and_a_trainable_second_bias_is_caught():
    """PyTorch's LSTM sums bias_ih and bias_hh; loaded as (bias, 0) the forward pass is Keras's, but if both
    trained, Adam would move their sum twice as far. The runner freezes bias_hh: its training steps equal
    Keras's one-bias LSTM written out in float64; with bias_hh trainable they drift apart at once."""
    spec = parse_workload(tomllib.loads(ONE_LSTM))
    params = init_params(spec)
    batches = DataSource(spec).batches(4)
    want = _keras_lstm_training(spec, params, batches, lr=0.01)
    np.testing.assert_allclose(_runner_training(spec, params, batches, lr=0.01), want, rtol=1e-10)
    broken = _runner_training(spec, params, batches, lr=0.01, freeze=False)
    assert broken[0] == pytest.approx(want[0], rel=1e-12) and abs(broken[-1] - want[-1]) > 1e-3


def _keras_adam_replay(param, grads, lr, b1, b2, eps):
    """Keras's Adam update rule written out (epsilon added to sqrt(v) before the bias correction)."""
    m = v = np.zeros_like(param)
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        param = param - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return param


def test_the_torch_runners_adam_puts_epsilon_where_keras_does():
    rng = np.random.default_rng(0)
    start = rng.normal(size=50)
    grads = [rng.normal(size=50) * 10.0 ** rng.uniform(-9, -3, size=50) for _ in range(6)]  # tiny ones: eps matters
    want = _keras_adam_replay(start, grads, 3e-3, 0.9, 0.999, 1e-7)

    def run(cls):
        p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        opt = cls([p], lr=3e-3, betas=(0.9, 0.999), eps=1e-7)
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
        return p.detach().numpy()

    np.testing.assert_allclose(run(torch_runner.KerasAdam), want, rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(run(torch.optim.Adam) - want)) > 1e-4  # PyTorch's own placement is another optimizer
