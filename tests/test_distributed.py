"""Data-parallel cells: options, aggregation, rendezvous, and real torchrun / MultiWorkerMirroredStrategy runs.

The real runs use a tiny MLP and few steps; they are slow only because each run starts framework processes
(a 1-worker and a 2-worker run per cell). Only loopback addresses are used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fwbench.distributed import aggregate, rendezvous
from fwbench.distributed.config import DistOptions, free_ports, is_loopback, make_distributed
from fwbench.distributed.launch import RunShape, launch_run, run_distributed_cell, torchrun_root_cause
from fwbench.distributed.rank import agreed_steps
from fwbench.distributed.rows import FIXED_FIELDS, RankRow, split_row
from fwbench.errors import UsageError, WorkloadError
from fwbench.config import RunConfig, RunnerOptions
from fwbench.pipeline import plan
from fwbench.runners.registry import RUNNERS
from fwbench.workload import load_workload
from fwbench.workload_spec import Distributed, Timing, WorkloadSpec, parse_workload
from tests.conftest import REPO, invoke

TINY_DDP = textwrap.dedent("""
    name = "tinyddp"
    input_shape = [6]
    classes = 3
    batch_size = 4
    seed = 3
    [distributed]
    workers = 2
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 5
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 3
    [[layers]]
    type = "dense"
    units = 5
    activation = "relu"
    [[layers]]
    type = "dense"
    units = 3
""")


@pytest.fixture
def ddp_dir(workload_dir: Path) -> Path:
    (workload_dir / "tinyddp.toml").write_text(TINY_DDP)
    return workload_dir


def _job(spec: WorkloadSpec, runner: str, dist: DistOptions | None = None):
    _, opts = make_distributed([spec], dist or DistOptions())
    return plan([spec], [RUNNERS[runner]], ["cpu"], RunConfig(options=RunnerOptions(distributed=opts)))[0]


def _rank_pids(root: Path) -> list[int]:
    return [int(p.read_text()) for p in root.rglob("rank*.pid")]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _survivors(pids: list[int], grace: float = 5.0) -> list[int]:
    """The processes of ``pids`` still alive after ``grace`` seconds: a SIGKILLed rank is gone at once for
    the scheduler, but the kernel may take a moment to tear down a large address space (torch's)."""
    end = time.monotonic() + grace
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ fast unit tests
def test_workload_distributed_table_parses_and_round_trips(ddp_dir):
    spec = load_workload("tinyddp")
    assert spec.distributed == Distributed(workers=2)
    assert WorkloadSpec.from_dict(spec.to_dict()) == spec
    assert load_workload("tinymlp").distributed is None
    assert load_workload(str(REPO / "fwbench" / "workloads" / "ddp.toml")).distributed == Distributed(2)


@pytest.mark.parametrize("table, words", [({"workers": 0}, "distributed.workers: must be an integer from 1"),
                                          ({"workers": 2.5}, "distributed.workers: must be an integer from 1"),
                                          ({"ranks": 2}, "distributed.ranks: unknown key; allowed: workers")])
def test_workload_distributed_table_is_validated(table, words):
    doc = {"name": "x", "input_shape": [4], "classes": 2, "batch_size": 2,
           "layers": [{"type": "dense", "units": 2}], "distributed": table}
    with pytest.raises(WorkloadError, match=words):
        parse_workload(doc)


@pytest.mark.parametrize("kwargs, words", [
    ({"nnodes": 2}, "needs --master-port"),
    ({"nnodes": 2, "node_rank": 2, "master_port": 29500}, "--node-rank must be in 0..1"),
    ({"node_rank": 1}, "must be in 0..0"),
    ({"workers": 0}, "--workers must be at least 1"),
])
def test_dist_options_refuse_inconsistent_flags(kwargs, words):
    with pytest.raises(UsageError, match=words):
        DistOptions(**kwargs)


def test_workers_flag_makes_any_workload_data_parallel(workload_dir):
    mlp = load_workload("tinymlp")
    specs, opts = make_distributed([mlp], DistOptions())
    assert specs[0].distributed is None and opts is None
    specs, opts = make_distributed([mlp], DistOptions(workers=3))
    assert specs[0].distributed == Distributed(3)
    assert opts is not None and opts.workers == 3
    with pytest.raises(UsageError, match="needs a data-parallel workload"):
        make_distributed([mlp], DistOptions(nnodes=2, master_port=29500))


def test_cli_refuses_bad_node_flags_before_any_work(cli, ddp_dir, tmp_path):
    result = invoke(cli, "run", "-r", "torch", "-w", "tinyddp", "--nnodes", "2", "-o", str(tmp_path / "r.json"))
    assert result.exit_code == 2
    assert "--master-port" in result.output
    assert not (tmp_path / "r.json").exists()


def test_runner_without_engine_is_skipped_without_processes(ddp_dir, tmp_path):
    cell = run_distributed_cell(_job(load_workload("tinyddp"), "fake"), tmp_path, timeout=5)
    assert cell["status"] == "skipped"
    assert "no data-parallel engine" in cell["reason"] and "torch" in cell["reason"]


def test_loopback_and_free_ports():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("node0.example")
    ports = free_ports(3)
    assert len(set(ports)) == 3
    with socket.socket() as s:  # really free: it can be bound again
        s.bind(("127.0.0.1", ports[0]))


def _row(rank, elapsed, steps, warm=(0.5, 0.1), loss=1.0, node=0):
    return [rank, node, elapsed, len(steps), loss, *warm, *steps]


def test_figures_use_the_slowest_rank_and_a_shared_window():
    table = [_row(0, 0.40, [0.10, 0.10, 0.20]), _row(1, 0.50, [0.20, 0.10, 0.10], warm=(0.9, 0.1))]
    fig = aggregate.run_figures(table, warmup=2, batch_size=8)
    assert fig["step_s"] == [0.20, 0.10, 0.20]  # per step, the slower rank
    assert fig["warmup_s"] == [0.9, 0.1]
    assert fig["global_samples"] == 2 * 8 * 3
    assert fig["global_samples_per_s"] == pytest.approx(48 / 0.50)  # over the longest rank's window
    assert [r["samples_per_s"] for r in fig["per_rank"]] == pytest.approx([24 / 0.40, 24 / 0.50])


def test_cell_has_scaling_efficiency_and_loss_following():
    rec = lambda rank, table, losses: {"rank": rank, "status": "ok", "warmup": 2, "table": table,  # noqa: E731
                                      "parity_losses": losses, "backend": "gloo", "peak_rss_bytes": 10}
    base = [rec(0, [_row(0, 1.0, [0.25] * 4)], [2.0, 1.5, 1.2])]  # 16 samples/s
    table = [_row(0, 1.0, [0.25] * 4), _row(1, 1.6, [0.4] * 4)]  # 2 ranks: 32 samples / 1.6 s = 20 samples/s
    scaled = [rec(0, table, [2.0, 1.5000001, 1.2]), rec(1, table, [2.0, 1.5000001, 1.2])]
    cell = aggregate.make_cell(scaled, base, batch_size=4, nnodes=1, workers_per_node=2, node_rank=0,
                               engine="test")
    d = cell["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo" and d["global_batch"] == 8
    assert cell["samples_per_s"] == pytest.approx(20.0)
    assert d["baseline"]["samples_per_s"] == pytest.approx(16.0)
    assert d["scaling_efficiency"] == pytest.approx(20.0 / (2 * 16.0))
    assert d["loss_following"]["status"] == "ok" and "reason" not in cell
    assert cell["parity"]["initial_loss"] == 2.0 and cell["parity"]["k"] == 2
    drift = [rec(r, table, [2.0, 1.6, 1.3]) for r in (0, 1)]
    cell = aggregate.make_cell(drift, base, 4, 1, 2, 0, "test")
    assert cell["distributed"]["loss_following"]["status"] == "mismatch"
    assert cell["distributed"]["loss_following"]["first_bad_step"] == 1
    assert "does not follow the 1-worker run" in cell["reason"]
    # another node has no 1-worker run of its own: no efficiency rather than a made-up one
    assert aggregate.make_cell(scaled, None, 4, 2, 1, 1, "test")["distributed"]["scaling_efficiency"] is None


def test_rank_row_layout_is_written_and_read_in_one_place():
    row = RankRow(rank=1, node_rank=0, elapsed_s=2.5, final_loss=0.3, warmup_s=[0.9, 0.1], step_s=[0.2, 0.3, 0.4])
    packed = row.pack()
    assert dict(zip(FIXED_FIELDS, packed)) == {"rank": 1, "node_rank": 0, "elapsed_s": 2.5, "steps": 3,
                                               "final_loss": 0.3}
    assert packed == _row(1, 2.5, [0.2, 0.3, 0.4], warm=(0.9, 0.1), loss=0.3)
    assert split_row(packed, warmup=2) == row


def test_rank_engines_extend_the_session_step_protocol():
    from fwbench.distributed.rank import RankEngine
    from fwbench.runners.base import Session, StepSession

    assert issubclass(RankEngine, StepSession) and issubclass(Session, StepSession)
    shared = StepSession.__abstractmethods__
    assert {"build", "put", "train_step", "value"} <= shared
    # a rank adds only its collectives (and makes joining the group in setup() mandatory)
    assert RankEngine.__abstractmethods__ - shared == {"setup", "all_reduce", "gather"}


def test_agreed_steps_fill_min_seconds_within_bounds():
    t = Timing(warmup=3, min_steps=5, max_steps=100, min_seconds=1.0, max_seconds=2.0)
    assert agreed_steps([9.0, 0.1, 0.1], t) == 10  # first step (compile) excluded from the estimate
    assert agreed_steps([0.001, 0.001], t) == 100  # max_steps
    assert agreed_steps([1.0, 1.0], t) == 3  # max_seconds wins over min_steps, never below 3


def test_torchrun_root_cause_is_parsed():
    text = textwrap.dedent("""
        Failures:
        [1]:
          rank      : 0 (local_rank: 0)
          exitcode  : 1 (pid: 11)
        ------------------------------------------------------------
        Root Cause (first observed failure):
        [0]:
          time      : 2026-01-01_00:00:00
          host      : box
          rank      : 1 (local_rank: 1)
          exitcode  : -9 (pid: 12)
          error_file: <N/A>
          traceback : Signal 9 (SIGKILL) received by PID 12
    """)
    assert torchrun_root_cause(text) == (1, -9)
    assert torchrun_root_cause("no report") is None


def test_rendezvous_builds_one_cluster_on_every_node():
    port = free_ports(1)[0]
    deadline = time.monotonic() + 20
    out: dict[int, list] = {}

    def node(k: int, ports: list[int]) -> None:
        out[k] = rendezvous.exchange(3, k, "127.0.0.1", port, ports, deadline)

    threads = [threading.Thread(target=node, args=(k, [1000 + 10 * k, 1001 + 10 * k])) for k in (2, 1)]
    for t in threads:  # the other nodes may start first: they retry until node 0 listens
        t.start()
    time.sleep(0.3)
    node(0, [1000, 1001])
    for t in threads:
        t.join(10)
    want = [["127.0.0.1:1000", "127.0.0.1:1001"], ["127.0.0.1:1010", "127.0.0.1:1011"],
            ["127.0.0.1:1020", "127.0.0.1:1021"]]
    assert out == {0: want, 1: want, 2: want}


def test_rendezvous_times_out_with_a_reason():
    port = free_ports(1)[0]
    with pytest.raises(rendezvous.RendezvousError, match="node\\(s\\) 1 did not join"):
        rendezvous.exchange(2, 0, "127.0.0.1", port, [1], time.monotonic() + 0.5)
    with pytest.raises(rendezvous.RendezvousError, match="node 0 did not answer"):
        rendezvous.exchange(2, 1, "127.0.0.1", port, [1], time.monotonic() + 0.5)


# ------------------------------------------------------------------------------------------ real runs
def _check_cell(cell: dict, backend: str) -> None:
    assert cell["status"] == "ok", cell.get("reason")
    d = cell["distributed"]
    assert d["world_size"] == 2 and d["backend"] == backend
    assert [r["rank"] for r in d["per_rank"]] == [0, 1]
    assert all(r["samples_per_s"] > 0 for r in d["per_rank"])
    assert d["global_samples_per_s"] > 0 and d["baseline"]["samples_per_s"] > 0
    assert d["scaling_efficiency"] == pytest.approx(
        d["global_samples_per_s"] / (2 * d["baseline"]["samples_per_s"]))
    assert d["loss_following"]["status"] == "ok", d["loss_following"]
    assert len(cell["step_s"]) == d["steps"] and cell["summary"]["n"] == d["steps"]


@pytest.mark.slow
def test_two_worker_torch_and_tf_graph_cells(cli, ddp_dir, tmp_path):
    """`fwbench run` on a [distributed] workload: DDP over gloo and MultiWorkerMirroredStrategy, both 2 ranks."""
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    out = tmp_path / "r.json"
    result = invoke(cli, "run", "-w", "tinyddp", "-r", "torch", "-r", "tf-graph", "-o", str(out), "--timeout", "300")
    doc = json.loads(out.read_text())
    cells = {c["runner"]: c for c in doc["cells"]}
    _check_cell(cells["torch"], "gloo")
    _check_cell(cells["tf-graph"], "collective ops (RING)")
    assert "DistributedDataParallel" in cells["torch"]["distributed"]["engine"]
    assert "MultiWorkerMirroredStrategy" in cells["tf-graph"]["distributed"]["engine"]
    # the two engines did the same math: the run-level parity check compares their global-batch losses
    assert doc["parity"]["ok"], doc["parity"]
    assert cells["tf-graph"]["parity"]["status"] == "ok"
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_two_nodes_on_loopback(ddp_dir, tmp_path):
    """Two invocations with --nnodes 2 --node-rank 0/1, one rank each: torchrun's rendezvous, and TF_CONFIG
    built through fwbench's exchange on node 0's port (cells run in the same order on both nodes)."""
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    port = free_ports(1)[0]
    env = {**os.environ, "FWBENCH_WORKLOADS": str(ddp_dir)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "fwbench", "run", "-w", "tinyddp", "-r", "torch", "-r", "tf-graph", "--workers", "1",
         "--nnodes", "2",
         "--node-rank", str(k), "--master-addr", "127.0.0.1", "--master-port", str(port), "--timeout", "300",
         "-o", str(tmp_path / f"node{k}.json")], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 0)]
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for k in (0, 1):
        doc = json.loads((tmp_path / f"node{k}.json").read_text())
        assert [c["runner"] for c in doc["cells"]] == ["torch", "tf-graph"]
        for cell in doc["cells"]:
            assert cell["status"] == "ok", (cell.get("reason"), outputs)
            d = cell["distributed"]
            assert (d["world_size"], d["nnodes"], d["workers_per_node"], d["node_rank"]) == (2, 2, 1, k)
            assert sorted((r["rank"], r["node_rank"]) for r in d["per_rank"]) == [(0, 0), (1, 1)]
            if k == 0:
                assert d["scaling_efficiency"] > 0 and d["loss_following"]["status"] == "ok"
            else:  # the 1-worker run is node 0's
                assert d["baseline"] is None and d["scaling_efficiency"] is None
    assert all(p.returncode == 0 for p in procs), outputs


@pytest.mark.slow
@pytest.mark.parametrize("runner, module", [("torch", "torch"), ("tf-graph", "tensorflow")])
def test_killed_worker_fails_the_run_and_stops_every_rank(ddp_dir, tmp_path, runner, module):
    """SIGKILL one rank of a 2-worker run for real (torchrun watches torch ranks, the launcher TF ranks):
    the run fails at once, naming the rank, and no rank survives."""
    pytest.importorskip(module)
    spec = load_workload("tinyddp").with_timing(min_steps=3, max_steps=10_000_000, min_seconds=600.0,
                                                max_seconds=600.0)  # would train for 10 minutes
    job = _job(spec, runner)
    pid_file = tmp_path / "rank1.pid"
    victim = {}

    def kill_rank_1() -> None:
        end = time.monotonic() + 200
        while time.monotonic() < end:
            if pid_file.exists() and pid_file.read_text():
                time.sleep(2.0)  # let it get going
                victim["pid"] = int(pid_file.read_text())
                os.kill(victim["pid"], signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_rank_1)
    killer.start()
    t0 = time.monotonic()
    run = launch_run(job, RUNNERS[runner].engine, RunShape(workers=2), 2, tmp_path, time.monotonic() + 280, 280, None)
    elapsed = time.monotonic() - t0
    killer.join()
    assert "pid" in victim, "rank 1 never started"
    assert run.status == "crashed"
    assert run.reason == "rank 1 died (SIGKILL); the other ranks were stopped", run.reason
    assert elapsed < 250  # failed when the rank died, not at the timeout
    assert not _survivors(_rank_pids(tmp_path))
    assert _rank_pids(tmp_path)  # rank 0 had started too, and was stopped


@pytest.mark.slow
def test_hung_worker_fails_at_the_timeout_and_nothing_survives(ddp_dir, tmp_path):
    """A rank that stops responding (SIGSTOP) blocks the others; the timeout ends the run and kills every rank."""
    pytest.importorskip("torch")
    job = _job(load_workload("tinyddp").with_timing(max_steps=10_000_000, min_seconds=600.0, max_seconds=600.0),
               "torch")
    pid_file = tmp_path / "rank1.pid"

    def stop_rank_1() -> None:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if pid_file.exists() and pid_file.read_text():
                os.kill(int(pid_file.read_text()), signal.SIGSTOP)
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_rank_1)
    stopper.start()
    t0 = time.monotonic()
    run = launch_run(job, RUNNERS["torch"].engine, RunShape(workers=2), 2, tmp_path, time.monotonic() + 20, 20, None)
    stopper.join()
    assert run.status == "timeout"
    assert run.reason.startswith("no result after the 20 s cell timeout") and "all ranks killed" in run.reason
    assert time.monotonic() - t0 < 40
    assert len(_rank_pids(tmp_path)) == 2
    assert not _survivors(_rank_pids(tmp_path))


def test_summary_line_names_ranks_backend_and_efficiency():
    cell = {"distributed": {"world_size": 2, "backend": "gloo", "global_samples_per_s": 12345.6,
                            "scaling_efficiency": 0.81, "loss_following": {"status": "ok"}}}
    assert aggregate.summary_line(cell) == ("2 ranks (gloo), 12,346 samples/s global, "
                                            "scaling efficiency 81% vs 1 worker, loss follows 1 worker")
    assert aggregate.summary_line({}) == ""
