"""fwbench's own exceptions, each with a one-line message fit to show a user as it is, and :func:`brief`."""

from __future__ import annotations


class FwbenchError(Exception):
    """Base class; the CLI prints ``str(exc)`` and exits 2 (usage or input error)."""


class WorkloadError(FwbenchError):
    """A workload file or mapping that does not validate: names the file, the field and what is allowed."""

    def __init__(self, field: str, message: str, file: str = ""):
        self.field, self.message, self.file = field, message, file
        super().__init__(self._text())

    def _text(self) -> str:
        where = ":".join(p for p in (self.file, self.field) if p)
        return f"{where}: {self.message}" if where else self.message

    def in_file(self, file: str) -> "WorkloadError":
        """The same error, attributed to ``file``."""
        return WorkloadError(self.field, self.message, file)


class ResultsError(FwbenchError):
    """A results file that cannot be used: missing, truncated, not JSON, or another schema version."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


class UsageError(FwbenchError):
    """A bad command-line choice (unknown runner, device, framework ...), with the valid names."""


class CellSkipped(Exception):
    """Raised inside a worker when the cell cannot run here (device absent, backend missing): status ``skipped``.

    Not a :class:`FwbenchError`: it never reaches the CLI, it becomes a cell's status and reason.
    """


def brief(exc: BaseException, limit: int = 500) -> str:
    """An exception as one line for a cell's reason: its type, its first line and, where the message goes on,
    its last line that says something.

    TensorFlow ends its errors with indented ``[[{{node ...}}]]`` and traceback lines, after the line that
    names the problem; those indented lines are passed over.
    """
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    said = [t for t in text[1:] if t.strip() and not t[:1].isspace()]
    last = said[-1] if said else ""
    msg = f"{type(exc).__name__}: {first}" + (f" ... {last}" if last and last != first else "")
    return msg[:limit]
