"""Launching a distributed cell: a 1-worker run and an N-worker run, each rank in a fresh process.

PyTorch ranks start through ``torchrun`` (static rendezvous at ``--master-addr:--master-port``; a free
loopback port on one machine). TensorFlow ranks start here, one process each, with a ``TF_CONFIG`` naming
every worker (free loopback ports on one machine; across machines the list comes from
:mod:`fwbench.distributed.rendezvous`). Both runs share the cell's timeout.

Faults: a rank that exits with an error or is killed fails the run at once with a reason naming the rank;
a rank that hangs fails it at the timeout. Either way every rank of the run is stopped: torchrun is asked
to stop its workers (SIGTERM), then its group and every rank that wrote a pid file and still runs
fwbench's rank module are SIGKILLed. Every process started here dies with the CLI, even a CLI killed with
SIGKILL (``PR_SET_PDEATHSIG``, set before exec by :func:`fwbench.launch.child_setup`), and torchrun's ranks
die with torchrun (they ask for it at their start, in :mod:`fwbench.distributed.rank`). Ports are
released with the processes that held them. A launcher or rank that cannot be started fails the cell
("could not start the worker: …"), not the run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwbench import env as envmod
from fwbench.distributed import aggregate, rendezvous
from fwbench.distributed.config import LOOPBACK, DistOptions, free_ports, is_loopback, \
    loopback_interface
from fwbench.job import Job
from fwbench.jsonio import loads as json_loads, write_json_atomic
from fwbench.launch import KILL_GRACE_S, cell_stem, child_setup, log_tail, start_failure, worker_env
from fwbench.runners.registry import RUNNERS, EngineInfo

POLL_S = 0.05
RANK_MODULE = "fwbench.distributed.rank"


@dataclass
class RunShape:
    """Where one run's ranks live: ``workers`` per node, ``nnodes`` nodes, this node's rank, the master."""

    workers: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = LOOPBACK
    master_port: int = 0

    @property
    def world_size(self) -> int:
        return self.workers * self.nnodes


@dataclass
class RunOutcome:
    status: str
    reason: str = ""
    ranks: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""


def resolve_workers(job: Job, opts: DistOptions) -> int:
    """Ranks per node: ``--workers``, else one per GPU on CUDA, else the workload's ``[distributed] workers``."""
    if opts.workers:
        return opts.workers
    if job.device == "cuda":
        return max(1, len(envmod.gpus()))
    return int((job.workload.get("distributed") or {}).get("workers", 2))


def run_distributed_cell(job: Job, workdir: Path, timeout: float, memory_limit: int | None = None) -> dict[str, Any]:
    """Run one distributed cell and return its measured fields (never raises for rank faults)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    engine = RUNNERS[job.runner].engine
    if engine is None:
        parallel = ", ".join(name for name, info in RUNNERS.items() if info.engine)
        return {"status": "skipped", "reason": f"runner {job.runner} has no data-parallel engine "
                                               f"(data-parallel runners: {parallel})"}
    if job.options.precision != "fp32":
        return {"status": "skipped", "reason": "data-parallel cells train in fp32 only"}
    opts = job.options.distributed or DistOptions()
    workers = resolve_workers(job, opts)
    shape = RunShape(workers, opts.nnodes, opts.node_rank, opts.master_addr, opts.master_port)
    # ranks on one node share its cores: each gets an equal part, in the 1-worker run too (same conditions)
    rank_job = job.with_threads(max(1, job.options.threads // workers))
    cell_dir = workdir / cell_stem(job.cell_id)  # workload names are user text: never a path as they are
    baseline = None
    if opts.node_rank == 0:  # node 0 measures the 1-worker run; the other nodes wait in the rendezvous
        baseline = launch_run(rank_job, engine, RunShape(1), shape.world_size, cell_dir / "world1", deadline,
                              timeout, memory_limit)
        if baseline.status != "ok":
            return _failed(baseline, "1-worker run", t0)
    scaled = launch_run(rank_job, engine, shape, shape.world_size, cell_dir / f"world{shape.world_size}",
                        deadline, timeout, memory_limit)
    if scaled.status != "ok":
        return _failed(scaled, f"{shape.world_size}-worker run", t0)
    cell = aggregate.make_cell(scaled.ranks, baseline.ranks if baseline else None, job.workload["batch_size"],
                               shape.nnodes, workers, opts.node_rank, engine.name,
                               job.options.precision)
    cell["duration_s"] = time.perf_counter() - t0
    return cell


def _failed(run: RunOutcome, what: str, t0: float) -> dict[str, Any]:
    reason = run.reason if run.status == "skipped" else f"{what}: {run.reason}"
    cell = {"status": run.status, "reason": reason, "duration_s": time.perf_counter() - t0}
    if run.log_tail and run.status != "skipped":
        cell["log_tail"] = run.log_tail
    return cell


def launch_run(job: Job, engine: EngineInfo, shape: RunShape, parity_shards: int, out_dir: Path,
               deadline: float, timeout: float, memory_limit: int | None) -> RunOutcome:
    """Start this node's ranks of one run, watch them, and collect their records."""
    out_dir.mkdir(parents=True, exist_ok=True)
    job_path = out_dir / "job.json"
    run = {"impl": engine.impl, "parity_shards": parity_shards, "collective_timeout_s": max(30.0, timeout)}
    write_json_atomic(job_path, {"job": job.to_dict(), "run": run})
    env = worker_env(job)
    if is_loopback(shape.master_addr) and "GLOO_SOCKET_IFNAME" not in env:
        lo = loopback_interface()  # keep gloo's connections on loopback, whatever the host name resolves to
        if lo:
            env["GLOO_SOCKET_IFNAME"] = lo
    preexec = child_setup(memory_limit)
    start = _start_torchrun if engine.launcher == "torchrun" else _start_tf_config
    try:
        procs, logs, groups = start(job_path, out_dir, shape, env, preexec, deadline)
    except rendezvous.RendezvousError as exc:
        return RunOutcome("failed", str(exc))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:  # EACCES, ENOMEM, a bad rlimit …
        return RunOutcome("failed", start_failure(exc))
    try:
        status, reason = _watch(procs, deadline, timeout, out_dir, logs)
    finally:
        _stop(procs, groups, out_dir)
    local = range(shape.node_rank * shape.workers, (shape.node_rank + 1) * shape.workers)
    records = _read_ranks(out_dir, local)
    tail = "\n".join(filter(None, (log_tail(p) for p in logs.values())))[-4000:]
    if status == "ok":
        missing = [r for r in local if r not in records]
        bad = {r: rec for r, rec in records.items() if rec.get("status") != "ok"}
        if missing:
            return RunOutcome("failed", f"rank(s) {_ranks(missing)} ended without a result", log_tail=tail)
        if bad:
            r, rec = min(bad.items())
            return RunOutcome(rec["status"], rec.get("reason", "") if rec["status"] == "skipped"
                              else f"rank {r}: {rec.get('reason', '')}", log_tail=tail)
        return RunOutcome("ok", ranks=[records[r] for r in local])
    return RunOutcome(status, reason, log_tail=tail)


def _start_torchrun(job_path: Path, out_dir: Path, shape: RunShape, env: dict[str, str], preexec: Any,
                    deadline: float) -> tuple[dict[str, subprocess.Popen], dict[str, Path], list[int]]:
    port = shape.master_port or free_ports(1, LOOPBACK)[0]
    addr = shape.master_addr if shape.master_port else LOOPBACK
    wait = max(10, int(deadline - time.monotonic()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(shape.nnodes),
           "--node-rank", str(shape.node_rank), "--nproc-per-node", str(shape.workers),
           "--master-addr", addr, "--master-port", str(port), "--rdzv-conf", f"timeout={wait}",
           "--max-restarts", "0", "--monitor-interval", "0.1",
           "-m", RANK_MODULE, str(job_path), str(out_dir)]
    log = out_dir / "torchrun.log"
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=preexec)
    return {"torchrun": proc}, {"torchrun": log}, [proc.pid]


def _start_tf_config(job_path: Path, out_dir: Path, shape: RunShape, env: dict[str, str], preexec: Any,
                     deadline: float) -> tuple[dict[str, subprocess.Popen], dict[str, Path], list[int]]:
    bind = LOOPBACK if is_loopback(shape.master_addr) else "0.0.0.0"
    ports = free_ports(shape.workers, bind)
    if shape.nnodes > 1:
        cluster = rendezvous.exchange(shape.nnodes, shape.node_rank, shape.master_addr, shape.master_port,
                                      ports, deadline)
    else:
        cluster = [[f"{LOOPBACK}:{p}" for p in ports]]
    workers = [a for node in cluster for a in node]
    first = sum(len(node) for node in cluster[:shape.node_rank])
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    pgid = 0
    for i in range(shape.workers):
        rank = first + i
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
        rank_env = {**env, "TF_CONFIG": json.dumps(tf_config), "FWBENCH_RANK": str(rank),
                    "FWBENCH_LOCAL_RANK": str(i), "FWBENCH_NODE_RANK": str(shape.node_rank)}
        logs[str(rank)] = out_dir / f"rank{rank}.log"
        with open(logs[str(rank)], "w", encoding="utf-8") as f:
            # one process group for the node's ranks (the first rank's pid), so that one killpg stops them all
            try:
                p = subprocess.Popen([sys.executable, "-m", RANK_MODULE, str(job_path), str(out_dir)],
                                     stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=rank_env,
                                     preexec_fn=preexec, process_group=pgid)
            except BaseException:
                _stop(procs, [pgid] if pgid else [], out_dir)
                raise
        pgid = pgid or p.pid
        procs[str(rank)] = p
    return procs, logs, [pgid]


def _watch(procs: dict[str, subprocess.Popen], deadline: float, timeout: float, out_dir: Path,
           logs: dict[str, Path]) -> tuple[str, str]:
    """Wait until every process ended well, one ended badly, or the deadline; returns (status, reason)."""
    while True:
        codes = {name: p.poll() for name, p in procs.items()}
        bad = {name: c for name, c in codes.items() if c not in (None, 0)}
        if bad:
            return _describe(bad, out_dir, logs)
        if all(c == 0 for c in codes.values()):
            return "ok", ""
        if time.monotonic() >= deadline:
            running = [n for n, c in codes.items() if c is None]
            who = "torchrun's ranks" if running == ["torchrun"] else f"rank(s) {', '.join(running)}"
            return "timeout", f"no result after the {timeout:g} s cell timeout ({who} still running); all ranks killed"
        time.sleep(POLL_S)


def _describe(bad: dict[str, int], out_dir: Path, logs: dict[str, Path]) -> tuple[str, str]:
    """(status, reason) of a failed run, naming the rank that failed first (torchrun's "root cause").

    ``crashed`` when that rank was ended by a signal, else ``failed``.
    """
    if "torchrun" in bad:
        root = torchrun_root_cause(logs["torchrun"].read_text(encoding="utf-8", errors="replace"))
        if root is None:
            return "failed", f"torchrun exited with code {bad['torchrun']} without naming a failed rank (see log)"
        rank, code = root
    else:  # a signal death is the cause; the others' errors are its consequence
        rank, code = min(((int(n), c) for n, c in bad.items()), key=lambda rc: (rc[1] >= 0, rc[0]))
    rec = _read_ranks(out_dir, [rank]).get(rank)
    if rec and rec.get("reason"):
        what = f"rank {rank} failed: {rec['reason']}"
    elif code < 0:
        what = f"rank {rank} died ({_signal_name(-code)})"
    else:
        what = f"rank {rank} exited with code {code} without a result"
    return "crashed" if code < 0 else "failed", what + "; the other ranks were stopped"


_ROOT = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def torchrun_root_cause(text: str) -> tuple[int, int] | None:
    """(rank, exit code) of torchrun's "Root Cause (first observed failure)" report, if it printed one."""
    m = _ROOT.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _ranks(ranks: Any) -> str:
    return ", ".join(str(r) for r in ranks)


def _read_ranks(out_dir: Path, ranks: Any) -> dict[int, dict[str, Any]]:
    out = {}
    for r in ranks:
        try:
            rec = json_loads((out_dir / f"rank{r}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "status" in rec:
            out[r] = rec
    return out


def _stop(procs: dict[str, subprocess.Popen], groups: list[int], out_dir: Path) -> None:
    """End every process of the run: SIGTERM (torchrun stops its ranks), then SIGKILL groups and rank pids."""
    alive = [p for p in procs.values() if p.poll() is None]
    if alive:
        for g in groups:
            _signal_group(g, signal.SIGTERM)
        end = time.monotonic() + KILL_GRACE_S
        while any(p.poll() is None for p in alive) and time.monotonic() < end:
            time.sleep(POLL_S)
        for g in groups:
            _signal_group(g, signal.SIGKILL)  # whatever is left of the group, leader or not
        for p in alive:
            try:
                p.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
    for pid_file in out_dir.glob("rank*.pid"):  # torchrun starts each rank in a session of its own
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if _is_our_rank(pid):
            _signal_group(pid, signal.SIGKILL)


def _is_our_rank(pid: int) -> bool:
    """Whether ``pid`` still runs fwbench's rank module (a pid may have been reused by then)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return RANK_MODULE.encode() in cmdline


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass

