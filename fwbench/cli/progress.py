"""Running jobs in front of a person: a live status line and one line per finished job on stderr, and signals.

The live line names the running job, its phase (starting worker, loading the framework, warm-up, timing,
parity, ...: the worker reports it through :mod:`fwbench.phase`), the time in that phase against the
workload's timing budget, and an estimate of the time left (see :func:`expected_s`). It is transient: when
the jobs end, or a signal stops them, it is erased before anything else is printed.

SIGINT, SIGTERM and SIGHUP while jobs run erase the live line, stop the current worker's process group, save
what finished and exit 130, 143 or 129 (128 + the signal's number). A signal ignored by whoever started
fwbench (nohup, a script's background job) stays ignored. Shared by ``run`` (cells, then probes), ``probe``
and ``ab``.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from statistics import median
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from fwbench.phase import Phase, listening
from fwbench.textsafe import term_plain

EXIT_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}  # 128 + signal number
# Columns the live line leaves free at its end: a terminal echoes "^C" at the cursor, and a line as wide as
# the window would wrap that echo onto a new line, leaving a copy of the live line on screen when it is erased.
ECHO_MARGIN = 2
BAR_WIDTH = 20
REFRESH_PER_S = 4
BEFORE_TIMING = ("starting", "running", "loading", "warm-up")  # the whole timing budget is still ahead


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_interrupt(defer: Callable[[int], bool] = lambda signum: False) -> Iterator[None]:
    """Inside: SIGINT/SIGTERM/SIGHUP raise :class:`Interrupted` (once; later ones are ignored so that
    stopping the worker's group and saving are not cut short). ``defer(signum)`` is asked first: when it
    returns true, raising is left to it (see :class:`Screen`). Handlers are restored on the way out."""

    def on_signal(signum: int, frame: Any) -> None:
        for s in EXIT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        if not defer(signum):
            raise Interrupted(signum)

    old = {s: signal.signal(s, on_signal) for s in EXIT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---- estimates (pure) -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """What is known of a job's time before it runs. ``key``: what its repeats share (workload, probe, runner,
    device); ``timing_s``: the upper bound of its timed steps (the workload's ``[timing] max_seconds``), for a
    job that times steps; ``reports``: whether its worker reports phases (data-parallel ranks do not)."""

    key: tuple[str, ...]
    runner: str
    timing_s: float | None = None
    reports: bool = True


@dataclass(frozen=True)
class Finished:
    """A finished job, for estimating the ones like it: its time and how much of it was timed steps."""

    key: tuple[str, ...]
    runner: str
    duration_s: float
    timed_s: float = 0.0


def budget_of(job: Any) -> Budget:
    """The :class:`Budget` of a :class:`fwbench.job.Job` (cell or probe); whatever is missing stays unknown."""
    workload = job.workload if isinstance(getattr(job, "workload", None), dict) else {}
    probe = getattr(job, "probe", None)
    distributed = bool(workload.get("distributed"))
    runner = str(getattr(job, "runner", ""))
    key = (str(workload.get("name", "")), str(probe or ""), runner, str(getattr(job, "device", "")))
    limit = (workload.get("timing") or {}).get("max_seconds") if isinstance(workload.get("timing"), dict) else None
    timing_s = None
    if probe is None and not distributed and "timing" in getattr(job, "phases", ()) and _seconds(limit) is not None:
        timing_s = float(limit)
    return Budget(key, runner, timing_s, reports=not distributed)


def _seconds(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 else None


def finished_job(budget: Budget, record: dict[str, Any], duration_s: float) -> Finished | None:
    """What a finished job tells about the ones like it; ``None`` for a skipped one (it ran nothing)."""
    if record.get("status") == "skipped":
        return None
    steps = record.get("step_s")
    timed = sum(x for x in steps if _seconds(x) is not None) if isinstance(steps, list) else 0.0
    k = (record.get("timing") or {}).get("window_steps") if isinstance(record.get("timing"), dict) else None
    if (record.get("timing") or {}).get("mode") == "windowed" and isinstance(k, int) and k > 0:
        timed *= k  # windowed: each sample is one window's mean step time
    return Finished(budget.key, budget.runner, duration_s, float(timed))


def expected_s(budget: Budget, done: Sequence[Finished]) -> float | None:
    """How long a job like ``budget`` will take, or ``None`` when nothing says.

    An earlier repeat of the same job: its time. Else a job that times steps: its timing budget plus what
    finished jobs of the same runner (else of any runner) spent beyond their timed steps (starting, warm-up,
    parity, calibration). Else (a probe): the median time of the finished jobs.
    """
    same = [d.duration_s for d in done if d.key == budget.key]
    if same:
        return median(same)
    if budget.timing_s is None:
        return median(d.duration_s for d in done) if done else None
    overhead = ([d.duration_s - d.timed_s for d in done if d.runner == budget.runner and d.timed_s > 0]
                or [d.duration_s - d.timed_s for d in done if d.timed_s > 0])
    return budget.timing_s + (max(median(overhead), 0.0) if overhead else 0.0)


def remaining_s(budget: Budget, now: Phase | None, in_phase_s: float, elapsed_s: float, done: Sequence[Finished],
                step_s: float | None = None) -> float | None:
    """The running job's time left: its :func:`expected_s` less its time so far, but, unless an earlier repeat
    said how long it takes, at least what its phase says is ahead: before the timed steps the whole timing
    budget, during them the rest of it, while training to a target the steps left at the measured step time."""
    expected = expected_s(budget, done)
    if expected is None:
        return None
    left = max(expected - elapsed_s, 0.0)
    if any(d.key == budget.key for d in done):
        return left
    name = now.name if now is not None else "starting"
    if budget.timing_s is not None and budget.reports:
        if name in BEFORE_TIMING:
            left = max(left, budget.timing_s)
        elif name == "timing":
            left = max(left, budget.timing_s - in_phase_s)
    if name == "target" and now is not None and now.step is not None and now.of is not None and step_s:
        left = max(left, (now.of - now.step) * step_s)
    return left


def run_remaining_s(current: float | None, pending: Sequence[Budget], done: Sequence[Finished]) -> float | None:
    """The run's time left: the running job's and each pending job's :func:`expected_s`; ``None`` if one is unknown."""
    total = current
    for b in pending:
        e = expected_s(b, done)
        if e is None or total is None:
            return None
        total += e
    return total


def clock_text(seconds: float) -> str:
    """``0.4 s``, ``7.5 s``, ``12 s``, ``2:05``, ``1:02:03``."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---- the live line ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Now:
    """The running job, as the live line shows it (replaced whole on every change: the refresh thread reads
    one consistent snapshot without a lock)."""

    index: int = -1  # 0-based; -1 before the first job starts
    ident: str = ""
    budget: Budget | None = None
    started: float = 0.0
    phase: Phase | None = None
    phase_since: float = 0.0
    step_s: float | None = None


@dataclass(frozen=True)
class Line:
    """The live line's parts: what runs, the bar's fill (``None``: a pulse) and the phase with times."""

    what: str
    fraction: float | None
    detail: str


def status_line(noun: str, total: int, now: Now, t: float, done: Sequence[Finished],
                pending: Sequence[Budget]) -> Line:
    """The live line at time ``t`` (pure: every input given)."""
    if now.budget is None:
        return Line("starting", None, "")
    elapsed, in_phase = t - now.started, t - now.phase_since
    name = now.phase.name if now.phase is not None else "starting"
    label = now.phase.label if now.phase is not None else ("starting worker" if now.budget.reports else "running")
    detail = f"{label} {clock_text(in_phase)}"
    if name == "timing" and now.budget.timing_s is not None:
        detail += f" of ≤{clock_text(now.budget.timing_s)}"
    detail += f" · {noun} {clock_text(elapsed)}"
    left = remaining_s(now.budget, now.phase, in_phase, elapsed, done, now.step_s)
    run_left = run_remaining_s(left, pending, done)
    if run_left is not None:
        detail += f" · ETA ~{clock_text(run_left)}"
    share = None if left is None else (elapsed / (elapsed + left) if elapsed + left > 0 else 0.0)
    if total == 1:
        fraction = share
    else:
        fraction = (now.index + (share or 0.0)) / total
    return Line(f"{noun} {now.index + 1}/{total}: {now.ident}", fraction, detail)


class Display:
    """The live line's state, updated by the main thread, rendered by rich's refresh thread."""

    def __init__(self, noun: str, total: int, jobs: Sequence[Any] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.noun, self.total, self.clock = noun, total, clock
        self.budgets = [budget_of(j) for j in jobs] if jobs is not None and len(jobs) == total else None
        self.done: list[Finished] = []
        self.now = Now()
        self.hidden = False  # set from a signal handler: the next refresh draws an empty line

    def started(self, index: int, job: Any, ident: str) -> None:
        t = self.clock()
        self.now = Now(index, term_plain(ident), budget_of(job), t, None, t, None)

    def on_phase(self, found: Phase | None) -> None:
        """A phase read from the worker (``None``: nothing new, the last one stands)."""
        now = self.now
        if found is None or now.budget is None:
            return
        since = now.phase_since if now.phase is not None and now.phase.name == found.name else self.clock()
        self.now = replace(now, phase=found, phase_since=since, step_s=found.step_s or now.step_s)

    def finished(self, record: dict[str, Any]) -> None:
        now = self.now
        if now.budget is not None:
            item = finished_job(now.budget, record, self.clock() - now.started)
            if item is not None:
                self.done.append(item)

    def pending(self) -> list[Budget]:
        later = range(self.now.index + 1, self.total)
        if self.budgets is not None:
            return [self.budgets[i] for i in later]
        return [Budget(("?", str(i)), "?") for i in later]  # nothing known: like the finished ones

    def line(self) -> Line:
        return status_line(self.noun, self.total, self.now, self.clock(), list(self.done), self.pending())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.cells import cell_len
        from rich.console import Group
        from rich.constrain import Constrain
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        if self.hidden:
            yield Text("")
            return
        line = self.line()
        width = max(options.max_width - ECHO_MARGIN, 1)
        bar_width = BAR_WIDTH if width >= 100 else BAR_WIDTH // 2
        bar = (ProgressBar(total=None, width=bar_width, animation_time=self.clock()) if line.fraction is None
               else ProgressBar(total=1.0, completed=min(max(line.fraction, 0.0), 1.0), width=bar_width))
        what = Text(line.what, no_wrap=True, overflow="ellipsis")
        detail = Text(line.detail, style="cyan", no_wrap=True, overflow="ellipsis")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_column(width=bar_width, no_wrap=True)
        if cell_len(line.what) + cell_len(line.detail) + bar_width + 2 <= width:
            grid.add_column(no_wrap=True, overflow="ellipsis")
            grid.add_row(what, bar, detail)
            yield Constrain(grid, width)
        else:  # a narrow window: the phase and times on a line of their own
            grid.add_row(what, bar)
            yield Constrain(Group(grid, Text("  ") + detail), width)


class Screen:
    """The main thread's writes to the live display, and what a signal does to it.

    A signal that lands inside a write (a line printed above the display, starting or stopping it) waits for
    the write to finish: raising in the middle of rich's output could leave half a frame, or the display
    itself, on screen. Otherwise the display is hidden at once (its next refresh, within a quarter of a
    second, draws an empty line, while the worker is torn down) and the handler raises. The handler takes no
    lock: the main thread may hold the console's when the signal lands. The display is erased for good when
    the ``with`` of :func:`run_with_progress` stops it.
    """

    def __init__(self, display: Any):
        self.display = display
        self.busy = 0
        self.pending: int | None = None

    def defer(self, signum: int) -> bool:
        if self.busy:
            self.pending = signum
            return True
        self.display.hidden = True
        return False

    @contextmanager
    def writing(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
        if not self.busy and self.pending is not None:
            signum, self.pending = self.pending, None
            self.display.hidden = True
            raise Interrupted(signum)


def run_with_progress(n: int, noun: str, body: Callable[[Callable[..., None]], Any], save: Callable[[], None],
                      err: Console, describe: Callable[[dict[str, Any]], str | None] = lambda r: None,
                      warn: Callable[[dict[str, Any]], str | None] = lambda r: None,
                      jobs: Sequence[Any] | None = None) -> int | None:
    """Run ``body(on_event)`` with a live status line; returns the exit code of a signal that stopped it, or ``None``.

    ``save`` is called after an interruption (the signal may land between recording a job and saving it);
    ``describe`` adds an indented line under a finished job (e.g. a data-parallel summary); ``warn`` a
    warning line (e.g. a cell measured on a busy machine). ``jobs``: the ``n`` jobs in order, for the
    time-left estimate from their timing budgets (without them, pending jobs are estimated like finished ones).
    """
    from rich.live import Live

    display = Display(noun, n, jobs)
    live = Live(display, console=err, transient=True, refresh_per_second=REFRESH_PER_S)
    screen = Screen(display)

    def on_event(kind: str, i: int, total: int, job: Any, record: dict[str, Any]) -> None:
        if kind == "start":  # names are user text: never rich markup
            display.started(i, job, str(record["id"]))
            return
        display.finished(record)
        status = record["status"]
        mark = "✓" if status == "ok" else "-" if status == "skipped" else "✗"
        lines = [term_plain(f"{mark} {record['id']}: {status}" + (f" ({record['reason']})" if record.get("reason") else ""))]
        extra = describe(record)
        if extra:
            lines.append("  " + term_plain(extra))
        alarm = warn(record)
        if alarm:
            lines.append(term_plain(alarm))
        with screen.writing():
            for line in lines:
                err.print(line, highlight=False, markup=False)

    before = {s: signal.getsignal(s) for s in EXIT_SIGNALS}
    try:
        with signals_interrupt(screen.defer):
            try:
                with screen.writing():
                    live.start()
                with listening(display.on_phase):
                    body(on_event)
            finally:
                with screen.writing():
                    live.stop()  # erased (transient) before anything else is printed
    except (KeyboardInterrupt, Interrupted) as exc:
        for s in EXIT_SIGNALS:  # saving must not be cut short by a second signal
            signal.signal(s, signal.SIG_IGN)
        try:
            save()
        finally:
            for s, h in before.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)
        return EXIT_SIGNALS[getattr(exc, "signum", signal.SIGINT)]
    return None
