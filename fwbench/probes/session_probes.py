"""Framework-neutral probes that drive a runner's own session (imported only in a probe worker)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from fwbench.data import DataSource
from fwbench.probes.context import ProbeContext

STEADY_STEPS = 3


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
        batches = [session.put(b) for b in DataSource(spec).batches(STEADY_STEPS + 1)]
        times = []
        for b in batches:
            t0 = time.perf_counter()
            session.value(session.train_step(b))
            times.append(time.perf_counter() - t0)
        now = session.retraces() or 0
        # the first shape's first call is the initial trace/compile, not a retrace
        shapes.append({"batch": spec.batch_size, "first_call_s": times[0], "steady_s": statistics.median(times[1:]),
                       "retraces": (now - before) if counts else 0})
        before = now
    return {"shapes": shapes, "counted": counts,
            "note": "" if counts else "eager execution: no graph to retrace",
            "retraces_total": sum(s["retraces"] for s in shapes)}
