"""Distributed run options and loopback/port helpers (no framework imports); engines are declared in the registry."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass
from typing import Any

from fwbench.errors import UsageError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DistOptions:
    """Run-level options (``fwbench run --workers/--nnodes/--node-rank/--master-addr/--master-port``).

    ``workers``: ranks per node (``None``: the workload's own count, or one per GPU on CUDA);
    ``master_port`` ``0``: a free loopback port chosen at run time (single node only).
    """

    workers: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = LOOPBACK
    master_port: int = 0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.nnodes < 1:
            raise UsageError(f"--nnodes must be at least 1, got {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise UsageError(f"--node-rank must be in 0..{self.nnodes - 1} for --nnodes {self.nnodes}, "
                             f"got {self.node_rank}")
        if not 0 <= self.master_port <= 65535:
            raise UsageError(f"--master-port must be a TCP port (1-65535), got {self.master_port}")
        if self.nnodes > 1 and not self.master_port:
            raise UsageError("--nnodes > 1 needs --master-port: every node must name the same rendezvous port")
        if self.nnodes == 1 and self.node_rank:
            raise UsageError("--node-rank needs --nnodes > 1")

    @property
    def multinode(self) -> bool:
        return self.nnodes > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "DistOptions":
        return cls(**(d or {}))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct free ports, all held open together while choosing so that none repeats."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_interface() -> str | None:
    """Name of the loopback network interface (``lo`` on Linux), for gloo's ``GLOO_SOCKET_IFNAME``."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n == "lo" or n.startswith("lo")), None)


def make_distributed(specs: list[Any], opts: DistOptions) -> tuple[list[Any], DistOptions | None]:
    """Apply ``--workers`` (every workload becomes data-parallel); returns the specs and the data-parallel
    options the workers need (``None`` when no workload is data-parallel)."""
    import dataclasses

    from fwbench.workload_spec import Distributed

    if opts.workers is not None:
        specs = [dataclasses.replace(s, distributed=Distributed(opts.workers)) for s in specs]
    if any(s.distributed for s in specs):
        return specs, opts
    if opts.multinode:
        raise UsageError("--nnodes > 1 needs a data-parallel workload (one with [distributed], or --workers N)")
    return specs, None
