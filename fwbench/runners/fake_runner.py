"""The ``fake`` runner: no framework, a deterministic known step time, and faults on request.

It keeps orchestration testable (progress, failures, results) in milliseconds. Its step *sleeps* for a
known time, so its timings are genuine measurements of that sleep; its loss is a fixed decreasing curve.
It is hidden from ``--framework all`` and never appears in comparisons unless asked for.

Behaviour is chosen by the ``FWBENCH_FAKE`` environment variable, a comma list of ``BEHAVIOUR`` (every
cell) or ``WORKLOAD=BEHAVIOUR`` entries. Behaviours:

- ``ok`` (default); ``slow`` (steps take 30% longer);
- ``crash`` (``os.abort()``: SIGABRT); ``segv`` (a real segmentation fault: reads address 0);
- ``hang`` (starts a grandchild that ignores SIGTERM, then both sleep forever: the launcher must kill
  the whole process group);
- ``oom`` (allocates until the worker's memory limit refuses: ``MemoryError``);
- ``raise`` (a Python exception); ``garbage`` (prints noise and exits 0 without a result);
  ``flood`` (prints 4 MiB without a newline, then ``last words``, and exits 0 without a result);
- ``partial`` (writes half a result file, as a worker killed mid-write would, and exits);
- ``badresult`` (writes a well-formed JSON result whose fields are nonsense, and exits);
- ``nan`` (the loss turns NaN at step 3, i.e. step index 2); ``inf`` (the same with +inf).

``FWBENCH_FAKE_STEP_MS`` sets the step time (default 2 ms), also the time one inference request
(:meth:`FakeSession.serve`) sleeps. ``FWBENCH_FAKE_SAMPLE_BYTES`` (default 0) makes ``build`` allocate and
touch ``batch_size`` times that many bytes and keep them, like a framework's activations, so that a batch
sweep under ``--memory-limit`` genuinely runs out of memory (``MemoryError`` under ``RLIMIT_AS``) from some
batch size on. When ``FWBENCH_FAKE_PIDFILE`` names a
file, every worker appends ``worker PID BEHAVIOUR`` to it (and ``grandchild PID`` for ``hang``), so
that tests can check that no process outlives its cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from fwbench.data import Batch
from fwbench.runners.base import Session
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec


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

    lazy_loss = False  # its losses are Python floats (windowed timing records it)

    def setup(self) -> None:
        self.behaviour = behaviour_for(self.job.workload["name"], os.environ.get("FWBENCH_FAKE", ""))
        self.step_s = float(os.environ.get("FWBENCH_FAKE_STEP_MS", "2")) / 1000.0
        _note_pid("worker", os.getpid(), self.behaviour)
        if self.behaviour == "slow":
            self.step_s *= 1.3
        if self.behaviour == "crash":
            os.abort()
        if self.behaviour == "segv":
            import ctypes

            ctypes.string_at(0)  # dereferences NULL: the kernel sends SIGSEGV
        if self.behaviour == "hang":
            # A grandchild in the worker's process group that ignores SIGTERM: only killing the whole
            # group with SIGKILL ends it (as with a framework's helper processes).
            child = subprocess.Popen([sys.executable, "-c", _STUBBORN_CHILD], stdin=subprocess.DEVNULL)
            _note_pid("grandchild", child.pid, self.behaviour)
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
        if self.behaviour == "flood":
            sys.stdout.write("x" * (4 << 20) + "\nlast words\n")
            sys.stdout.flush()
            os._exit(0)
        if self.behaviour in ("partial", "badresult"):
            # The worker runs as `python -m fwbench.worker JOB RESULT`: write to RESULT behind its back.
            cell = {"status": "ok", "step_s": [0.002, 0.002, 0.002], "summary": {"median": 0.002}}
            text = json.dumps(cell)[:40] if self.behaviour == "partial" else json.dumps(
                {"status": "splendid", "step_s": ["fast", -1], "id": "../../etc/passwd"})
            print(f"fake runner: writing a {self.behaviour} result to {sys.argv[2]}", flush=True)
            with open(sys.argv[2], "w", encoding="utf-8") as f:
                f.write(text)
            os._exit(0)

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.spec, self.steps = spec, 0
        self.hoard = None  # the previous build's memory goes before this one's is asked for
        per_sample = int(os.environ.get("FWBENCH_FAKE_SAMPLE_BYTES", "0") or 0)
        if per_sample > 0:  # np.ones writes every page: resident, not merely reserved
            self.hoard = np.ones(spec.batch_size * per_sample, np.uint8)

    def put(self, batch: Batch) -> Any:
        return batch

    def train_step(self, batch: Any) -> Any:
        time.sleep(self.step_s)
        self.steps += 1
        if self.behaviour in ("nan", "inf") and self.steps >= 3:
            return float(self.behaviour)
        return 2.3 / (1.0 + 0.01 * self.steps)

    def infer_step(self, batch: Any) -> Any:
        time.sleep(self.step_s)
        return 2.3

    def value(self, loss: Any) -> float:
        return float(loss)

    def serve(self, payload: Any) -> np.ndarray:
        """One inference request: sleeps the step time, answers zero logits ``[batch, *label_shape, classes]``."""
        time.sleep(self.step_s)
        return self.predict(payload)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), *self.spec.label_shape, self.spec.classes), np.float32)

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step_ms": self.step_s * 1000.0, "behaviour": self.behaviour}
        if getattr(self, "hoard", None) is not None:
            out["held_bytes"] = int(self.hoard.nbytes)
        return out


_STUBBORN_CHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(3600)"


def _note_pid(role: str, pid: int, behaviour: str) -> None:
    path = os.environ.get("FWBENCH_FAKE_PIDFILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{role} {pid} {behaviour}\n")
