"""The results a report is built from: cells and probe records of one or more results files, indexed.

Every lookup returns the record *and* the file label it came from, so each measured number in a
report can cite ``file#cell-id: field`` (see :func:`source`). The records are the typed
:class:`fwbench.cells.Cell` and :class:`fwbench.cells.Probe` (validated by :func:`fwbench.results.cells`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Union

from fwbench.cells import Cell, Probe
from fwbench.results import cells, probes


@dataclass(frozen=True)
class Record:
    """A cell or a probe record, with the label of the results file that holds it."""

    file: str
    data: Union[Cell, Probe, Mapping[str, Any]]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def ok(self) -> bool:
        return self.data.get("status") == "ok"

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def source(record: Record, *fields: str) -> str:
    """``run.json#cnn/torch/cpu/0: summary.median, first_step_s`` — where a number in a report comes from."""
    return f"{record.file}#{record.id}: {', '.join(fields)}" if fields else f"{record.file}#{record.id}"


class Corpus:
    """Cells and probes of several results documents, given as ``(file label, document)`` pairs."""

    def __init__(self, docs: list[tuple[str, dict[str, Any]]]):
        self.docs = docs
        self.cells = [Record(label, c) for label, doc in docs for c in cells(doc, label)]
        self.probes = [Record(label, p) for label, doc in docs for p in probes(doc, label)]

    def groups(self) -> list[tuple[str, str]]:
        """(workload, device) pairs in the order they first appear."""
        seen: list[tuple[str, str]] = []
        for r in self.cells:
            key = (r["workload"], r["device"])
            if key not in seen:
                seen.append(key)
        return seen

    def workloads(self) -> list[str]:
        return list(dict.fromkeys(w for w, _ in self.groups()))

    def cell(self, runner: str, workload: str, device: str) -> Record | None:
        """The cell of ``runner`` on (workload, device): the first ``ok`` one, else the first of any status."""
        found = [r for r in self.cells if (r["runner"], r["workload"], r["device"]) == (runner, workload, device)]
        return next((r for r in found if r.ok), found[0] if found else None)

    def runner_cells(self, runner: str) -> Iterator[Record]:
        return (r for r in self.cells if r["runner"] == runner)

    def probe(self, probe: str, runner: str) -> Record | None:
        """The probe record ``probe`` for ``runner``: the first ``ok`` one, else the first of any status."""
        found = [r for r in self.probes if (r["probe"], r["runner"]) == (probe, runner)]
        return next((r for r in found if r.ok), found[0] if found else None)

    def quick(self) -> bool:
        return any((doc.get("config") or {}).get("quick") for _, doc in self.docs)
