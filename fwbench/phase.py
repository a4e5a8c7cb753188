"""What a worker is doing now, for the progress display: a tiny file the worker rewrites, the parent polls.

The parent (:func:`fwbench.launch.run_cell`) names the file in ``$FWBENCH_PHASE_FILE``. The worker calls
:func:`report` at each phase (``loading``, ``warm-up``, ``timing``, ``parity``, ...): one JSON object, written
to a temporary file and renamed over the old one, so a reader sees the old phase or the new one, never half
of one. It is cosmetic: a worker without the variable, or that cannot write, just reports nothing, and the
parent treats a missing, torn or garbled file as "no news" (:func:`read` never raises). Nothing here is
written between the clock readings of a timed step.

No imports beyond the standard library: both sides load this module.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

ENV = "FWBENCH_PHASE_FILE"
MAX_BYTES = 4096  # a phase is a few dozen bytes; anything longer is not one
MAX_NAME = 24

# phase name -> what the progress line says; "starting" is the parent's own (no phase file yet)
LABELS = {
    "starting": "starting worker",
    "running": "running",
    "loading": "loading the framework",
    "warm-up": "warm-up",
    "timing": "timing",
    "sync-check": "sync check",
    "parity": "parity",
    "target": "training to target",
    "calibration": "peak FLOP/s calibration",
}


@dataclass(frozen=True)
class Phase:
    """One phase of a worker. ``step``/``of``: how far it is (target training: step ``step`` of at most
    ``of``); ``step_s``: the median timed step, once known (the parent estimates what follows with it)."""

    name: str
    step: int | None = None
    of: int | None = None
    step_s: float | None = None

    @property
    def label(self) -> str:
        text = LABELS.get(self.name, self.name)
        if self.step is not None and self.of is not None:
            text += f" {self.step}/≤{self.of}"
        return text


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 else None


def _seconds(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 else None


def parse(text: str) -> Phase | None:
    """The phase in a phase file's text, or ``None`` when it holds none (empty, torn, not a phase)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    name = doc.get("phase")
    if not isinstance(name, str) or not name.strip():
        return None
    # a name from an unknown (newer) worker shows as itself: one short printable line
    name = "".join(ch if ch.isprintable() else "?" for ch in name.strip())[:MAX_NAME]
    return Phase(name, _count(doc.get("step")), _count(doc.get("of")), _seconds(doc.get("step_s")))


def read(path: Path) -> Phase | None:
    """The phase in ``path``; ``None`` when there is none (no file yet, unreadable, garbled). Never raises."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_BYTES:
        return None
    return parse(data.decode("utf-8", errors="replace"))


def report(name: str, *, step: int | None = None, of: int | None = None, step_s: float | None = None) -> None:
    """Worker side: say that phase ``name`` begins (no-op without ``$FWBENCH_PHASE_FILE``; never raises)."""
    path = os.environ.get(ENV)
    if not path:
        return
    doc: dict[str, Any] = {"phase": name}
    doc.update({k: v for k, v in (("step", step), ("of", of), ("step_s", step_s)) if v is not None})
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc))
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


class Announce:
    """A timing window (:class:`fwbench.timing.Window`) that reports ``name`` when the timed steps begin,
    then starts ``inner`` (if any): the timing phase starts at the first timed step, not before the warm-up."""

    def __init__(self, name: str, inner: Any = None):
        self.name, self.inner = name, inner

    def start(self) -> None:
        report(self.name)
        if self.inner is not None:
            self.inner.start()

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()


# ---- parent side: who listens ------------------------------------------------------------------------------
Listener = Callable[[Phase | None], None]
_listener: ContextVar[Listener | None] = ContextVar("fwbench_phase_listener", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Inside, :func:`fwbench.launch.run_cell` polls its worker's phase file and calls ``listener`` with what
    it finds (``None``: nothing yet) while it waits. Outside, it waits without polling."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def listener() -> Listener | None:
    """The listener set by :func:`listening`, if any."""
    return _listener.get()
