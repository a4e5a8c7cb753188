"""The worker: ``python -m fwbench.worker JOB.json RESULT.json`` runs one cell in a fresh process.

This is the only place where frameworks are imported. It never raises: every outcome, including a
Python exception or a refused allocation, is written to RESULT.json as a cell with a status and a
reason. Faults that kill the process (signals, hangs) are classified by the launcher instead.
"""

from __future__ import annotations

import time

MAIN_AT = time.monotonic()  # before this module's imports: a cold start's "import" phase begins here

import importlib  # noqa: E402
import json
import math
import os
import resource
import sys
import traceback
from typing import Any, Callable

import numpy as np

from fwbench import calibrate, devices, energy, flops, interference, peaks, phase, synccheck
from fwbench.data import DataSource
from fwbench.errors import CellSkipped, brief
from fwbench.job import Job
from fwbench.jsonio import write_json_atomic
from fwbench.latency import LatencyPolicy, measure_requests
from fwbench.quantiles import latency_summary
from fwbench.reference import cross_entropy
from fwbench.runners.base import BATCH_POOL, Session
from fwbench.runners.registry import RUNNERS
from fwbench.stats import summarize
from fwbench.timing import both, measure, measure_windowed
from fwbench.weights import init_params
from fwbench.workload_spec import WorkloadSpec


def load_session(job: Job) -> Session:
    module, _, cls = RUNNERS[job.runner].impl.partition(":")
    return getattr(importlib.import_module(module), cls)(job)


def run_job(job: Job) -> dict[str, Any]:
    """Run the job's phases and return the measured fields of the cell."""
    spec = WorkloadSpec.from_dict(job.workload)
    if spec.scenario == "cold-start":
        return cold_start(job, spec)
    if spec.scenario in ("latency", "throughput"):
        return serving(job, spec)
    phase.report("loading")  # the progress line's phase (fwbench.phase); never between a step's clock readings
    session = load_session(job)
    session.setup()
    params = init_params(spec)
    data = DataSource(spec)
    out: dict[str, Any] = {"status": "ok"}
    if "timing" in job.phases:
        out.update(timing_phase(session, spec, params, data))
    step_s = (out.get("summary") or {}).get("median")
    if "parity" in job.phases:
        phase.report("parity", step_s=step_s)
        out["parity"] = parity_phase(session, spec, params, data)
    if "target" in job.phases and spec.target is not None:
        phase.report("target", step=0, of=spec.target.max_steps, step_s=step_s)
        out["time_to_accuracy"] = tta = target_phase(session, spec, params, data)
        if tta["diverged_step"] is not None and out["status"] == "ok":
            out.update(status="diverged", diverged_step=tta["diverged_step"],
                       reason=f"loss became non-finite at step {tta['diverged_step']} while training to the target")
    out["settings"] = session.settings()
    out["settings"].setdefault("cuda_graphs", cuda_graphs_note(job))
    out["peak_device_bytes"] = session.peak_device_bytes()  # read before the calibration allocates its operands
    if "timing" in job.phases:
        out.update(utilisation(job, spec, out))
    return out


# What each runner does about CUDA graphs when it does not say so itself (torch-compile records its own mode).
# Keras's benchmarks were criticised for giving the XLA back ends CUDA graphs and PyTorch none: every cell says.
_XLA_GRAPHS = "XLA's own: XLA:GPU may replay CUDA graphs (command buffers) by its own defaults; fwbench sets nothing"
CUDA_GRAPHS = {"torch": "not offered: eager PyTorch launches every kernel (torch-compile --cuda-graphs captures them)",
               "tf-eager": "not offered: eager TensorFlow launches every op", "tf-graph": "not offered by tf.function",
               "tf-xla": _XLA_GRAPHS, "keras-jax": _XLA_GRAPHS, "keras": "not offered (Keras on TensorFlow, no XLA)",
               "keras-torch": "not offered: Keras's torch back end runs eagerly"}


def cuda_graphs_note(job: Job) -> str:
    """What this cell did about CUDA graphs (``settings.cuda_graphs``), for runners that do not record it."""
    if job.device != "cuda":
        return "n/a: not on a CUDA device"
    return CUDA_GRAPHS.get(job.runner, "not offered by this runner")


def utilisation(job: Job, spec: WorkloadSpec, out: dict[str, Any]) -> dict[str, Any]:
    """FLOPs per step, achieved FLOP/s and MFU against a matmul peak measured now, in this process."""
    precision = job.options.precision
    framework = RUNNERS[job.runner].framework
    accel = devices.accelerator_info(framework, job.device)
    if accel:
        out["settings"]["accelerator"] = accel
    median = (out.get("summary") or {}).get("median")
    fields: dict[str, Any] = {"flops_per_step": flops.flops_per_step(spec)}
    if framework == "none":  # the fake runner does no arithmetic: a FLOP rate would mean nothing
        cal = calibrate.Calibration(None, "none", precision, note="not measured: this runner does no arithmetic")
    elif framework == "runtime":  # its kernels are its own: no framework's matmul peak would be its ceiling
        cal = calibrate.Calibration(None, "none", precision,
                                    note="not measured: a deployed runtime has no matmul calibration here")
    else:
        phase.report("calibration")
        cal = calibrate.calibrate(job.device, framework, precision)
        achieved, _ = flops.utilisation(fields["flops_per_step"], median, cal.peak_flops)
        if cal.peak_flops and achieved and achieved > cal.peak_flops:
            # impossible on a quiet machine: the calibration caught a slow moment (other load), so measure again
            again = calibrate.calibrate(job.device, framework, precision)
            cal = again if (again.peak_flops or 0) > cal.peak_flops else cal
            cal.note = "; ".join(filter(None, [cal.note, "measured twice: the first peak was below the achieved rate"]))
            if achieved > (cal.peak_flops or 0):
                cal.note += "; still below it: the machine was busy, this MFU is not meaningful"
    fields["achieved_flops"], fields["mfu"] = flops.utilisation(fields["flops_per_step"], median, cal.peak_flops)
    fields["peak_flops"] = cal.peak_flops
    fields["calibration"] = cal.to_dict()
    published = peaks.published_flops(accel.get("name", ""), precision, job.options.tf32) if accel else None
    if published:
        fields["peak_flops_published"] = published
    return fields


def _step_fn(session: Session, spec: WorkloadSpec):
    return session.train_step if spec.mode == "train" else session.infer_step


def timing_phase(session: Session, spec: WorkloadSpec, params, data: DataSource) -> dict[str, Any]:
    phase.report("warm-up")  # building (tracing, compiling) the model counts as warm-up
    session.build(spec, params)
    pool = [session.put(b) for b in data.batches(BATCH_POOL)]
    fn = _step_fn(session, spec)
    watch = interference.Watch(session.job.options.threads, noisy_threshold())
    meter = energy.meter_for(session.device)
    window = phase.Announce("timing", both(watch, meter))
    mode = session.options.timing_mode(session.device)
    if mode == "windowed":  # no host sync inside a window of k steps (docs/timing.md)
        barrier = devices.device_barrier(RUNNERS[session.job.runner].framework, session.device)
        t = measure_windowed(lambda i: fn(pool[i % len(pool)]), session.values, barrier, spec.timing, window=window)
    else:
        t = measure(lambda i: session.value(fn(pool[i % len(pool)])), spec.timing, window=window)
    out: dict[str, Any] = {"warmup_s": t.warmup_s, "step_s": t.samples, "stop_reason": t.stop_reason,
                           "first_step_s": t.warmup_s[0] if t.warmup_s else None,
                           "final_loss": t.losses[-1] if t.losses else None, "retraces": session.retraces(),
                           "energy": meter.result(t.timed_steps, spec.batch_size),
                           "timing": {**t.record(), "lazy_loss": session.lazy_loss}}
    if watch.result is not None:  # what other processes did during the timed steps (fwbench.interference)
        out["interference"] = watch.result.to_dict()
    if t.diverged_step is not None:
        bad = t.losses[t.diverged_step] if t.diverged_step < len(t.losses) else t.losses[-1]
        out.update(status="diverged", diverged_step=t.diverged_step,
                   reason=f"loss became {bad} at step {t.diverged_step}")
    if session.device != "cpu" or session.options.sync_check:
        phase.report("sync-check")
        out["sync_check"] = sync_check(session, pool, fn)
    if t.samples:
        s = summarize(t.samples)
        out["summary"] = s.to_dict()
        out["samples_per_s"] = spec.batch_size / s.median
        out["samples_per_s_ci"] = [spec.batch_size / s.ci_high, spec.batch_size / s.ci_low]
    return out


def noisy_threshold() -> float:
    """``$FWBENCH_NOISY_SHARE`` (checked by ``fwbench run`` before any work), else the default."""
    try:
        return interference.threshold_from(os.environ)
    except ValueError:
        return interference.DEFAULT_THRESHOLD


def sync_check(session: Session, pool: list, fn) -> dict[str, Any]:
    """Time steps with and without synchronisation; flags a runner whose sync does not wait (see synccheck)."""
    barrier = devices.device_barrier(RUNNERS[session.job.runner].framework, session.device)
    res = synccheck.check(lambda i: fn(pool[i % len(pool)]), session.value, barrier)
    return res.to_dict()


def serving(job: Job, spec: WorkloadSpec) -> dict[str, Any]:
    """The latency and throughput scenarios: inference requests on host data, then output parity."""
    phase.report("loading")
    session = load_session(job)
    session.setup()
    params, data = init_params(spec), DataSource(spec)
    out: dict[str, Any] = {"status": "ok"}
    phase.report("warm-up")  # building, exporting or loading the model counts as warm-up
    session.build(spec, params)
    payloads = [session.host_input(x) for x, _ in data.batches(BATCH_POOL)]

    def request(i: int) -> float:
        logits = session.serve(payloads[i % len(payloads)])
        return float(logits.reshape(-1)[0])  # a finite checksum; serve() already returned host memory

    watch = interference.Watch(session.job.options.threads, noisy_threshold())
    meter = energy.meter_for(job.device)
    window = phase.Announce("timing", both(watch, meter))
    if spec.scenario == "latency":
        r = measure_requests(request, latency_policy(spec), window=window)
        warmup_s, step_s, stop = r.warmup_s, r.latency_s, r.stop_reason
    else:
        t = measure(request, spec.timing, window=window)
        warmup_s, step_s, stop = t.warmup_s, t.step_s, t.stop_reason
        if t.diverged_step is not None:
            out.update(status="failed", reason=f"non-finite logits at request {t.diverged_step}")
    if stop == "non-finite output":
        out.update(status="failed", reason="non-finite logits")
    out.update(warmup_s=warmup_s, step_s=step_s, stop_reason=stop, first_step_s=warmup_s[0] if warmup_s else None,
               energy=meter.result(len(step_s), spec.batch_size))
    if watch.result is not None:
        out["interference"] = watch.result.to_dict()
    if step_s:
        s = summarize(step_s)
        out["summary"] = s.to_dict()
        out["samples_per_s"] = spec.batch_size / s.median
        out["samples_per_s_ci"] = [spec.batch_size / s.ci_high, spec.batch_size / s.ci_low]
        if spec.scenario == "latency":
            out["latency"] = latency_summary(step_s)
    if "parity" in job.phases:
        phase.report("parity", step_s=out.get("summary", {}).get("median"))
        out["parity"] = output_parity(session.serve(session.host_input(data.batch(0)[0])))
    out["settings"] = session.settings()
    out["peak_device_bytes"] = session.peak_device_bytes()
    out.update(utilisation(job, spec, out))
    return out


def latency_policy(spec: WorkloadSpec) -> LatencyPolicy:
    """The latency scenario's bounds, scaled from the workload's ``[timing]`` table (defaults: 20 warm-up
    requests, at least 1000 requests and 2 s, at most 100000 requests or 60 s; ``--quick``: 8, 50, 0 s,
    2000, 8 s). See ``docs/scenarios.md``."""
    t = spec.timing
    return LatencyPolicy(warmup=4 * t.warmup, min_requests=min(1000, max(50, t.max_steps)),
                         max_requests=max(1000, 100 * t.max_steps), min_seconds=2.0 * t.min_seconds,
                         max_seconds=4.0 * t.max_seconds)


OUTPUT_ROWS = 8  # rows of the first batch's logits a cell keeps for the output-parity check


def output_parity(logits: np.ndarray) -> dict[str, Any]:
    """The first rows of the logits of the shared batch 0 (at 7 significant digits), for the run's check."""
    rows = np.asarray(logits, dtype=np.float64)[:OUTPUT_ROWS]
    return {"logits": [[float(f"{v:.7g}") for v in row.reshape(-1)] for row in rows], "rows": int(len(rows))}


def cold_start(job: Job, spec: WorkloadSpec) -> dict[str, Any]:
    """Spawn → first inference result in this fresh process, split into process start (the interpreter, until
    this module began), import (NumPy, fwbench, the framework or runtime, and its set-up: Keras is imported
    there, after its backend and thread settings), build/load (weights, the model, an exported artifact
    loaded) and first call (one request of batch 0 served to host memory)."""
    spawned = float(os.environ.get("FWBENCH_SPAWNED_AT", MAIN_AT))
    session = load_session(job)
    session.setup()
    imported = time.monotonic()
    params, data = init_params(spec), DataSource(spec)
    session.build(spec, params)
    built = time.monotonic()
    logits = session.serve(session.host_input(data.batch(0)[0]))
    answered = time.monotonic()
    out: dict[str, Any] = {"status": "ok", "cold_start": {
        "process_start_s": max(0.0, MAIN_AT - spawned), "import_s": imported - MAIN_AT, "build_s": built - imported,
        "first_call_s": answered - built, "total_s": answered - spawned}}
    if not np.all(np.isfinite(logits)):
        out.update(status="failed", reason="non-finite logits on the first request")
    if "parity" in job.phases:
        out["parity"] = output_parity(logits)
    out["settings"] = session.settings()
    out["peak_device_bytes"] = session.peak_device_bytes()
    return out


def parity_phase(session: Session, spec: WorkloadSpec, params, data: DataSource) -> dict[str, Any]:
    """Losses of the shared initial weights on the shared batches: step 0 and after K steps (no dropout)."""
    p = spec.for_parity()
    session.build(p, params)
    if spec.mode == "infer":
        loss = session.value(session.infer_step(session.put(data.batch(0))))
        return {"initial_loss": loss, "kstep_loss": None, "k": 0, "losses": [loss]}
    losses = [session.value(session.train_step(session.put(data.batch(i)))) for i in range(spec.parity_steps)]
    # losses[j] is computed before update j, so losses[0] is the initial weights' loss on batch 0
    out = {"initial_loss": losses[0], "kstep_loss": losses[-1], "k": spec.parity_steps - 1, "losses": losses,
           "learning_rate": p.optimizer.learning_rate}
    return {**out, **batchnorm_record(p, session.batchnorm_stats())}


def batchnorm_record(spec: WorkloadSpec, stats: list[np.ndarray] | None) -> dict[str, Any]:
    """The moving statistics after the parity steps, flat (per batch-norm node: its means, then its
    variances), at 7 significant digits: far finer than the parity tolerance, and compact in the results."""
    nodes = [layer.name for layer in spec.layers if layer.kind == "batchnorm"]
    if not stats or len(stats) != len(nodes):
        return {}
    flat = [float(f"{v:.7g}") for s in stats for v in np.asarray(s, dtype=np.float64).reshape(-1)]
    return {"bn_stats": flat, "bn_nodes": nodes, "bn_channels": [int(np.asarray(s).shape[-1]) for s in stats]}


def target_phase(session: Session, spec: WorkloadSpec, params, data: DataSource) -> dict[str, Any]:
    """Train until the held-out goal is met; training time excludes the evaluations.

    The goal is held-out accuracy >= ``target.accuracy``, or (a source with a known optimum) held-out loss
    <= the loss the true source scores on the same held-out set + ``target.excess_loss`` nats. Each curve
    point is ``[step, training seconds, accuracy]`` (``[..., accuracy, loss]`` for a loss goal).
    """
    target = spec.target
    assert target is not None
    session.build(spec, params)
    test = data.test_set()
    if test is None:  # synthetic data: measure against the training batches' own labels
        test = data.batch(0)
    x_test, y_test = test
    optimum = data.optimum() if target.metric == "loss" else None
    goal_loss = optimum["test_bayes_loss"] + target.excess_loss if optimum else None
    train_s, curve, reached_at, diverged_step = 0.0, [], None, None
    wall0 = time.perf_counter()
    accuracy, held_out_loss = 0.0, None
    for step in range(1, target.max_steps + 1):
        batch = session.put(data.batch(step - 1))
        t0 = time.perf_counter()
        loss = session.value(session.train_step(batch))
        train_s += time.perf_counter() - t0
        if not math.isfinite(loss):
            diverged_step = step - 1
            break
        if step % target.eval_every == 0 or step == target.max_steps:
            phase.report("target", step=step, of=target.max_steps)  # outside the step's clock readings
            logits = session.predict(x_test)
            accuracy = float(np.mean(np.argmax(logits, axis=-1) == y_test))
            if goal_loss is None:
                curve.append([step, round(train_s, 6), accuracy])
                done = accuracy >= target.accuracy
            else:
                held_out_loss = cross_entropy(logits, y_test)
                curve.append([step, round(train_s, 6), accuracy, round(held_out_loss, 6)])
                done = held_out_loss <= goal_loss
            if done:
                reached_at = step
                break
    out = {"metric": target.metric, "reached": reached_at is not None,
           "steps_to_target": reached_at, "time_to_target_s": train_s if reached_at else None,
           "train_s": train_s, "wall_s": time.perf_counter() - wall0,
           "final_accuracy": accuracy, "curve": curve, "diverged_step": diverged_step}
    if goal_loss is None:
        return {"target_accuracy": target.accuracy, **out}
    return {**out, "target_loss": goal_loss, "excess_loss": target.excess_loss, "final_loss": held_out_loss,
            "optimum_loss": optimum["test_bayes_loss"], "optimal_expected_loss": optimum["optimal_loss"],
            "entropy_rate": optimum["entropy_rate"]}


def serve(run: Callable[[Job], dict[str, Any]], argv: list[str] | None = None) -> int:
    """Read the job, run it, and write its result: every outcome becomes a status with a reason.

    Shared by the cell worker (this module) and the probe worker (:mod:`fwbench.probes.worker`).
    """
    job_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    with open(job_path, encoding="utf-8") as f:
        job = Job.from_dict(json.load(f))
    t0 = time.perf_counter()
    phase.report("running")  # the cell worker says more (loading, warm-up, timing ...); a probe worker no more
    try:
        out = run(job)
    except CellSkipped as exc:
        out = {"status": "skipped", "reason": str(exc)}
    except MemoryError as exc:
        traceback.print_exc()
        out = {"status": "oom", "reason": f"out of memory: {brief(exc)}"}
    except Exception as exc:  # a failure is data: recorded with its reason, the run goes on
        traceback.print_exc()
        out = {"status": "failed", "reason": brief(exc)}
    out["worker_s"] = time.perf_counter() - t0
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_json_atomic(result_path, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return serve(run_job, argv)


if __name__ == "__main__":
    sys.exit(main())
