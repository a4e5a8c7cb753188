"""Finding and loading workloads: by name, by path, or from a ``fwbench.workloads`` plugin.

The schema and its validator live in :mod:`fwbench.workload_spec`. This module is the
edge where files are read: only regular files up to :data:`fwbench.limits.MAX_WORKLOAD_FILE_BYTES` are
opened (a FIFO, a device or ``/dev/zero`` behind a symlink is refused before it is read).

The name rule (``docs/workloads.md``): a workload's name is its ``name`` key, or its file's stem when the
key is left out. Listing, ``-w NAME``, cells and results all use that name. A workload found by name must
live in ``NAME.toml``; a file given by path may carry any valid name. Names are looked up in
``$FWBENCH_WORKLOADS`` (os.pathsep-separated folders, in order), ``./workloads``, the bundled set, then the
plugins; the first wins, and a name that hides a later one is announced once on stderr.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from fwbench import limits
from fwbench.errors import UsageError, WorkloadError
from fwbench.workload_spec import WorkloadSpec, parse_workload

BUNDLED = "bundled"
LOCAL = "./workloads"
ENV = "$FWBENCH_WORKLOADS"
PLUGIN = "plugin"


# --------------------------------------------------------------------------------------------- reading
def shown_path(path: Path | str) -> str:
    """A path as messages and ``WorkloadSpec.source`` show it: one printable line (others escaped), bounded."""
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(path))
    return text if len(text) <= 4096 else text[:4093] + "..."


def _file_kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def read_workload_bytes(path: Path) -> bytes:
    """The bytes of a workload file: stat first, then read at most the size limit from a regular file.

    Never blocks on a FIFO and never reads a device: the file is checked with ``stat`` before it is
    opened (``O_NONBLOCK``), checked again on the open descriptor, and read to at most limit + 1 bytes.
    """
    where, most = shown_path(path), limits.MAX_WORKLOAD_FILE_BYTES
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            fd = os.open(path, flags)
            with os.fdopen(fd, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode  # the file opened is the file checked
                raw = f.read(most + 1) if stat.S_ISREG(mode) else b""
    except OSError as exc:
        raise WorkloadError("", f"cannot read: {exc.strerror or exc}", where) from None
    if not stat.S_ISREG(mode):
        raise WorkloadError("", f"{_file_kind(mode)}, not a regular file; a workload is read only from a regular "
                                "file", where)
    if len(raw) > most:
        raise WorkloadError("", f"larger than {limits.gib(most)}; a workload file may hold at most {most:,} bytes",
                            where)
    return raw


def load_file(path: Path, expect_name: str | None = None) -> WorkloadSpec:
    """Read and validate one workload file; its name defaults to the file's stem.

    ``expect_name`` is the name it was found by: the file must then carry that name (or none).
    """
    path = Path(path)
    where = shown_path(path)
    raw = read_workload_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError("", f"not UTF-8 text (byte {exc.start})", where) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError("", f"not valid TOML: {exc}", where) from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise WorkloadError("", "not a workload: values nested too deeply", where) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise WorkloadError("", f"not valid TOML: {exc}", where) from None
    spec = parse_workload(doc, where, default_name=path.stem)
    if expect_name is not None and spec.name != expect_name:
        raise WorkloadError("name", f"is {spec.name!r}, but a workload found by name is named after its file "
                                    f"({path.name}): write name = {expect_name!r} or leave name out, or pass the "
                                    "file by path", where)
    return spec


# --------------------------------------------------------------------------------------------- finding
@dataclass(frozen=True)
class Found:
    """Where a workload name leads: a file in one of the search folders, or a plugin's entry point."""

    name: str
    origin: str  # BUNDLED, LOCAL, ENV or PLUGIN
    path: Path | None = None
    entry_point: Any = None
    shadows: tuple["Found", ...] = ()  # later entries of the same name that this one hides

    @property
    def where(self) -> str:
        """``bundled``, ``./workloads/cnn.toml``, ``$FWBENCH_WORKLOADS: /path/cnn.toml`` or ``plugin pkg:fn``."""
        if self.origin == BUNDLED:
            return BUNDLED
        if self.origin == LOCAL:
            return f"{LOCAL}/{shown_path(self.path.name)}"
        if self.origin == ENV:
            return f"{ENV}: {shown_path(self.path)}"
        return f"{PLUGIN} {shown_path(self.entry_point.value)}"

    def shadow_note(self) -> str:
        """``shadows bundled`` (empty when it hides nothing)."""
        return "shadows " + ", ".join(s.where for s in self.shadows) if self.shadows else ""


def bundled_dir() -> Path | None:
    """The workloads shipped in the package (``fwbench/workloads``), found through importlib.resources."""
    folder = resources.files("fwbench") / "workloads"
    return folder if isinstance(folder, Path) and folder.is_dir() else None  # zipped installs: none


def workload_dirs() -> list[tuple[str, Path]]:
    """The folders searched by name, in order, with their origin; a folder listed twice counts once."""
    dirs = [(ENV, Path(p)) for p in os.environ.get("FWBENCH_WORKLOADS", "").split(os.pathsep) if p]
    try:
        dirs.append((LOCAL, Path.cwd() / "workloads"))
    except OSError:  # the working directory was removed
        pass
    bundled = bundled_dir()
    if bundled is not None:
        dirs.append((BUNDLED, bundled))
    seen, out = set(), []
    for origin, d in dirs:
        try:
            real = d.resolve()
            if real in seen or not d.is_dir():
                continue
        except OSError:
            continue
        seen.add(real)
        out.append((origin, d))
    return out


def discover() -> dict[str, Found]:
    """Every workload name -> where it leads (files first, in search order, then plugins). Reads no file."""
    found: dict[str, Found] = {}

    def add(entry: Found) -> None:
        first = found.get(entry.name)
        if first is None:
            found[entry.name] = entry
        else:
            found[entry.name] = Found(first.name, first.origin, first.path, first.entry_point, (*first.shadows, entry))

    for origin, d in workload_dirs():
        try:
            paths = sorted(d.glob("*.toml"))
        except OSError:
            continue
        for p in paths:
            add(Found(p.stem, origin, path=p))
    for name, ep in plugin_workloads().items():
        add(Found(name, PLUGIN, entry_point=ep))
    return found


def available_workloads() -> dict[str, Path]:
    """Workload name -> file, first folder wins (plugins left out)."""
    return {name: f.path for name, f in discover().items() if f.path is not None}


def plugin_workloads() -> dict[str, Any]:
    """Entry points of the ``fwbench.workloads`` group (name -> EntryPoint); nothing is imported here."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="fwbench.workloads")}


_ANNOUNCED: set[tuple[str, str]] = set()


def announce_shadowing(found: Found) -> None:
    """Say once per process, on stderr, that a workload name hides another of the same name."""
    key = (found.name, found.where)
    if found.shadows and key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"warning: workload {found.name!r} is {found.where}, which {found.shadow_note()}", file=sys.stderr)


# --------------------------------------------------------------------------------------------- loading
_PATHLIKE = re.compile(r"[/\\]|\.toml$")


def load_found(found: Found) -> WorkloadSpec:
    """Load what a name leads to; a plugin's mapping is validated exactly like a file."""
    if found.path is not None:
        return load_file(found.path, expect_name=found.name)
    ep, where = found.entry_point, f"plugin {shown_path(found.name)}"
    # A declared entry point is the one place workload code runs (the user installed it); its failure
    # is still reported as a workload error, not a traceback.
    try:
        doc = ep.load()()
    except Exception as exc:
        raise WorkloadError("", f"plugin {ep.value} failed: {type(exc).__name__}: {exc}", where) from None
    spec = parse_workload(doc, where, default_name=found.name)
    if spec.name != found.name:
        raise WorkloadError("name", f"is {spec.name!r}, but the plugin's entry point is named {found.name!r}", where)
    return spec


def load_workload(ref: str) -> WorkloadSpec:
    """Load a workload by name (``cnn``), by path (``./my.toml``) or from a ``fwbench.workloads`` plugin."""
    if _PATHLIKE.search(ref):
        return load_file(Path(ref))
    found = discover()
    if ref in found:
        announce_shadowing(found[ref])
        return load_found(found[ref])
    raise WorkloadError("", f"unknown workload {ref!r}; available: {', '.join(sorted(found)) or 'none'}",
                        shown_path(ref))


def describe_source(source: str) -> str:
    """``bundled mlp`` for a bundled file, else the source as stored (a path, or ``plugin NAME``)."""
    bundled = bundled_dir()
    try:
        if bundled is not None and source and Path(source).resolve().parent == bundled.resolve():
            return f"{BUNDLED} {Path(source).stem}"
    except (OSError, ValueError):
        pass
    return source or "(unknown source)"


def check_unique_names(specs: Iterable[WorkloadSpec]) -> None:
    """Refuse a run in which two workloads share a name: their cells and stored definitions would collide."""
    seen: dict[str, WorkloadSpec] = {}
    for spec in specs:
        if spec.name not in seen:
            seen[spec.name] = spec
            continue
        first = seen[spec.name]
        a, b = describe_source(first.source), describe_source(spec.source)
        if a == b:
            raise UsageError(f"workload {spec.name!r} is given twice ({a}); name each workload once")
        raise UsageError(f"two workloads are named {spec.name!r} ({a} and {b}); a run needs distinct names")
