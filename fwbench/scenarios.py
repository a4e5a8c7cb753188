"""Scenarios: what a cell measures, and the variant workload each (scenario, batch) point runs as (pure).

- ``train``: optimizer steps (the default, and what every workload did before scenarios existed);
- ``latency``: inference requests one at a time, at batch 1 unless ``--batch-size`` says otherwise; each
  request's time is a sample, reported as p50/p90/p99/max with order-statistic intervals
  (:mod:`fwbench.quantiles`), stopped by count and time bounds (:mod:`fwbench.latency`);
- ``throughput``: inference at the workload's batch (or each swept batch), reported as samples/s;
- ``cold-start``: a fresh process's time from spawn to its first inference result, split into process start,
  import, build/load and first call, repeated in N fresh processes.

A point of a run (a scenario at a batch size) runs as a *variant* of its workload: the same network and data
with the point's batch and mode, named ``BASE@SUFFIX`` (``cnn@latency``, ``cnn@throughput-b16``,
``cnn@train-b64``, ``cnn@cold-start``); plain ``cnn`` is training at the workload's own batch, so results
written before scenarios existed keep their names. Every table, comparison and parity group keys on that
name, so each point is compared only with the same point of another runner. ``docs/scenarios.md`` says more.
"""

from __future__ import annotations

import dataclasses

from fwbench.errors import UsageError
from fwbench.workload_spec import MAX_NAME, SCENARIOS, WorkloadSpec

__all__ = ["SCENARIOS", "INFERENCE", "COLD_START_REPEATS", "variant", "points", "variant_name", "default_batch"]
INFERENCE = ("latency", "throughput", "cold-start")
COLD_START_REPEATS = 5  # fresh processes per cold-start cell unless --repeats says otherwise
SEPARATOR = "@"


def default_batch(spec: WorkloadSpec, scenario: str) -> int:
    """Latency and cold start answer one request (batch 1); training and throughput use the workload's batch."""
    return 1 if scenario in ("latency", "cold-start") else spec.batch_size


def variant_name(base: str, scenario: str, batch: int, natural: int) -> str:
    """``base`` itself for training at its own batch; else ``base@scenario`` plus ``-bN`` unless the batch is
    the scenario's natural one for latency / cold start (1). Throughput always names its batch."""
    if scenario == "train" and batch == natural:
        return base
    suffix = scenario
    if scenario in ("train", "throughput") or batch != 1:
        suffix += f"-b{batch}"
    return f"{base}{SEPARATOR}{suffix}"


def variant(spec: WorkloadSpec, scenario: str, batch: int | None = None) -> WorkloadSpec:
    """The workload a (scenario, batch) point runs: ``spec`` with the point's name, batch, mode and scenario."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from: {', '.join(SCENARIOS)}")
    b = batch if batch is not None else default_batch(spec, scenario)
    mode = "train" if scenario == "train" else "infer"
    name = variant_name(spec.name, scenario, b, spec.batch_size)
    if len(name) > MAX_NAME:
        raise UsageError(f"workload {spec.name!r}: its {scenario} variant's name {name!r} is longer than "
                         f"{MAX_NAME} characters; give the workload a shorter name")
    return dataclasses.replace(spec, name=name, batch_size=b, mode=mode if spec.mode == "train" else spec.mode,
                               scenario=scenario)


def points(spec: WorkloadSpec, scenario: str | None, batches: tuple[int, ...]) -> list[WorkloadSpec]:
    """The variants a run makes of ``spec``: one per batch size (ascending, so a batch that runs out of memory
    can end the larger ones), at ``scenario`` (``None``: the workload's own default scenario)."""
    chosen = scenario or spec.scenario
    sizes = sorted(set(batches)) if batches else [default_batch(spec, chosen)]
    return [variant(spec, chosen, b) for b in sizes]
