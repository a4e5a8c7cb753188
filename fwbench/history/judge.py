"""``fwbench history check``'s verdict: the change points of every cell's series and the exit code. Pure.

A cell fails (exit 1) when the **newest commit of the history** starts a step (see
:mod:`fwbench.history.changepoints`) that is a slowdown larger than the threshold:
``ratio > 1 + threshold``. A step at an older commit, a speedup, a smaller slowdown, a cell not measured
at the newest commit or a series too short to judge never fail; they are listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwbench.history.changepoints import Detection, detect
from fwbench.history.series import Commit, Series

VERDICTS = ("slower", "faster", "no step", "small step", "too short", "not measured")


@dataclass(frozen=True)
class CellCheck:
    series: Series
    detection: Detection
    verdict: str  # one of VERDICTS, about the newest commit
    detail: str

    @property
    def failed(self) -> bool:
        return self.verdict == "slower"


@dataclass(frozen=True)
class Check:
    cells: tuple[CellCheck, ...]
    commits: tuple[Commit, ...]
    threshold: float
    folder: str

    @property
    def newest(self) -> Commit:
        return self.commits[-1]

    @property
    def exit_code(self) -> int:
        return 1 if any(c.failed for c in self.cells) else 0


def check(series: list[Series], commits: list[Commit], threshold: float, folder: str = "") -> Check:
    if not commits:
        raise ValueError("an empty history")
    newest = commits[-1].commit
    return Check(tuple(_cell(s, newest, threshold) for s in series), tuple(commits), threshold, folder)


def _cell(s: Series, newest: str, threshold: float) -> CellCheck:
    det = detect([p.centre for p in s.points])
    if not s.points or s.points[-1].commit != newest:
        return CellCheck(s, det, "not measured", "no successful run of this cell at the newest commit")
    if not det.judged:
        return CellCheck(s, det, "too short", det.reason)
    step = det.step_at(len(s.points) - 1)
    if step is None:
        return CellCheck(s, det, "no step", "the newest commit continues the last segment")
    change = f"x{step.ratio:.3f} ({step.ratio - 1:+.1%})"
    if step.ratio > 1 + threshold:
        return CellCheck(s, det, "slower", f"the newest commit starts a slowdown step {change} > +{threshold:.0%}")
    if step.ratio < 1 / (1 + threshold):
        return CellCheck(s, det, "faster", f"the newest commit starts a speedup step {change}")
    return CellCheck(s, det, "small step", f"the newest commit starts a step {change} within ±{threshold:.0%}")
