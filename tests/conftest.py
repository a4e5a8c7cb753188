"""Shared test fixtures: tiny workloads and a CLI runner. Tests never assert on absolute times."""

from __future__ import annotations

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
    monkeypatch.setenv("FWBENCH_WORKLOADS", str(d))
    return d


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(cli: CliRunner, *args: str):
    """Run ``fwbench ARGS`` in-process through typer's CliRunner."""
    from fwbench.cli.app import app

    return cli.invoke(app, list(args))
