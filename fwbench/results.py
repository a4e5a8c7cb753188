"""Results: one versioned JSON document per run, the source of truth for every table and report.

Document (``schema_version`` 2)::

    {"schema_version": 2, "fwbench_version": "0.1.0", "run_id": "...", "created": "ISO-8601 UTC",
     "config": RunConfig.to_dict(), "environment": {...see fwbench.env...},
     "workloads": {name: WorkloadSpec.to_dict()}, "parity": {...see fwbench.parity...},
     "cells": [cell, ...], "probes": [probe, ...]}   # probes: optional, see fwbench.probes

An A/B document (``fwbench ab``) also holds ``"ab": {"rounds", "order", "sides": {"A": side, "B": side}}``
(each side's interpreter, extra environment variables and captured environment) and a ``side`` in every
cell; :func:`side_view` turns one side into a plain document, which every reader understands.

Readers get typed records: :func:`cells` and :func:`probes` (see :mod:`fwbench.cells`, which documents and
checks every field a reader uses). :func:`read` upgrades an older document (:func:`upgrade`,
:data:`SCHEMA_HISTORY`) and refuses anything that does not validate with one line (:class:`ResultsError`).

Non-finite numbers are stored as ``null`` plus a ``nonfinite`` flag (path -> ``nan``/``inf``/``-inf``) in the
cell or probe that holds them, or at the top level for the rest of the document; :func:`read` restores
them. File safety for writers: :func:`check_target` before a run, :func:`lock` around it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from fwbench import __version__
from fwbench.cells import AB, CONFIG, ENVIRONMENT, RUN_PARITY, WORKLOADS, Cell, Invalid, Probe
from fwbench.errors import ResultsError, UsageError
from fwbench.jsonio import FlagError, decode_finite, dumps, encode_finite, kind_of, real_target, umask, \
    write_json_atomic

SCHEMA_VERSION = 2
# A history of the format, so that a reader of an old file knows what changed (pyperf keeps one too).
SCHEMA_HISTORY = {
    1: "first version",
    2: "non-finite numbers stored as null with a 'nonfinite' flag (strict JSON); config is RunConfig.to_dict(): "
       "config.threads moved to config.options.threads, options gained tf32, channels_last, precision, "
       "sync_check, keras_jit_compile and distributed with their defaults; each cell's options gained threads",
}
# RunnerOptions' defaults, given to v1 documents that did not record them
OPTION_DEFAULTS = {"precision": "fp32", "tf32": False, "channels_last": False, "sync_check": False,
                   "keras_jit_compile": None, "distributed": None}


def new_run_id() -> str:
    """Sortable and unique even for two runs started in the same second: UTC time + pid + random."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}-{secrets.token_hex(4)}"


def new_document(config: dict[str, Any], environment: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "fwbench_version": __version__, "run_id": run_id or new_run_id(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": upgrade_config(config),
            "environment": environment, "workloads": {}, "parity": {}, "cells": []}


# ---- the typed view ------------------------------------------------------------------------------------
def cells(doc: dict[str, Any], where: str = "<results>") -> list[Cell]:
    """The document's cells as validated :class:`Cell` records (raises :class:`ResultsError`)."""
    return _records(doc, "cells", Cell, where, required=True)


def probes(doc: dict[str, Any], where: str = "<results>") -> list[Probe]:
    """The document's capability-probe records as validated :class:`Probe` records (none when absent)."""
    return _records(doc, "probes", Probe, where, required=False)


def _records(doc: Any, key: str, typ: Any, where: str, required: bool) -> list[Any]:
    raw = doc.get(key, None if required else []) if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise ResultsError(where, f"field {key!r} missing or not a list" if required else f"field {key!r} must be a list")
    try:
        return [typ.from_dict(r, f"{key}[{i}]") for i, r in enumerate(raw)]
    except Invalid as exc:
        raise ResultsError(where, str(exc)) from None


def is_ab(doc: dict[str, Any]) -> bool:
    """Whether ``doc`` holds the two sides of an ``fwbench ab`` job."""
    return isinstance(doc.get("ab"), dict)


def side_view(doc: dict[str, Any], side: str) -> dict[str, Any]:
    """One side of an A/B document as a plain results document: that side's cells (ids without the side
    prefix) and its captured environment; every reader of results files understands it."""
    if not is_ab(doc):
        return doc
    sides = doc["ab"]["sides"]
    if side not in sides:
        raise ResultsError(doc.get("run_id", "<results>"), f"has no side {side!r} (sides: {', '.join(sides)})")
    out = {k: v for k, v in doc.items() if k != "ab"}
    out["environment"] = sides[side]["environment"]
    out["cells"] = [{**{k: v for k, v in c.items() if k != "side"}, "id": c["id"].partition(":")[2] or c["id"]}
                    for c in doc["cells"] if c.get("side") == side]
    out["run_id"] = f"{doc.get('run_id')}:{side}"
    return out


SIDE_CHOICES = ("A", "B")


def read_side(path: Path | str, side: str | None, flag: str = "--side") -> dict[str, Any]:
    """:func:`read`, then one side of an A/B document (``side``), which a plain document ignores. An A/B
    document without a side is refused: its two sides' cells must not be mixed."""
    doc = read(path)
    if side is not None and side not in SIDE_CHOICES:
        raise UsageError(f"{flag} {side!r}: choose A or B")
    if not is_ab(doc):
        return doc
    if side is None:
        raise ResultsError(str(path), f"holds both sides of an `fwbench ab` job: choose one with {flag} A or "
                                      f"{flag} B (or give it alone to `fwbench compare` to judge B against A)")
    return side_view(doc, side)


# ---- reading -------------------------------------------------------------------------------------------
def read(path: Path | str) -> dict[str, Any]:
    """Read, upgrade and check a results document; raises :class:`ResultsError` with a one-line reason."""
    p = str(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ResultsError(p, f"is {kind_of(st.st_mode)}, not a results file")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(p, "no such file") from None
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
    """Upgrade a parsed document to :data:`SCHEMA_VERSION`, restore its non-finite numbers, validate it."""
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ResultsError(where, "not an fwbench results file (no schema_version)")
    version = doc["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(where, f"schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(where, f"schema version {version} is newer than this fwbench reads ({SCHEMA_VERSION}); "
                                  f"written by fwbench {doc.get('fwbench_version', '?')}, upgrade fwbench")
    if version < min(SCHEMA_HISTORY):
        raise ResultsError(where, f"schema version {version} is older than this fwbench reads ({min(SCHEMA_HISTORY)} "
                                  f"to {SCHEMA_VERSION})")
    for key, typ in (("run_id", str), ("config", dict), ("environment", dict), ("cells", list)):
        if not isinstance(doc.get(key), typ):
            raise ResultsError(where, f"field {key!r} missing or not a {typ.__name__}")
    doc = upgrade(doc)
    try:
        decode(doc)
        CONFIG(doc["config"], "config")
        ENVIRONMENT(doc["environment"], "environment")
        WORKLOADS(doc.get("workloads", {}), "workloads")
        RUN_PARITY(doc.get("parity", {}), "parity")
        if "ab" in doc:
            AB(doc["ab"], "ab")
        if not isinstance(doc.get("fwbench_version", ""), str) or not isinstance(doc.get("created", ""), str):
            raise Invalid("fwbench_version", "and 'created' must be strings")
    except (Invalid, FlagError) as exc:
        raise ResultsError(where, str(exc)) from None
    cells(doc, where)
    probes(doc, where)
    return doc


def check_cell(cell: Any, where: str) -> None:
    """Validate one cell's fields (raises :class:`ResultsError`); also applied to a worker's result file."""
    try:
        Cell.from_dict(cell)
    except Invalid as exc:
        raise ResultsError(where, str(exc)) from None


# ---- versions ------------------------------------------------------------------------------------------
def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """Bring a document of any version in :data:`SCHEMA_HISTORY` to :data:`SCHEMA_VERSION`, step by step."""
    while doc["schema_version"] < SCHEMA_VERSION:
        doc = UPGRADES[doc["schema_version"]](doc)
    return doc


def upgrade_config(config: Any) -> Any:
    """A v1 ``config`` (top-level ``threads``, a few options) in the v2 shape (``RunConfig.to_dict()``)."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    threads = out.pop("threads", None)
    options = out.get("options")
    options = dict(options) if isinstance(options, dict) else {} if options is None else options
    if isinstance(options, dict):
        options = {**OPTION_DEFAULTS, **options}
        if "threads" not in options and threads is not None:
            options["threads"] = threads
    out["options"] = options
    return out


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc, schema_version=2, config=upgrade_config(doc["config"]))
    new_cells = []
    for cell in doc["cells"]:
        if isinstance(cell, dict) and "threads" in cell and isinstance(cell.get("options", {}), dict):
            cell = dict(cell, options={**cell.get("options", {}), "threads": cell["threads"]})
        new_cells.append(cell)
    out["cells"] = new_cells
    return out


UPGRADES = {1: _v1_to_v2}


# ---- non-finite numbers --------------------------------------------------------------------------------
def encode(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` fit for strict JSON: each cell's and probe's non-finite numbers are ``null`` and
    flagged in that record's ``nonfinite``, the rest of the document's in the top-level ``nonfinite``."""
    out = dict(doc)
    for key in ("cells", "probes"):
        if isinstance(out.get(key), list):
            out[key] = [encode_finite(r) for r in out[key]]
    return encode_finite(out)


def decode(doc: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`encode` in place (raises :class:`fwbench.jsonio.FlagError` on a flag that does not fit)."""
    decode_finite(doc)
    for key in ("cells", "probes"):
        records = doc.get(key)
        for i, record in enumerate(records if isinstance(records, list) else []):
            try:
                decode_finite(record)
            except FlagError as exc:
                raise FlagError(f"{key}[{i}]: {exc}") from None
    return doc


def to_json(doc: dict[str, Any]) -> str:
    """The exact text :func:`save` writes for ``doc``."""
    return dumps(encode(doc))


# ---- writing -------------------------------------------------------------------------------------------
def save(path: Path | str, doc: dict[str, Any]) -> None:
    """Write the document atomically (called after every cell); symlinks are followed, special files refused."""
    write_json_atomic(path, encode(doc))


def fallback_path(doc: dict[str, Any], folder: Path | str | None = None) -> Path:
    """Where :func:`save_or_fallback` puts a run whose results file cannot be written: the temp folder."""
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(doc.get("run_id", "run")))[:80]
    return Path(folder if folder is not None else tempfile.gettempdir()) / f"fwbench-{safe_id}.json"


def _fallback_folders() -> Iterator[Path]:
    """The temp folder ($TMPDIR first), the home folder, the current folder: whichever can be named."""
    seen: set[str] = set()
    for get in (tempfile.gettempdir, lambda: os.environ.get("TMPDIR") or None, lambda: str(Path.home()), os.getcwd):
        try:
            folder = get()
        except (OSError, RuntimeError, KeyError):  # Path.home(): HOME unset and the uid unknown
            continue
        if folder and folder not in seen:
            seen.add(folder)
            yield Path(folder)


def save_or_fallback(path: Path | str, doc: dict[str, Any]) -> None:
    """Save ``doc`` to ``path``; when that fails (disk full, read-only, removed folder), flush it elsewhere.

    The measurements held in memory go to :func:`fallback_path` in the first of the temp folder ($TMPDIR),
    the home folder (never asked when it cannot be known) and the current folder that takes them, and a :class:`ResultsError` names both files and
    how to continue: ``fwbench run --resume FALLBACK``.
    """
    try:
        save(path, doc)
        return
    except OSError as exc:
        problem = exc.strerror or str(exc)
    n = len(doc.get("cells", []))
    for folder in _fallback_folders():
        where = fallback_path(doc, folder)
        try:
            save(where, doc)
        except OSError:
            continue
        raise ResultsError(str(path), f"cannot write results ({problem}); the {n} finished cell(s) were saved to "
                                      f"{where} instead; `fwbench run --resume {where}` finishes the run")
    raise ResultsError(str(path), f"cannot write results ({problem}), nor a copy in the temp, home or current "
                                  f"folder; the {n} finished cell(s) of this run are lost")


def check_target(path: Path | str) -> None:
    """Fail before any work if ``path`` cannot take a results file.

    Refused: an existing target (after following symlinks) that is not a regular file — a directory,
    character or block device (``/dev/null``), FIFO, socket (``/dev/stdout`` leads to one of these) — and a
    folder that cannot be created or written. The folder is created when missing. Raises
    :class:`ResultsError` for a target that is not a regular file, :class:`UsageError` for a place that
    cannot be written ("cannot write results to PATH: Permission denied").
    """
    p = str(path)
    target = real_target(path)
    try:
        st = os.stat(path)  # the kernel follows every link, /proc/self/fd/N included
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a file where a folder should be, a folder that may not be searched
        raise UsageError(f"cannot write results to {p}: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        hint = f"; give a file name such as {Path(p) / 'run.json'}" if stat.S_ISDIR(st.st_mode) else ""
        raise ResultsError(p, f"is {kind_of(st.st_mode)}, not a regular file: results are written only to "
                              f"regular files{hint}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".write-test", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write results to {p}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def lock(path: Path | str) -> Iterator[Path]:
    """Hold an exclusive advisory lock on results file ``path`` for a whole run.

    The lock is ``flock`` on a sidecar ``.<name>.lock`` beside the real target (symlinks followed), holding
    the owner's pid. A second run on the same file fails at once with :class:`ResultsError` "... is being
    written by another fwbench run (pid N)". The sidecar is removed on exit. Yields the sidecar's path.
    """
    p = str(path)
    target = real_target(path)
    sidecar = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(sidecar, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~umask())
        except OSError as exc:
            raise ResultsError(p, f"cannot lock ({sidecar}: {exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ResultsError(p, f"is being written by another fwbench run (pid {owner or '?'}); "
                                      f"wait for it or choose another file") from None
            raise ResultsError(p, f"cannot lock ({sidecar}: {exc.strerror or exc})") from None
        # the holder before us may have removed the sidecar after we opened it: lock the file that is there
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(sidecar))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield sidecar
    finally:
        with contextlib.suppress(OSError):
            os.unlink(sidecar)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


# ---- building documents --------------------------------------------------------------------------------
def upsert_cell(doc: dict[str, Any], cell: dict[str, Any]) -> None:
    """Add ``cell`` to the document, replacing an earlier cell with the same id (used by --resume).

    A cell read from a worker's file with its ``nonfinite`` flags still on gets its numbers back first."""
    decode_finite(cell)
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
        for cell in cells(doc, str(path)):
            row = {"run_id": doc["run_id"], "file": str(path)}
            row.update({k: v for k, v in cell.data.items() if not isinstance(v, (list, dict))})
            s, parity = cell.summary, cell.parity
            row.update(median_s=s and s.median, ci_low_s=s and s.ci_low, ci_high_s=s and s.ci_high,
                       initial_loss=parity and parity.initial_loss, kstep_loss=parity and parity.kstep_loss,
                       parity_status=parity and parity.status)
            rows.append(row)
    return pd.DataFrame(rows)

