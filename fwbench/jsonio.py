"""Strict JSON files: written atomically, never holding a bare ``NaN``/``Infinity``.

Writing: :func:`write_json_atomic` stores every non-finite number as ``null`` and records where it was in a
``"nonfinite"`` object (see :func:`encode_finite`), then dumps with ``allow_nan=False``: any strict JSON
reader (``json.load(f, parse_constant=reject)``, ``jq``, JavaScript) accepts every file fwbench writes.
Reading: :func:`loads` / :func:`decode_finite` put the numbers back, so in memory a diverged loss is
``nan`` again.

Atomic: a temporary file beside the target, fsync, rename over it. A symlinked target is followed (its
target is replaced, the link stays); a target that exists and is not a regular file (device, FIFO,
socket, folder) is refused with an :class:`OSError`, never replaced. New files get ``0666 & ~umask``; an
existing file keeps its mode.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

FLAG = "nonfinite"
KINDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _kind(x: float) -> str:
    return "nan" if math.isnan(x) else "inf" if x > 0 else "-inf"


def escape(key: str) -> str:
    """One segment of a dotted path: ``~`` is written ``~0`` and ``.`` is written ``~1`` (as JSON Pointer)."""
    return key.replace("~", "~0").replace(".", "~1")


def unescape(segment: str) -> str:
    return segment.replace("~1", ".").replace("~0", "~")


def encode_finite(obj: Any, flag: str = FLAG) -> Any:
    """A copy of ``obj`` with non-finite floats replaced by ``None``.

    When ``obj`` is an object and anything was replaced, the copy gains ``obj[flag]``: dotted path (object
    keys escaped with :func:`escape`, list indices as numbers) -> ``"nan"``, ``"inf"`` or ``"-inf"``,
    merged with the flags ``obj`` already had. A list or scalar root has nowhere to put flags: its
    non-finite numbers just become ``None``.
    """
    found: dict[str, str] = {}
    out = _encode(obj, "", found)
    if isinstance(out, dict) and found:
        old = out.get(flag)
        out[flag] = {**(old if isinstance(old, dict) else {}), **found}
    return out


def _encode(x: Any, path: str, found: dict[str, str]) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        found[path] = _kind(x)
        return None
    if isinstance(x, dict):
        return {k: _encode(v, f"{path}.{escape(str(k))}" if path else escape(str(k)), found) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_encode(v, f"{path}.{i}" if path else str(i), found) for i, v in enumerate(x)]
    return x


class FlagError(ValueError):
    """A ``nonfinite`` record that does not fit the object it sits in (one line)."""


def decode_finite(obj: Any, flag: str = FLAG) -> Any:
    """Undo :func:`encode_finite` in place: pop ``obj[flag]`` and put each flagged number back.

    Raises :class:`FlagError` when the flags are not an object of path -> kind, or a path does not name a
    ``null`` in ``obj``.
    """
    if not isinstance(obj, dict) or flag not in obj:
        return obj
    flags = obj.pop(flag)
    if not isinstance(flags, dict):
        raise FlagError(f"field {flag!r} must be an object of path -> nan/inf/-inf")
    for path, kind in flags.items():
        if kind not in KINDS:
            raise FlagError(f"{flag}[{path!r}] must be one of nan, inf, -inf")
        parent, key = _locate(obj, path)
        if parent is None:
            raise FlagError(f"{flag} path {path!r} does not name a null value")
        parent[key] = KINDS[kind]
    return obj


def _locate(obj: Any, path: str) -> tuple[Any, Any]:
    parts = path.split(".") if path else []
    if not parts:
        return None, None
    node = obj
    for i, seg in enumerate(parts):
        if isinstance(node, dict):
            key: Any = unescape(seg)
            if key not in node:
                return None, None
        elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
            key = int(seg)
        else:
            return None, None
        if i == len(parts) - 1:
            return (node, key) if node[key] is None else (None, None)
        node = node[key]
    return None, None


def loads(text: str) -> Any:
    """Parse a file written by :func:`write_json_atomic`, with its non-finite numbers restored."""
    return decode_finite(json.loads(text))


def dumps(doc: Any) -> str:
    """Strict JSON text of ``doc`` (non-finite numbers encoded), as :func:`write_json_atomic` writes it."""
    return json.dumps(encode_finite(doc), indent=1, allow_nan=False) + "\n"


def umask() -> int:
    """The process's umask, read without changing it where Linux tells (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def real_target(path: Path | str) -> Path:
    """The file a write to ``path`` lands in: symlinks followed (also a dangling one, whose target is created)."""
    return Path(os.path.realpath(path))


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def write_json_atomic(path: Path | str, doc: Any) -> None:
    """Write ``doc`` so that readers see either the old file or the complete new one, never a torn one."""
    target = real_target(path)
    try:
        st = os.stat(path)  # the kernel follows every link, /proc/self/fd/N included
    except FileNotFoundError:
        mode = 0o666 & ~umask()
    else:
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{kind_of(st.st_mode)}, not a regular file", str(path))
        mode = stat.S_IMODE(st.st_mode)
    text = dumps(doc)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
