"""Consoles and table cells for the terminal: results on stdout, progress on stderr, tables that survive a pipe.

With a terminal, rich sizes tables to the window. Without one (a CI log, ``> log.txt``, ``| head``) rich
would lay every table out at 80 columns and break headers and numbers mid-word; here such a console is
as wide as a table needs (:data:`NO_TTY_WIDTH` is only a ceiling), unless ``COLUMNS`` says otherwise.
User text reaches rich only as :class:`rich.text.Text` built by :func:`text` (control characters
replaced, never parsed as markup), so a name such as ``[/x]`` or ``[link=…]`` prints as itself.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from fwbench.textsafe import term_plain

NO_TTY_WIDTH = 4000  # a ceiling, not a layout width: tables without expand=True take their natural width


class PipeSafeConsole(Console):
    """A rich console for which a closed pipe (``| head -1``) is not an error: rich's default exits with
    status 1, which a CI gate would read as a regression. Here the console goes quiet and the command
    finishes with its own exit code."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if self.file is sys.stdout or self.file is sys.__stdout__:
            quiet_stdout()


def _wide(file: IO[str] | None, stderr: bool) -> bool:
    probe = Console(file=file, stderr=stderr)
    return not probe.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit()


def make_console(stderr: bool = False, file: IO[str] | None = None, **kwargs: Any) -> Console:
    """The console fwbench prints on: stdout for results (default), stderr for progress and status.

    Without a terminal and without ``COLUMNS``, lines are as long as their content needs."""
    if _wide(file, stderr) and "width" not in kwargs:
        kwargs["width"] = NO_TTY_WIDTH
    return PipeSafeConsole(file=file, stderr=stderr, **kwargs)


def fit(console: Console) -> Console:
    """``console`` itself on a terminal (or with ``COLUMNS`` set); else an equivalent wide console on the
    same stream, so that a console built by plain ``Console()`` still prints unbroken tables into a pipe."""
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit() or console.width > 80:
        return console
    return PipeSafeConsole(file=console.file, width=NO_TTY_WIDTH)


def unbroken_width(console: Console, table: Any) -> int:
    """The narrowest width at which ``table`` breaks no header and no ``no_wrap`` (numeric) column: those
    columns at their full width, the others at their longest word. 0 when it cannot be measured."""
    try:  # rich has no public per-column measure; its private one is stable across 13.x
        opts = console.options.update_width(NO_TTY_WIDTH)
        widths = [(m.maximum if col.no_wrap else m.minimum)
                  for col in table.columns for m in [table._measure_column(console, opts, col)]]  # noqa: SLF001
        return sum(widths) + table._extra_width  # noqa: SLF001
    except Exception:  # noqa: BLE001 - a measurement is an optimisation, never a failure
        return 0


def print_table(console: Console, table: Any) -> None:
    """Print ``table`` on ``console``; without a terminal, ``COLUMNS`` narrower than the table's
    :func:`unbroken_width` widens to it rather than break a number (a log line may be long, never wrong)."""
    need = 0 if console.is_terminal else unbroken_width(console, table)
    if need > console.width:
        console = PipeSafeConsole(file=console.file, width=need)
    console.print(table)


def text(value: Any, style: str = "") -> Text:
    """User text as a rich cell or line: printed as itself (no markup, no control sequences)."""
    return Text(term_plain(value), style=style)


def quiet_stdout() -> None:
    """After ``BrokenPipeError`` on stdout (the reader left, as ``| head -1`` does): point stdout at
    /dev/null so that the interpreter's final flush cannot fail again and turn the exit code into 1."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. a test's captured stdout)
        pass
