"""Framework-neutral probes that drive a runner's own session (imported only in a probe worker)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from fwbench.data import DataSource
from fwbench.errors import CellSkipped
from fwbench.probes.context import ProbeContext

STEADY_STEPS = 3


def _step_times(session: Any, batches: list[Any]) -> list[float]:
    """Seconds of one training step on each of ``batches`` (already put), waiting for each loss."""
    times = []
    for b in batches:
        t0 = time.perf_counter()
        session.value(session.train_step(b))
        times.append(time.perf_counter() - t0)
    return times


def shape_change(ctx: ProbeContext) -> dict[str, Any]:
    """Train on batch size B, then B+1, then B+2: per shape, the first call's time, the steady step time
    and the retraces / recompiles the runner counted during that shape's steps.

    Eager runners have no graph to retrace (recorded as 0). ``torch.compile`` marks a dimension dynamic
    after it changes once, so the third shape shows whether the second recompilation was the last.
    """
    session = ctx.session()
    session.build(ctx.spec, ctx.params)
    counts = session.retraces() is not None
    shapes = []
    before = session.retraces() or 0
    for extra in (0, 1, 2):
        spec = dataclasses.replace(ctx.spec, batch_size=ctx.spec.batch_size + extra)
        times = _step_times(session, [session.put(b) for b in DataSource(spec).batches(STEADY_STEPS + 1)])
        now = session.retraces() or 0
        # the first shape's first call is the initial trace/compile, not a retrace
        shapes.append({"batch": spec.batch_size, "first_call_s": times[0], "steady_s": statistics.median(times[1:]),
                       "retraces": (now - before) if counts else 0})
        before = now
    return {"shapes": shapes, "counted": counts,
            "note": "" if counts else "eager execution: no graph to retrace",
            "retraces_total": sum(s["retraces"] for s in shapes)}


def sequence_lengths(full: int) -> list[int]:
    """The lengths the sequence-length probe trains at: half, three quarters and all of the workload's."""
    return sorted({max(1, full // 2), max(1, 3 * full // 4), full})


def sequence_length(ctx: ProbeContext) -> dict[str, Any]:
    """Train one session at sequence lengths T/2, 3T/4 and T (32, 48, 64 for ``transformer``), in that order.

    The model is built once from the workload; each length's batches are the shared batches cut to that
    length (tokens and, for a per-token model, labels). Per length: the first call's time (a trace or a
    compile where the runner has a graph), the steady step time, and the retraces / recompiles the runner
    counted. A graph per length shows as one retrace per new length; dynamic shapes (``torch.compile``
    marks the dimension dynamic after it first changes) as retraces that stop.
    """
    spec = ctx.spec
    if not spec.tokens:
        raise CellSkipped(f"{spec.name} has no sequence input (no vocabulary): the probe needs a token workload")
    session = ctx.session()
    session.build(spec, ctx.params)
    counts = session.retraces() is not None
    full = [DataSource(spec).batch(i) for i in range(STEADY_STEPS + 1)]
    lengths, before = [], session.retraces() or 0
    for length in sequence_lengths(spec.input_shape[0]):
        times = _step_times(session, [session.put((x[:, :length], y[:, :length] if spec.per_token else y))
                                      for x, y in full])
        now = session.retraces() or 0
        lengths.append({"length": length, "first_call_s": times[0], "steady_s": statistics.median(times[1:]),
                        "retraces": (now - before) if counts else 0})
        before = now
    settings = session.settings()
    return {"lengths": lengths, "counted": counts, "retraces_total": sum(s["retraces"] for s in lengths[1:]),
            "note": "" if counts else "eager execution: no graph to retrace",
            "dynamic_shapes": settings.get("dynamic_shapes")}
