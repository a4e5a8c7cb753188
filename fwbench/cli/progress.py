"""Running jobs in front of a person: a progress bar and one line per finished job on stderr, and signals.

SIGINT, SIGTERM and SIGHUP while jobs run stop the current worker's process group, save what finished
and exit 130, 143 or 129 (128 + the signal's number). A signal ignored by whoever started fwbench (nohup,
a script's background job) stays ignored. Shared by ``run`` (cells, then probes) and ``probe``.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from fwbench.textsafe import term_markup, term_plain

EXIT_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}  # 128 + signal number


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Inside: SIGINT/SIGTERM/SIGHUP raise :class:`Interrupted` (once; later ones are ignored so that
    stopping the worker's group and saving are not cut short). Handlers are restored on the way out."""

    def on_signal(signum: int, frame: Any) -> None:
        for s in EXIT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    old = {s: signal.signal(s, on_signal) for s in EXIT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_with_progress(n: int, noun: str, body: Callable[[Callable[..., None]], Any], save: Callable[[], None],
                      err: Console, describe: Callable[[dict[str, Any]], str | None] = lambda r: None,
                      warn: Callable[[dict[str, Any]], str | None] = lambda r: None) -> int | None:
    """Run ``body(on_event)`` with a progress bar; returns the exit code of a signal that stopped it, or ``None``.

    ``save`` is called after an interruption (the signal may land between recording a job and saving it);
    ``describe`` adds an indented line under a finished job (e.g. a data-parallel summary); ``warn`` a
    warning line (e.g. a cell measured on a busy machine).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True)
    task = progress.add_task("starting", total=n)

    def on_event(kind: str, i: int, total: int, job: Any, record: dict[str, Any]) -> None:
        if kind == "start":  # names are user text: never rich markup
            progress.update(task, description=term_markup(f"{noun} {i + 1}/{total}: {record['id']}"))
            return
        progress.advance(task)
        status = record["status"]
        mark = "✓" if status == "ok" else "-" if status == "skipped" else "✗"
        err.print(term_plain(f"{mark} {record['id']}: {status}" + (f" ({record['reason']})" if record.get("reason") else "")),
                  highlight=False, markup=False)
        extra = describe(record)
        if extra:
            err.print("  " + term_plain(extra), highlight=False, markup=False)
        alarm = warn(record)
        if alarm:
            err.print(term_plain(alarm), highlight=False, markup=False)

    before = {s: signal.getsignal(s) for s in EXIT_SIGNALS}
    try:
        with signals_interrupt(), progress:
            body(on_event)
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
