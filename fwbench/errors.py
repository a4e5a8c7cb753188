"""fwbench's own exceptions: each carries a one-line message fit to show a user as it is."""

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
