"""Building TF_CONFIG's cluster across nodes: each node tells node 0 its workers' ports, node 0 answers with all.

``MultiWorkerMirroredStrategy`` needs every worker's ``host:port`` before it starts, but each node picks
its own free ports at run time. So node 0 listens at ``--master-addr:--master-port``; every other node
connects (retrying until the deadline), sends one JSON line ``{"node_rank": k, "ports": [...]}``; node 0
answers every node with the whole list, ordered by node rank, each node's host being the address its
connection came from (node 0's own is the master address). Only configuration travels here; the training
collectives are TensorFlow's own. PyTorch needs none of this: torchrun has its rendezvous.
"""

from __future__ import annotations

import json
import socket
import time

RETRY_S = 0.2


class RendezvousError(Exception):
    """The nodes could not agree on a cluster before the deadline (message fit for a cell's reason)."""


def exchange(nnodes: int, node_rank: int, master_addr: str, master_port: int, ports: list[int],
             deadline: float) -> list[list[str]]:
    """Every node's worker addresses (``host:port``), indexed by node rank; blocks until all nodes joined."""
    if node_rank == 0:
        return _serve(nnodes, master_addr, master_port, ports, deadline)
    return _join(node_rank, master_addr, master_port, ports, deadline)


def _serve(nnodes: int, addr: str, port: int, ports: list[int], deadline: float) -> list[list[str]]:
    cluster: list[list[str] | None] = [[f"{addr}:{p}" for p in ports]] + [None] * (nnodes - 1)
    conns: list[socket.socket] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((addr, port))
        except OSError as exc:
            raise RendezvousError(f"cannot listen on {addr}:{port} for the other nodes: "
                                  f"{exc.strerror or exc}") from None
        server.listen(nnodes)
        try:
            while any(c is None for c in cluster):
                server.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    conn, (peer, _) = server.accept()
                except socket.timeout:
                    waiting = [str(k) for k, c in enumerate(cluster) if c is None]
                    raise RendezvousError(f"node(s) {', '.join(waiting)} did not join {addr}:{port} in time") from None
                conns.append(conn)
                hello = _read_line(conn, deadline)
                k = hello.get("node_rank")
                if not isinstance(k, int) or not 0 < k < nnodes or cluster[k] is not None:
                    raise RendezvousError(f"a node at {peer} joined with an unexpected or repeated node rank {k!r}")
                cluster[k] = [f"{peer}:{int(p)}" for p in hello.get("ports", [])]
            reply = (json.dumps({"cluster": cluster}) + "\n").encode()
            for conn in conns:
                conn.sendall(reply)
        finally:
            for conn in conns:
                conn.close()
    return [c for c in cluster if c is not None]


def _join(node_rank: int, addr: str, port: int, ports: list[int], deadline: float) -> list[list[str]]:
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=max(0.01, deadline - time.monotonic()))
            break
        except OSError:
            if time.monotonic() + RETRY_S >= deadline:
                raise RendezvousError(f"node 0 did not answer at {addr}:{port} in time") from None
            time.sleep(RETRY_S)
    with conn:
        conn.sendall((json.dumps({"node_rank": node_rank, "ports": ports}) + "\n").encode())
        reply = _read_line(conn, deadline)
    cluster = reply.get("cluster")
    if not isinstance(cluster, list) or len(cluster) <= node_rank:
        raise RendezvousError(f"node 0 at {addr}:{port} answered without a usable cluster")
    return cluster


def _read_line(conn: socket.socket, deadline: float) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            raise RendezvousError("a node connected but did not finish its message in time") from None
        if not chunk:
            raise RendezvousError("a node closed the rendezvous connection early")
        data += chunk
        if len(data) > 1 << 20:
            raise RendezvousError("rendezvous message too long")
    try:
        msg = json.loads(data)
    except ValueError:
        raise RendezvousError("a rendezvous message was not JSON") from None
    if not isinstance(msg, dict):
        raise RendezvousError("a rendezvous message was not a JSON object")
    return msg
