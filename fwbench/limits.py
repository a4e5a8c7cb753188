"""Bounds on what a workload may ask of the machine, shared by the workload validator and the CLI.

Sizes are refused before any worker starts, so an absurd file or results entry fails with a clear
message instead of exhausting the machine. The memory and worker bounds have an explicit override
through an environment variable, for those who mean it (a results file cannot raise them for itself).
"""

from __future__ import annotations

import os

from fwbench.errors import UsageError

GIB = 1 << 30
MAX_WORKLOAD_FILE_BYTES = 1 << 20  # 1 MiB; the bundled files are about 1 KiB
MAX_DIM = 8192  # any one dimension: units, filters, kernel, input side
BYTES_PER_VALUE = 4  # totals are counted in fp32, the precision every workload is defined for

ACTIVATION_GIB_ENV = "FWBENCH_MAX_ACTIVATION_GIB"
DEFAULT_ACTIVATION_GIB = 16.0  # every layer's output for one batch, the input included
PARAMETER_GIB_ENV = "FWBENCH_MAX_PARAMETER_GIB"
DEFAULT_PARAMETER_GIB = 4.0  # the weights alone (an optimizer and gradients need 2-4x more)

WORKERS_ENV = "FWBENCH_MAX_WORKERS"
WORKERS_PER_CORE = 4
MAX_WORKERS = 1024  # the ceiling even with the override


def _env_number(name: str, default: float, ceiling: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= ceiling:  # also refuses nan
        raise UsageError(f"{name}={raw!r}: must be a number in (0, {ceiling:g}]")
    return value


def max_activation_bytes() -> int:
    """Total activation memory one batch of a workload may need (``$FWBENCH_MAX_ACTIVATION_GIB``, default 16)."""
    return int(_env_number(ACTIVATION_GIB_ENV, DEFAULT_ACTIVATION_GIB, 1 << 20) * GIB)


def max_parameter_bytes() -> int:
    """Parameter memory a workload may need (``$FWBENCH_MAX_PARAMETER_GIB``, default 4)."""
    return int(_env_number(PARAMETER_GIB_ENV, DEFAULT_PARAMETER_GIB, 1 << 20) * GIB)


def max_workers() -> int:
    """Data-parallel ranks per node: ``4 x os.cpu_count()`` (at most 1024), or ``$FWBENCH_MAX_WORKERS``.

    ``os.cpu_count()`` rather than the affinity mask, so that a rank pinned to fewer cores than its
    parent re-validates its workload to the same bound.
    """
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WORKERS:
            raise UsageError(f"{WORKERS_ENV}={raw!r}: must be an integer from 1 to {MAX_WORKERS}")
        return int(raw)
    return min(MAX_WORKERS, WORKERS_PER_CORE * (os.cpu_count() or 1))


def gib(n_bytes: int) -> str:
    """``17.2 GiB`` — a byte count as error messages show it."""
    return f"{n_bytes / GIB:,.1f} GiB" if n_bytes >= GIB / 10 else f"{n_bytes / (1 << 20):,.1f} MiB"
