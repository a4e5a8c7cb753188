"""Worker phases driven in-process with the fake session (no framework)."""

from __future__ import annotations

import dataclasses

from fwbench import worker
from fwbench.data import DataSource
from fwbench.job import Job
from fwbench.runners.fake_runner import FakeSession
from fwbench.weights import init_params
from fwbench.workload import load_workload
from fwbench.workload_spec import Target


def fake_session(spec, monkeypatch, behaviour):
    monkeypatch.setenv("FWBENCH_FAKE", behaviour)
    monkeypatch.setenv("FWBENCH_FAKE_STEP_MS", "0")
    session = FakeSession(Job(workload=spec.to_dict(), runner="fake", device="cpu"))
    session.setup()
    return session


def test_target_phase_records_divergence(monkeypatch, workload_dir):
    spec = dataclasses.replace(load_workload("tinymlp"), target=Target(accuracy=0.99, max_steps=50, eval_every=5))
    session = fake_session(spec, monkeypatch, "nan")
    tta = worker.target_phase(session, spec, init_params(spec), DataSource(spec))
    assert tta["diverged_step"] == 2 and not tta["reached"] and tta["time_to_target_s"] is None


def test_target_phase_not_reached_within_budget_is_marked(monkeypatch, workload_dir):
    spec = dataclasses.replace(load_workload("tinymlp"), target=Target(accuracy=0.99, max_steps=12, eval_every=5))
    session = fake_session(spec, monkeypatch, "ok")
    tta = worker.target_phase(session, spec, init_params(spec), DataSource(spec))
    assert not tta["reached"] and tta["diverged_step"] is None
    assert [row[0] for row in tta["curve"]] == [5, 10, 12]  # evaluated every 5 steps and at the budget's end


def test_parity_phase_losses(monkeypatch, workload_dir):
    spec = load_workload("tinycnn")
    session = fake_session(spec, monkeypatch, "ok")
    p = worker.parity_phase(session, spec, init_params(spec), DataSource(spec))
    assert p["k"] == spec.parity_steps - 1 and len(p["losses"]) == spec.parity_steps
    assert p["initial_loss"] == p["losses"][0] and p["kstep_loss"] == p["losses"][-1]
