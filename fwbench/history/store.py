"""The history folder: ``index.json`` plus ``runs/<name>.json``, a copy of each stored results file.

Layout (``DIR`` is ``--dir``, else ``$FWBENCH_HISTORY_DIR``, else ``.fwbench-history`` in the working folder)::

    DIR/index.json      {"format": 1, "entries": [{"commit", "date", "run_id", "side", "file", "source"}, ...]}
    DIR/runs/<hash>.json the results document as stored (one side of an A/B file when ``side`` is set)

An entry is keyed by ``(run_id, side)``: adding the same run again changes nothing (or, with another
``--commit``/``--date``, corrects the entry). Every file is written atomically (:func:`fwbench.jsonio.write_json_atomic`)
and an ``add`` holds an exclusive lock on ``DIR/.lock``, so two concurrent adds cannot lose an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from fwbench.errors import ResultsError, UsageError
from fwbench.jsonio import write_json_atomic

DEFAULT_DIR = ".fwbench-history"
ENV_DIR = "FWBENCH_HISTORY_DIR"
INDEX = "index.json"
RUNS = "runs"
FORMAT = 1
SIDES = ("A", "B")
_COMMIT = re.compile(r"[^\s\x00-\x1f\x7f]{1,100}")  # one printable word: a SHA, a tag, a branch@sha


@dataclass(frozen=True)
class Entry:
    """One stored run: the commit and date it is filed under, and where its copy lies (relative to DIR)."""

    commit: str
    date: str  # ISO 8601 UTC, "YYYY-MM-DDTHH:MM:SSZ"
    run_id: str
    file: str
    side: str | None = None
    source: str = ""  # the path it was added from (for the reader; never opened again)

    @property
    def key(self) -> tuple[str, str | None]:
        return self.run_id, self.side

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Added:
    """What ``add`` did with one file: ``status`` is ``added``, ``unchanged`` or ``updated``."""

    entry: Entry
    status: str


def resolve_dir(option: Path | None) -> Path:
    return option if option is not None else Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def normalise_date(text: str, what: str = "--date") -> str:
    """An ISO 8601 date or date-time as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC; a time without zone counts as UTC)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r}: give an ISO 8601 date such as 2025-06-01 or 2025-06-01T12:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_commit(text: str, what: str = "--commit") -> str:
    text = text.strip()
    if not _COMMIT.fullmatch(text):
        raise UsageError(f"{what} {text[:60]!r}: give one word of 1 to 100 printable characters (a commit SHA)")
    return text


def one_side(doc: dict[str, Any], side: str | None, where: str) -> dict[str, Any]:
    """``doc`` itself, or for an A/B document (``fwbench ab``) the plain document of one side
    (:func:`fwbench.results.side_view`): only that side's cells, and that side's environment. An A/B document
    without ``side`` is refused."""
    from fwbench.results import is_ab, side_view

    if not is_ab(doc):
        if side is not None:
            raise UsageError(f"{where}: --side {side} given, but this is not an A/B results file (from `fwbench ab`)")
        return doc
    if side is None:
        raise UsageError(f"{where}: an A/B results file (from `fwbench ab`) holds two environments; "
                         f"store one of them with --side A or --side B")
    if side not in SIDES:
        raise UsageError(f"--side {side!r}: choose A or B")
    out = side_view(doc, side)
    if not out["cells"]:
        raise ResultsError(where, f"no cell of side {side}")
    return out


def entry_for(doc: dict[str, Any], where: str, commit: str | None, date: str | None, side: str | None) -> Entry:
    """The index entry for a (one-side) document: ``commit``/``date`` given, else the ones the run recorded."""
    if commit is None:
        recorded = doc.get("environment", {}).get("git_commit")
        if not recorded:
            raise UsageError(f"{where}: the run recorded no git commit (it ran outside a git checkout); "
                             f"give one with --commit SHA")
        commit = check_commit(str(recorded), f"{where}: recorded git commit")
    else:
        commit = check_commit(commit)
    if date is None:
        created = doc.get("created")
        if not created:
            raise UsageError(f"{where}: the run recorded no 'created' date; give one with --date ISO")
        date = normalise_date(str(created), f"{where}: recorded date")
    else:
        date = normalise_date(date)
    run_id = str(doc["run_id"])
    name = hashlib.sha256(f"{run_id}\0{side or ''}".encode("utf-8", "replace")).hexdigest()[:16]
    return Entry(commit, date, run_id, f"{RUNS}/{name}.json", side, where)


# ---------------------------------------------------------------- the index

def load_index(folder: Path) -> list[Entry]:
    """The entries of ``folder``'s index (none when the folder or its index does not exist)."""
    path = folder / INDEX
    where = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(where, f"not a history index ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("entries"), list):
        raise ResultsError(where, f"not a history index of format {FORMAT}")
    out = []
    for i, e in enumerate(raw["entries"]):
        try:
            entry = Entry(**e)
        except TypeError:
            raise ResultsError(where, f"entries[{i}] is not an entry") from None
        if not all(isinstance(getattr(entry, k), str) for k in ("commit", "date", "run_id", "file", "source")) \
                or entry.side not in (None, *SIDES) or not re.fullmatch(rf"{RUNS}/[0-9a-f]{{16}}\.json", entry.file):
            raise ResultsError(where, f"entries[{i}] has a field of the wrong type or value")
        out.append(entry)
    return out


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: an add takes milliseconds
        yield
    finally:
        os.close(fd)


def add(folder: Path, doc: dict[str, Any], where: str, commit: str | None = None, date: str | None = None,
        side: str | None = None) -> Added:
    """Store ``doc`` (a checked results document) under its commit and date; idempotent per (run, side)."""
    view = one_side(doc, side, where)
    entry = entry_for(view, where, commit, date, side)
    try:
        (folder / RUNS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the history folder {folder}: {exc.strerror or exc}") from None
    with _locked(folder):
        entries = load_index(folder)
        old = next((e for e in entries if e.key == entry.key), None)
        if old is not None and (old.commit, old.date) == (entry.commit, entry.date) and (folder / old.file).exists():
            return Added(old, "unchanged")
        write_json_atomic(folder / entry.file, view)
        entries = [entry if e.key == entry.key else e for e in entries] if old else [*entries, entry]
        write_json_atomic(folder / INDEX, {"format": FORMAT, "entries": [e.to_dict() for e in entries]})
    return Added(entry, "updated" if old else "added")


def read_runs(folder: Path) -> list[tuple[Entry, dict[str, Any]]]:
    """Every stored run with its document (checked by :func:`fwbench.results.read`), in index order."""
    from fwbench import results

    return [(e, results.read(folder / e.file)) for e in load_index(folder)]
