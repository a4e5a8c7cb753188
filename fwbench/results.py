"""Results: one versioned JSON document per run, the source of truth for every table and report.

Document (``schema_version`` 1)::

    {"schema_version": 1, "fwbench_version": "0.1.0", "run_id": "...", "created": "ISO-8601 UTC",
     "config": {...run options...}, "environment": {...see fwbench.env...},
     "workloads": {name: WorkloadSpec.to_dict()}, "parity": {...see fwbench.parity...},
     "cells": [cell, ...], "probes": [probe, ...]}   # probes: optional, see fwbench.probes

A cell (see ``docs/results.md`` for every field): ``id`` (``workload/runner/device/repeat``),
``workload``, ``runner``, ``family``, ``device``, ``repeat``, ``status`` (one of :data:`STATUSES`),
``reason``, ``warmup_s`` and ``step_s`` (raw seconds per step), ``summary`` (median, 95% CI, ...),
``first_step_s``, ``samples_per_s``, ``peak_rss_bytes``, ``peak_device_bytes``, ``final_loss``,
``parity`` (initial and K-step losses, and the run's verdict), ``settings``, ``versions``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from fwbench import __version__
from fwbench.errors import ResultsError
from fwbench.jsonio import write_json_atomic

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed", "crashed", "timeout", "oom", "skipped")
# A history of the format, so that a reader of an old file knows what changed (pyperf keeps one too).
SCHEMA_HISTORY = {1: "first version"}


def new_run_id() -> str:
    """Sortable and unique even for two runs started in the same second: UTC time + pid + random."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}-{secrets.token_hex(4)}"


def new_document(config: dict[str, Any], environment: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "fwbench_version": __version__, "run_id": run_id or new_run_id(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": config,
            "environment": environment, "workloads": {}, "parity": {}, "cells": []}


def save(path: Path | str, doc: dict[str, Any]) -> None:
    """Write the document atomically (called after every cell)."""
    write_json_atomic(path, doc)


def fallback_path(doc: dict[str, Any]) -> Path:
    """Where :func:`save_or_fallback` puts a run whose results file cannot be written: the temp folder."""
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(doc.get("run_id", "run")))[:80]
    return Path(tempfile.gettempdir()) / f"fwbench-{safe_id}.json"


def save_or_fallback(path: Path | str, doc: dict[str, Any]) -> None:
    """Save ``doc`` to ``path``; when that fails (disk full, read-only, removed folder), flush it elsewhere.

    The measurements held in memory go to :func:`fallback_path` (or, failing that, the home folder) and a
    :class:`ResultsError` names both files and how to continue: ``fwbench run --resume FALLBACK``.
    """
    try:
        save(path, doc)
        return
    except OSError as exc:
        problem = exc.strerror or str(exc)
    n = len(doc.get("cells", []))
    for where in (fallback_path(doc), Path.home() / fallback_path(doc).name):
        try:
            save(where, doc)
        except OSError:
            continue
        raise ResultsError(str(path), f"cannot write results ({problem}); the {n} finished cell(s) were saved to "
                                      f"{where} instead; `fwbench run --resume {where}` finishes the run")
    raise ResultsError(str(path), f"cannot write results ({problem}), nor a copy in the temp or home folder; "
                                  f"the {n} finished cell(s) of this run are lost")


def read(path: Path | str) -> dict[str, Any]:
    """Read and check a results document; raises :class:`ResultsError` with a one-line reason."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(p, "no such file") from None
    except IsADirectoryError:
        raise ResultsError(p, "is a directory, not a results file") from None
    except UnicodeDecodeError:
        raise ResultsError(p, "not a results file (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultsError(p, f"cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # cut short: the error is at the very end, or a string runs to the end of the file
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated" if cut else "not valid JSON"
        raise ResultsError(p, f"{what} (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ResultsError(p, "not a results file (values nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ResultsError(p, f"not valid JSON ({exc})") from None
    return check(doc, p)


def check(doc: Any, where: str = "<results>") -> dict[str, Any]:
    """Validate the structure of a parsed document (version first, then the fields readers rely on)."""
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ResultsError(where, "not an fwbench results file (no schema_version)")
    version = doc["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(where, f"schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(where, f"schema version {version} is newer than this fwbench reads ({SCHEMA_VERSION}); "
                                  f"written by fwbench {doc.get('fwbench_version', '?')}, upgrade fwbench")
    if version < SCHEMA_VERSION:
        raise ResultsError(where, f"schema version {version} is older than this fwbench reads ({SCHEMA_VERSION})")
    for key, typ in (("run_id", str), ("config", dict), ("environment", dict), ("cells", list)):
        if not isinstance(doc.get(key), typ):
            raise ResultsError(where, f"field {key!r} missing or not a {typ.__name__}")
    for i, cell in enumerate(doc["cells"]):
        _check_cell(cell, f"{where}: cells[{i}]")
    probes = doc.get("probes", [])  # optional: documents written before probes existed have none
    if not isinstance(probes, list):
        raise ResultsError(where, "field 'probes' must be a list")
    for i, probe in enumerate(probes):
        check_probe(probe, f"{where}: probes[{i}]")
    return doc


def check_probe(probe: Any, where: str) -> None:
    """Validate one capability-probe record (see ``fwbench.probes``): identity, status, findings."""
    if not isinstance(probe, dict):
        raise ResultsError(where, "not an object")
    for key in ("id", "probe", "runner", "device"):
        if not isinstance(probe.get(key), str):
            raise ResultsError(where, f"field {key!r} missing or not a string")
    if probe.get("status") not in STATUSES:
        raise ResultsError(where, f"status {probe.get('status')!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(probe.get("findings", {}), dict):
        raise ResultsError(where, "field 'findings' must be an object")


def check_cell(cell: Any, where: str) -> None:
    """Validate one cell's fields (raises :class:`ResultsError`); also applied to a worker's result file."""
    _check_cell(cell, where)


def _check_cell(cell: Any, where: str) -> None:
    if not isinstance(cell, dict):
        raise ResultsError(where, "not an object")
    for key in ("id", "workload", "runner", "device"):
        if not isinstance(cell.get(key), str):
            raise ResultsError(where, f"field {key!r} missing or not a string")
    if cell.get("status") not in STATUSES:
        raise ResultsError(where, f"status {cell.get('status')!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(cell.get("repeat", 0), int):
        raise ResultsError(where, "field 'repeat' is not an integer")
    steps = cell.get("step_s", [])
    if not isinstance(steps, list) or not all(_is_number(x) and x >= 0 for x in steps):
        raise ResultsError(where, "field 'step_s' must be a list of non-negative seconds")
    summary = cell.get("summary")
    if summary is not None and (not isinstance(summary, dict)
                                or not all(_is_number(summary.get(k)) for k in ("median", "ci_low", "ci_high", "n"))):
        raise ResultsError(where, "field 'summary' must hold numbers median, ci_low, ci_high and n")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def upsert_cell(doc: dict[str, Any], cell: dict[str, Any]) -> None:
    """Add ``cell`` to the document, replacing an earlier cell with the same id (used by --resume)."""
    doc["cells"] = [c for c in doc["cells"] if c.get("id") != cell["id"]] + [cell]


def load(paths: list[str | Path] | str | Path) -> "Any":
    """Cells of one or more results files as a pandas DataFrame, one row per cell.

    Columns: ``run_id``, ``file``, the cell's scalar fields (``workload``, ``runner``, ``device``, ``status``,
    ``samples_per_s`` ...), ``median_s``/``ci_low_s``/``ci_high_s`` from the summary, and
    ``initial_loss``/``kstep_loss``/``parity_status`` from the parity record.
    """
    import pandas as pd

    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows = []
    for path in paths:
        doc = read(path)
        for cell in doc["cells"]:
            row = {"run_id": doc["run_id"], "file": str(path)}
            row.update({k: v for k, v in cell.items() if not isinstance(v, (list, dict))})
            summary = cell.get("summary") or {}
            row.update(median_s=summary.get("median"), ci_low_s=summary.get("ci_low"), ci_high_s=summary.get("ci_high"))
            parity = cell.get("parity") or {}
            row.update(initial_loss=parity.get("initial_loss"), kstep_loss=parity.get("kstep_loss"),
                       parity_status=parity.get("status"))
            rows.append(row)
    return pd.DataFrame(rows)
