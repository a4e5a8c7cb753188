"""The Session interface every runner implements inside a worker process.

:class:`StepSession` is the step protocol shared by a single-worker :class:`Session` and a data-parallel
rank (:class:`fwbench.distributed.rank.RankEngine`): set up, build, put a batch, train a step, read its loss.

A session turns a :class:`~fwbench.workload.WorkloadSpec` and the shared initial parameters
(:mod:`fwbench.weights`, canonical channels-last layout) into a model, an optimizer and a step
function of its framework. The worker (:mod:`fwbench.worker`) drives it; timing lives in
:mod:`fwbench.timing` and never in a runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from fwbench.data import Batch
from fwbench.job import Job
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec

BATCH_POOL = 8  # distinct batches a session keeps resident on its device, cycled through during timing


class StepSession(ABC):
    """The training-step protocol of one process: methods are called in the order they are listed."""

    def __init__(self, job: Job):
        self.job = job
        self.device = job.device
        self.options = job.options

    def setup(self) -> None:
        """Configure threads, precision and device; raise :class:`CellSkipped` when the device is absent."""

    @abstractmethod
    def build(self, spec: WorkloadSpec, params: Params) -> None:
        """Build a fresh model from ``spec`` loaded with ``params``, plus optimizer and step functions."""

    @abstractmethod
    def put(self, batch: Batch) -> Any:
        """Move one channels-last NumPy batch to the device in this framework's layout (not timed)."""

    @abstractmethod
    def train_step(self, batch: Any) -> Any:
        """One optimizer step on a batch from :meth:`put`; returns the loss *before* the update (may be lazy)."""

    @abstractmethod
    def value(self, loss: Any) -> float:
        """Wait for the device and return ``loss`` as a Python float (this is the synchronisation point)."""

    # Whether train_step's loss stays on the device until value() (False: the step itself returns host values,
    # as Keras's train_on_batch does, so windowed timing cannot keep the host out of a window; recorded per cell).
    lazy_loss: bool = True

    def values(self, losses: list[Any]) -> list[float]:
        """A window's losses as floats, after the device barrier (windowed timing fetches them once per window)."""
        return [self.value(loss) for loss in losses]


class Session(StepSession):
    """One runner in one worker process: the step protocol, plus inference and what a cell records."""

    @abstractmethod
    def infer_step(self, batch: Any) -> Any:
        """One forward pass (inference mode) on a batch from :meth:`put`; returns its loss (may be lazy)."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for channels-last inputs ``x`` (inference mode), as NumPy; used for accuracy."""

    def host_input(self, x: np.ndarray) -> Any:
        """An inference request's payload as this runner's deployment receives it: host memory, in the
        runner's own layout (NCHW for PyTorch and its exports, channels-last otherwise). Not timed.

        ``x`` is a canonical channels-last float32 batch (or int32 token ids)."""
        return x

    def serve(self, payload: Any) -> np.ndarray:
        """One inference request, timed as a whole: ``payload`` (from :meth:`host_input`) onto the device,
        a forward pass in inference mode, and the logits back in host memory as a float32 NumPy array.
        Returning host memory is the synchronisation point (the device has finished)."""
        raise NotImplementedError(f"runner {self.job.runner} does not serve inference requests")

    def peak_device_bytes(self) -> int | None:
        """Peak device memory of this process, where the device reports it."""
        return None

    def settings(self) -> dict[str, Any]:
        """Conditions of the measurement: threads, layout, dtype, compiler flags ... (recorded per cell)."""
        return {}

    def batchnorm_stats(self) -> list[np.ndarray] | None:
        """The moving statistics of every ``batchnorm`` node of the built model, in node order.

        One float64 array ``[2, C]`` per node (moving mean, moving variance), channels in the canonical
        (channels-last, HWC-flatten) order, so that the parity check compares them across runners; ``[]``
        when the network has no batch norm, ``None`` where the runner cannot read them.
        """
        return None

    def retraces(self) -> int | None:
        """Graph (re)traces or recompiles seen since :meth:`build`, where the framework can count them."""
        return None
