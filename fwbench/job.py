"""A job: everything a worker needs to run one cell, as plain JSON (no pickle across processes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Job:
    """One (workload, runner, device, repeat) cell.

    ``threads``: intra-op threads (0 = the machine's cores); ``options``: runner options such as
    ``channels_last`` or ``precision``; ``phases``: which of ``timing``, ``parity`` and ``target`` to run.
    """

    workload: dict[str, Any]
    runner: str
    device: str
    repeat: int = 0
    threads: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    phases: tuple[str, ...] = ("timing", "parity")

    @property
    def cell_id(self) -> str:
        return cell_id(self.workload["name"], self.runner, self.device, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phases"] = list(self.phases)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        d = dict(d)
        d["phases"] = tuple(d.get("phases", ()))
        return cls(**d)


def cell_id(workload: str, runner: str, device: str, repeat: int) -> str:
    """The key of a cell inside a run: ``workload/runner/device/repeat``."""
    return f"{workload}/{runner}/{device}/{repeat}"
