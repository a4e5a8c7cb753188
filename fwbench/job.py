"""A job: everything a worker needs to run one cell, as plain JSON (no pickle across processes)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fwbench.config import RunnerOptions


@dataclass(frozen=True)
class Job:
    """One (workload, runner, device, repeat) cell, or one probe of a runner (``probe`` set).

    ``workload``: the validated workload spec as a dict (:meth:`fwbench.workload.WorkloadSpec.to_dict`);
    ``options``: how the worker runs it (:class:`~fwbench.config.RunnerOptions`, typed); ``phases``: which
    of ``timing``, ``parity``, ``target`` (or ``probe``) to run; ``base``: the workload a scenario variant
    was made from (:mod:`fwbench.scenarios`; ``None``: the workload itself).
    """

    workload: dict[str, Any]
    runner: str
    device: str
    repeat: int = 0
    options: RunnerOptions = field(default_factory=RunnerOptions)
    phases: tuple[str, ...] = ("timing", "parity")
    probe: str | None = None
    base: str | None = None

    @property
    def scenario(self) -> str:
        return self.workload.get("scenario", "train")

    @property
    def base_workload(self) -> str:
        return self.base or self.workload["name"]

    @property
    def cell_id(self) -> str:
        if self.probe is not None:
            return probe_id(self.workload["name"], self.probe, self.runner, self.device)
        return cell_id(self.workload["name"], self.runner, self.device, self.repeat)

    def with_threads(self, threads: int) -> "Job":
        return replace(self, options=replace(self.options, threads=threads))

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "runner": self.runner, "device": self.device, "repeat": self.repeat,
                "options": self.options.to_dict(), "phases": list(self.phases), "probe": self.probe,
                "base": self.base}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(workload=d["workload"], runner=d["runner"], device=d["device"], repeat=d.get("repeat", 0),
                   options=RunnerOptions.from_dict(d.get("options", {})), phases=tuple(d.get("phases", ())),
                   probe=d.get("probe"), base=d.get("base"))


def cell_id(workload: str, runner: str, device: str, repeat: int) -> str:
    """The key of a cell inside a run: ``workload/runner/device/repeat``."""
    return f"{workload}/{runner}/{device}/{repeat}"


def probe_id(workload: str, probe: str, runner: str, device: str) -> str:
    """The key of a probe record inside a run: ``workload/probe/runner/device``."""
    return f"{workload}/{probe}/{runner}/{device}"
