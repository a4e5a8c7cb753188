"""End to end: the three framework families train the tiny graph in worker processes and the run's parity
check compares them, batch-norm moving statistics included (real runs, tiny shapes)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from fwbench.workload_spec import parse_workload
from tests.conftest import TINY_GRAPH, invoke


def test_torch_tensorflow_and_keras_agree_on_the_tiny_graph_with_batch_norm(workload_dir: Path, tmp_path: Path,
                                                                             cli) -> None:
    out = tmp_path / "graph.json"
    res = invoke(cli, "run", "-r", "torch", "-r", "tf-graph", "-r", "keras", "-w", "tinygraph", "--quick",
                 "--threads", "1", "--strict", "-o", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    cells = {c["runner"]: c for c in doc["cells"]}
    assert {r: c["status"] for r, c in cells.items()} == {"torch": "ok", "tf-graph": "ok", "keras": "ok"}
    assert doc["parity"]["ok"] and [cells[r]["parity"]["status"] for r in ("torch", "tf-graph", "keras")] == \
        ["reference", "ok", "ok"]
    spec = parse_workload(tomllib.loads(TINY_GRAPH))
    nodes = [layer.name for layer in spec.layers if layer.kind == "batchnorm"]
    channels = [4, 4, 4, 72]  # the stem, the two residual blocks, and the flat features
    for cell in cells.values():
        p = cell["parity"]
        assert p["bn_nodes"] == nodes and p["bn_channels"] == channels
        assert len(p["bn_stats"]) == 2 * sum(channels) and p["learning_rate"] == spec.optimizer.learning_rate
    diffs = [cells[r]["parity"]["bn_max_abs_diff"] for r in ("tf-graph", "keras")]
    assert all(0 <= d < 2e-3 for d in diffs)
    assert doc["parity"]["groups"][0]["bn_max_abs_diff"] == max(diffs)
    # the stored definition is the expanded graph, read back as the same network
    stored = doc["workloads"]["tinygraph"]
    assert [layer["name"] for layer in stored["layers"]] == [layer.name for layer in spec.layers]
