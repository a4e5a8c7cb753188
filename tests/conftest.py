"""Shared test fixtures: tiny workloads and a CLI runner. Tests never assert on absolute times."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent

TINY_CNN = textwrap.dedent("""
    name = "tinycnn"
    description = "tiny CNN for tests"
    input_shape = [8, 8, 1]
    classes = 4
    batch_size = 4
    seed = 1
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 3
    [[layers]]
    type = "conv2d"
    filters = 3
    kernel_size = 3
    activation = "relu"
    [[layers]]
    type = "maxpool2d"
    pool_size = 2
    [[layers]]
    type = "flatten"
    [[layers]]
    type = "dense"
    units = 4
""")

# Every graph feature on a tiny input: each layer kind, a block repeated with args, an identity and a
# projection shortcut (add), a concat, asymmetric "same" padding at stride 2 (odd sides), batch norm after a
# conv and after a flatten, and a flatten feeding a dense layer (the CHW/HWC order conversion). Batch 32 and
# momentum 0.99 keep PyTorch's unbiased moving variance (n/(n-1) on the batch's share) within the parity
# tolerance for the batch norm over flat features (n = 32); see docs/workloads.md.
TINY_GRAPH = textwrap.dedent("""
    name = "tinygraph"
    description = "every graph layer kind, tiny"
    input_shape = [9, 9, 3]
    classes = 3
    batch_size = 32
    seed = 2
    layers = [
      { type = "conv2d", filters = 4, kernel_size = 3, strides = 2, padding = "same", use_bias = false, name = "stem" },
      { type = "batchnorm", momentum = 0.9, epsilon = 1e-5 },
      { type = "activation", activation = "relu6" },
      { type = "block", block = "res", name = "r", repeat = 2, args = { act = "swish" } },
      { type = "depthwise_conv2d", kernel_size = 3, depth_multiplier = 2, padding = "same", activation = "gelu", name = "dw" },
      { type = "conv2d", filters = 4, kernel_size = 1, groups = 2, activation = "sigmoid", inputs = "r", name = "grouped" },
      { type = "concat", inputs = ["dw", "grouped"] },
      { type = "zero_padding2d", pad = [0, 1, 1, 1] },
      { type = "avgpool2d", pool_size = 2, padding = "same" },
      { type = "maxpool2d", pool_size = 2, strides = 1 },
      { type = "flatten", name = "flat" },
      { type = "batchnorm", momentum = 0.99, epsilon = 1e-3 },
      { type = "dense", units = 6, activation = "tanh", use_bias = false, name = "d1" },
      { type = "global_avgpool2d", inputs = "r" },
      { type = "dense", units = 6, activation = "softmax", name = "d2" },
      { type = "add", inputs = ["d1", "d2"] },
      { type = "dense", units = 3 },
    ]
    [blocks.res]
    layers = [
      { type = "conv2d", filters = 4, kernel_size = 3, padding = "same", name = "c1" },
      { type = "batchnorm", momentum = 0.9, epsilon = 1e-5 },
      { type = "activation", activation = "$act", name = "a" },
      { type = "add", inputs = ["input", "a"] },
    ]
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 3
""")

# Every sequence kind on tiny shapes. A language model (one prediction per token): embedding, position
# embedding, pre-LN causal attention with a residual add, a per-token GELU MLP, then a GRU and an LSTM over
# the sequence (return_sequences) before the per-token head.
TINY_LM = textwrap.dedent("""
    name = "tinylm"
    description = "every sequence kind, per-token labels, tiny"
    input_shape = [6]
    vocabulary = 11
    classes = 11
    batch_size = 8
    seed = 3
    layers = [
      { type = "embedding", input_dim = 11, output_dim = 8 },
      { type = "position_embedding", max_length = 8, name = "embedded" },
      { type = "layernorm", epsilon = 1e-5 },
      { type = "multi_head_attention", heads = 2, key_dim = 3, causal = true, name = "attention" },
      { type = "add", inputs = ["embedded", "attention"], name = "residual" },
      { type = "layernorm", epsilon = 1e-3 },
      { type = "dense", units = 16, activation = "gelu" },
      { type = "dense", units = 8, name = "mlp" },
      { type = "add", inputs = ["residual", "mlp"] },
      { type = "gru", units = 5, return_sequences = true },
      { type = "lstm", units = 6, return_sequences = true },
      { type = "dense", units = 11 },
    ]
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 3
""")

# A sequence classifier: an LSTM's sequence read by non-causal attention and pooled by its mean, its last step
# pooled by sequence_pool, and a GRU's last state, concatenated.
TINY_SEQ = textwrap.dedent("""
    name = "tinyseq"
    description = "sequence classifier kinds, tiny"
    input_shape = [5]
    vocabulary = 9
    classes = 3
    batch_size = 8
    seed = 4
    layers = [
      { type = "embedding", input_dim = 10, output_dim = 4, name = "emb" },
      { type = "lstm", units = 5, return_sequences = true, name = "l" },
      { type = "multi_head_attention", heads = 1, key_dim = 4 },
      { type = "sequence_pool", pool = "mean", name = "m" },
      { type = "sequence_pool", pool = "last", inputs = "l", name = "last" },
      { type = "gru", units = 3, inputs = "emb", name = "g" },
      { type = "concat", inputs = ["m", "last", "g"] },
      { type = "dense", units = 3 },
    ]
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 3
""")

TINY_MLP = textwrap.dedent("""
    name = "tinymlp"
    input_shape = [6]
    classes = 3
    batch_size = 4
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [[layers]]
    type = "dense"
    units = 5
    activation = "relu"
    [[layers]]
    type = "dense"
    units = 3
""")


@pytest.fixture
def workload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with tiny workloads (tinycnn, tinymlp), found by name through FWBENCH_WORKLOADS."""
    d = tmp_path / "workloads"
    d.mkdir()
    (d / "tinycnn.toml").write_text(TINY_CNN)
    (d / "tinymlp.toml").write_text(TINY_MLP)
    (d / "tinygraph.toml").write_text(TINY_GRAPH)
    (d / "tinylm.toml").write_text(TINY_LM)
    (d / "tinyseq.toml").write_text(TINY_SEQ)
    monkeypatch.setenv("FWBENCH_WORKLOADS", str(d))
    return d


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(cli: CliRunner, *args: str):
    """Run ``fwbench ARGS`` in-process through typer's CliRunner."""
    from fwbench.cli.app import app

    return cli.invoke(app, list(args))


EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_signals() -> None:
    """``preexec_fn`` of a subprocess a test interrupts: SIGINT, SIGTERM and SIGHUP at their defaults and
    unblocked, as a shell starts a foreground command, whatever this test process happens to carry (fwbench
    keeps a signal ignored by whoever started it ignored, on purpose)."""
    for s in EXIT_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, EXIT_SIGNALS)


@pytest.fixture(autouse=True)
def _signal_dispositions_restored():
    """Every test leaves SIGINT/SIGTERM/SIGHUP as it found them (in-process CLI runs install handlers)."""
    before = {s: signal.getsignal(s) for s in EXIT_SIGNALS}
    yield
    for s, h in before.items():
        if signal.getsignal(s) is not h and h is not None:
            signal.signal(s, h)
