"""The report as data: tables of text with their sources, built once and rendered by every writer.

An :class:`Evidence` is what one cell of a seed table says: its findings, one line each with the results
fields it comes from (measurements, and failures with the kind of their reason), the run that would fill
it in, and the ``verdict`` on the document's claim with its ``why`` (:mod:`fwbench.report.verdicts`). Its
``status`` is ``measured`` when any finding was measured, else ``failed``, else ``missing``; rows no
measurement can back are ``not_measured``.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fwbench.report.scenarios import ScenarioTable
    from fwbench.report.summary import Summary

from fwbench.report.context import Context

EVIDENCE_STATUSES = ("measured", "failed", "missing", "not_measured")
VERDICTS = ("supported", "contradicted", "mixed", "not_measured")


@dataclass
class Finding:
    """One line of evidence: a measurement (``measured``) or an attempt that did not succeed (``failed``,
    ``skipped``), the results fields it cites, and, where the line shortens a message, the full text
    (shown in the report's appendix)."""

    text: str
    sources: list[str]
    status: str = "measured"
    detail: str = ""


@dataclass
class Evidence:
    """Measured evidence for one (row, column) of a seed table, and the verdict on the document's claim."""

    findings: list[Finding] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    measured: int = 0
    failed: int = 0
    runs: dict[str, list[str]] = field(default_factory=dict)    # "-w cnn[ -d cuda]" -> runners to run
    probes: dict[str, list[str]] = field(default_factory=dict)  # runner -> probes to run
    not_measured: bool = False
    verdict: str = "not_measured"   # one of VERDICTS, set by fwbench.report.verdicts
    why: str = ""                   # one sentence: the rule's reading of the values

    @property
    def status(self) -> str:
        if self.not_measured:
            return "not_measured"
        return "measured" if self.measured else "failed" if self.failed else "missing"

    @property
    def parts(self) -> list[str]:
        """The text of each finding, one line each."""
        return [f.text for f in self.findings]

    @property
    def sources(self) -> list[str]:
        """Every results field the findings cite, each once, in the order first cited."""
        return list(dict.fromkeys(s for f in self.findings for s in f.sources))

    def add(self, text: str, sources: list[str], detail: str = "", **values: Any) -> None:
        """A measured finding, citing the results fields it comes from."""
        self.findings.append(Finding(text, list(sources), "measured", detail))
        self.values.update(values)
        self.measured += 1

    def fail(self, text: str, sources: list[str], detail: str = "", status: str = "failed") -> None:
        """A run or probe that was attempted and did not succeed (its reason is evidence too); said once even
        when two comparisons of one cell run into it."""
        finding = Finding(text, list(sources), status, detail)
        if finding in self.findings:
            return
        self.findings.append(finding)
        self.failed += 1

    def need_run(self, runners: list[str] | tuple[str, ...], where: str) -> None:
        """Evidence that ``fwbench run`` of ``runners`` with options ``where`` (``-w cnn``) would produce."""
        todo = self.runs.setdefault(where, [])
        todo += [r for r in runners if r not in todo]

    def need_probe(self, probe: str, runner: str) -> None:
        """Evidence that the probe ``probe`` of ``runner`` would produce."""
        todo = self.probes.setdefault(runner, [])
        if probe not in todo:
            todo.append(probe)

    @property
    def hints(self) -> list[str]:
        """The commands that would produce the missing evidence, one per kind of run."""
        q = shlex.quote  # runner, probe and workload names are user data: every hint is safe to paste
        out = [f"fwbench run {' '.join(f'-r {q(r)}' for r in runners)} {where}" for where, runners in self.runs.items()]
        by_probes: dict[tuple[str, ...], list[str]] = {}
        for runner, probes in self.probes.items():
            by_probes.setdefault(tuple(probes), []).append(runner)
        out += [f"fwbench probe {' '.join(f'-r {q(r)}' for r in runners)} {' '.join(f'-p {q(p)}' for p in probes)}"
                for probes, runners in by_probes.items()]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "verdict": self.verdict, "why": self.why, "parts": self.parts,
                "findings": [asdict(f) for f in self.findings], "hints": self.hints, "sources": self.sources,
                "values": self.values}


@dataclass
class SeedRow:
    key: str
    label: str
    claims: dict[str, str]          # column key -> the document's claim
    evidence: dict[str, Evidence]   # column key -> measured evidence


@dataclass
class SeedTable:
    key: str
    title: str
    columns: list[tuple[str, str]]  # (key, label)
    rows: list[SeedRow]


@dataclass
class PerfRow:
    """One cell of a performance table: display text per column plus the raw numbers behind it."""

    text: dict[str, str]
    values: dict[str, Any]
    source: str


@dataclass
class PerfTable:
    workload: str
    device: str
    title: str
    reference: str
    rows: list[PerfRow]
    legend: list[str] = field(default_factory=list)  # lines under the table (what "noisy" and "~" mean)


@dataclass
class ProbeRow:
    probe: str
    runner: str
    status: str
    text: str
    source: str


@dataclass
class Report:
    lang: str
    reference: str
    environment: list[str]
    notes: list[str]
    parity: list[str]
    performance: list[PerfTable]
    seed_tables: list[SeedTable]
    probes: list[ProbeRow]
    plots: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    utilisation: list[list[str]] = field(default_factory=list)  # rows of fwbench.report.utilisation
    context: Context | None = None  # the reader's context (fwbench.report.context)
    utilisation_notes: list[str] = field(default_factory=list)  # e.g. peaks that disagree within one run
    summary: Summary | None = None  # fwbench.report.summary: the fastest runner and ratios per (workload, device)
    scenarios: list[ScenarioTable] = field(default_factory=list)  # fwbench.report.scenarios: latency, sweeps, cold start

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for t, table in zip(d["seed_tables"], self.seed_tables):
            for r, row in zip(t["rows"], table.rows):
                r["evidence"] = {k: e.to_dict() for k, e in row.evidence.items()}
        return d
