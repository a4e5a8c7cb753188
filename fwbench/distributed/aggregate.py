"""Ranks' records -> one distributed cell (pure functions, no I/O).

Each rank gathers every rank's row ``[rank, node_rank, elapsed_s, steps, final_loss, *warmup_s, *step_s]``
(laid out in :mod:`fwbench.distributed.rows`). From them:

- ``step_s[i]`` is the *slowest* rank's time for step ``i`` (a data-parallel step is done when every rank is);
- global throughput is global samples over a shared window: ``world x batch x steps`` divided by the
  longest rank's elapsed time, measured from the barrier that starts every rank together;
- per-rank throughput is that rank's ``batch x steps / elapsed``;
- scaling efficiency = throughput(N) / (N x throughput(1)), the 1-worker run measured in the same invocation;
- loss following: the N-worker global-batch losses against the 1-worker run's, within the parity check's
  K-step tolerance.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from fwbench import parity
from fwbench.distributed.rows import split_row


def run_figures(table: list[list[float]], warmup: int, batch_size: int) -> dict[str, Any]:
    """Slowest-rank step times, global and per-rank throughput of one run (world size = rows)."""
    rows = sorted((split_row(r, warmup) for r in table), key=lambda r: r.rank)
    n = min(len(r.step_s) for r in rows)
    step_s = [max(r.step_s[i] for r in rows) for i in range(n)]
    warmup_s = [max(r.warmup_s[i] for r in rows) for i in range(warmup)]
    window = max(r.elapsed_s for r in rows)
    world = len(rows)
    per_rank = [{"rank": r.rank, "node_rank": r.node_rank, "elapsed_s": r.elapsed_s,
                 "median_step_s": statistics.median(r.step_s),
                 "samples_per_s": batch_size * len(r.step_s) / r.elapsed_s if r.elapsed_s > 0 else None}
                for r in rows]
    return {"world_size": world, "steps": n, "step_s": step_s, "warmup_s": warmup_s, "window_s": window,
            "global_samples": world * batch_size * n,
            "global_samples_per_s": world * batch_size * n / window if window > 0 else None,
            "per_rank": per_rank, "final_loss": statistics.fmean(r.final_loss for r in rows)}


def loss_following(scaled: list[float], single: list[float], precision: str = "fp32") -> dict[str, Any]:
    """Does the N-worker loss curve follow the 1-worker one (same global batches, same initial weights)?"""
    tol = parity.TOLERANCES.get(precision, parity.TOLERANCES["fp32"])[1]
    n = min(len(scaled), len(single))
    bad = [i for i in range(n) if not parity.close(scaled[i], single[i], tol)]
    diffs = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(scaled[:n], single[:n])]
    return {"status": "mismatch" if bad or n == 0 else "ok", "tolerance": tol, "steps": n,
            "max_rel_diff": max(diffs) if diffs else None, "losses_n": scaled, "losses_1": single,
            "first_bad_step": bad[0] if bad else None}


def make_cell(scaled: list[dict[str, Any]], baseline: list[dict[str, Any]] | None, batch_size: int,
              nnodes: int, workers_per_node: int, node_rank: int, engine: str,
              precision: str = "fp32") -> dict[str, Any]:
    """The cell's measured fields from this node's rank records of the N-worker run and the 1-worker run."""
    from fwbench.stats import summarize  # NumPy: loaded once a cell has run, never to plan a run

    lead = min(scaled, key=lambda r: r["rank"])
    warmup = int(lead["warmup"])
    fig = run_figures(lead["table"], warmup, batch_size)
    s = summarize(fig["step_s"])
    world = fig["world_size"]
    dist: dict[str, Any] = {
        "world_size": world, "nnodes": nnodes, "workers_per_node": workers_per_node, "node_rank": node_rank,
        "backend": lead.get("backend"), "engine": engine, "per_rank_batch": batch_size,
        "global_batch": batch_size * world, "steps": fig["steps"], "window_s": fig["window_s"],
        "global_samples_per_s": fig["global_samples_per_s"], "slowest_rank_step_s": s.median,
        "per_rank": fig["per_rank"], "baseline": None, "scaling_efficiency": None, "loss_following": None,
    }
    cell: dict[str, Any] = {
        "status": "ok", "warmup_s": fig["warmup_s"], "step_s": fig["step_s"],
        "first_step_s": fig["warmup_s"][0] if fig["warmup_s"] else None, "summary": s.to_dict(),
        "samples_per_s": fig["global_samples_per_s"],
        "samples_per_s_ci": [world * batch_size / s.ci_high, world * batch_size / s.ci_low],
        "stop_reason": f"{fig['steps']} steps agreed by all ranks", "final_loss": fig["final_loss"],
        "settings": {**lead.get("settings", {}), "world_size": world, "backend": lead.get("backend")},
        "peak_rss_bytes": max(int(r.get("peak_rss_bytes", 0)) for r in scaled),
        "distributed": dist,
    }
    losses = lead.get("parity_losses")
    if losses:
        cell["parity"] = {"initial_loss": losses[0], "kstep_loss": losses[-1], "k": len(losses) - 1,
                          "losses": losses}
    if baseline:
        base = min(baseline, key=lambda r: r["rank"])
        bfig = run_figures(base["table"], int(base["warmup"]), batch_size)
        dist["baseline"] = {"world_size": 1, "samples_per_s": bfig["global_samples_per_s"],
                            "median_step_s": statistics.median(bfig["step_s"]), "steps": bfig["steps"]}
        if bfig["global_samples_per_s"] and fig["global_samples_per_s"]:
            dist["scaling_efficiency"] = fig["global_samples_per_s"] / (world * bfig["global_samples_per_s"])
        if losses and base.get("parity_losses"):
            follow = loss_following(losses, base["parity_losses"], precision)
            dist["loss_following"] = follow
            if follow["status"] != "ok":
                cell["reason"] = (f"{world}-worker loss does not follow the 1-worker run (step "
                                  f"{follow['first_bad_step']}, max relative difference {follow['max_rel_diff']:.3g})")
    all_losses = [fig["final_loss"], *(losses or [])]
    if not all(math.isfinite(x) for x in all_losses):
        cell.update(status="diverged", reason="a non-finite loss during data-parallel training")
    return cell


def summary_line(cell: dict[str, Any]) -> str:
    """One line for the progress log: ranks, backend, global throughput, efficiency, loss following."""
    d = cell.get("distributed")
    if not d:
        return ""
    parts = [f"{d['world_size']} ranks ({d.get('backend')})"]
    if d.get("global_samples_per_s"):
        parts.append(f"{d['global_samples_per_s']:,.0f} samples/s global")
    if d.get("scaling_efficiency") is not None:
        parts.append(f"scaling efficiency {d['scaling_efficiency']:.0%} vs 1 worker")
    follow = d.get("loss_following") or {}
    if follow:
        parts.append("loss follows 1 worker" if follow["status"] == "ok" else "loss does NOT follow 1 worker")
    return ", ".join(parts)
