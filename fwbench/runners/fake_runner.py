"""The ``fake`` runner: no framework, a deterministic known step time, and faults on request.

It keeps orchestration testable (progress, failures, results) in milliseconds. Its step *sleeps* for a
known time, so its timings are genuine measurements of that sleep; its loss is a fixed decreasing curve.
It is hidden from ``--framework all`` and never appears in comparisons unless asked for.

Behaviour is chosen by the ``FWBENCH_FAKE`` environment variable, a comma list of ``BEHAVIOUR`` (every
cell) or ``WORKLOAD=BEHAVIOUR`` entries. Behaviours: ``ok`` (default), ``crash`` (``os.abort()``),
``hang`` (sleeps forever), ``oom`` (allocates until refused), ``raise`` (a Python exception),
``garbage`` (prints noise and exits without a result), ``nan`` (loss turns NaN at step 3),
``slow`` (steps take 30% longer). ``FWBENCH_FAKE_STEP_MS`` sets the step time (default 2 ms).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from fwbench.data import Batch
from fwbench.runners.base import Session
from fwbench.weights import Params
from fwbench.workload import WorkloadSpec


def behaviour_for(workload: str, setting: str) -> str:
    """The behaviour that ``FWBENCH_FAKE``'s value ``setting`` asks of ``workload``."""
    chosen = "ok"
    for item in (s.strip() for s in setting.split(",") if s.strip()):
        name, sep, what = item.partition("=")
        if not sep:
            chosen = name
        elif name == workload:
            return what
    return chosen


class FakeSession(Session):
    """A framework-free session whose step sleeps ``FWBENCH_FAKE_STEP_MS`` milliseconds."""

    def setup(self) -> None:
        self.behaviour = behaviour_for(self.job.workload["name"], os.environ.get("FWBENCH_FAKE", ""))
        self.step_s = float(os.environ.get("FWBENCH_FAKE_STEP_MS", "2")) / 1000.0
        if self.behaviour == "slow":
            self.step_s *= 1.3
        if self.behaviour == "crash":
            os.abort()
        if self.behaviour == "hang":
            while True:
                time.sleep(3600)
        if self.behaviour == "oom":
            hoard = []
            while True:  # stopped by the worker's memory limit (RLIMIT_AS) -> MemoryError
                hoard.append(np.ones(64 * 1024 * 1024, np.uint8))
        if self.behaviour == "raise":
            raise RuntimeError("fake runner asked to fail (FWBENCH_FAKE=raise)")
        if self.behaviour == "garbage":
            sys.stdout.write("\x00\x1b[31mgarbage{{{not a result\n")
            sys.stdout.flush()
            os._exit(0)

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.spec, self.steps = spec, 0

    def put(self, batch: Batch) -> Any:
        return batch

    def train_step(self, batch: Any) -> Any:
        time.sleep(self.step_s)
        self.steps += 1
        if self.behaviour == "nan" and self.steps >= 3:
            return float("nan")
        return 2.3 / (1.0 + 0.01 * self.steps)

    def infer_step(self, batch: Any) -> Any:
        time.sleep(self.step_s)
        return 2.3

    def value(self, loss: Any) -> float:
        return float(loss)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), self.spec.classes), np.float32)

    def settings(self) -> dict[str, Any]:
        return {"step_ms": self.step_s * 1000.0, "behaviour": self.behaviour}
