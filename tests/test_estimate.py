"""fwbench.estimate: repeats combined with compare's statistics, ratios with CIs, rounding to the CI."""

from __future__ import annotations

import numpy as np
import pytest

from fwbench import stats
from fwbench.cells import Cell
from fwbench.estimate import WIDE_CI, cell_estimate, decimals_for, group, ratio, round_to_ci


def cell(steps, repeat=0, runner="torch", status="ok", noisy=False):
    data = {"id": f"cnn/{runner}/cpu/{repeat}", "workload": "cnn", "runner": runner, "family": "torch",
            "device": "cpu", "repeat": repeat, "mode": "train", "batch_size": 8, "threads": 1, "status": status,
            "reason": "" if status == "ok" else "boom", "step_s": list(steps) if status == "ok" else []}
    if noisy:
        data["interference"] = {"other_cpu_s": 1.0, "own_cpu_s": 1.0, "wall_s": 1.0, "cores": 1,
                                "other_share": 0.9, "noisy": True, "threshold": 0.25}
    return Cell.from_dict(data)


def test_three_processes_use_the_geometric_mean_of_medians_and_a_t_interval():
    rng = np.random.default_rng(0)
    procs = [rng.normal(m, 0.001, 50) for m in (0.100, 0.104, 0.098)]
    est = cell_estimate([cell(p, i) for i, p in enumerate(procs)])
    want = stats.geometric_mean_ci(np.array([np.median(p) for p in procs]))
    assert est.method == "processes" and est.processes == 3 and est.steps == 150
    assert (est.centre_s, est.low_s, est.high_s) == pytest.approx([float(v) for v in want])


def test_one_process_pools_steps_with_the_seeded_bootstrap_and_is_reproducible():
    x = np.linspace(0.01, 0.02, 41)
    a, b = cell_estimate([cell(x)]), cell_estimate([cell(x)])
    assert a == b and a.method == "steps" and a.centre_s == pytest.approx(0.015)
    assert a.low_s < a.centre_s < a.high_s


def test_failed_processes_are_left_out_and_none_without_samples():
    assert cell_estimate([cell([], status="failed")]) is None
    est = cell_estimate([cell([0.1] * 5), cell([], 1, status="failed")])
    assert est.processes == 1 and est.steps == 5


def test_wide_and_busy_cells_are_noisy():
    spread = cell_estimate([cell(np.linspace(0.05, 0.15, 31))])
    assert spread.rel_half_width > WIDE_CI and spread.wide and spread.noisy
    tight = cell_estimate([cell(np.full(31, 0.1))])
    assert not tight.wide and not tight.noisy
    assert cell_estimate([cell(np.full(31, 0.1), noisy=True)]).noisy


def test_ratio_matches_compare_and_knows_when_cis_are_apart():
    rng = np.random.default_rng(1)
    base = [cell(rng.normal(0.1, 0.001, 40), i) for i in range(3)]
    fast = [cell(rng.normal(0.05, 0.0005, 40), i, runner="tf-graph") for i in range(3)]
    r = ratio(base, fast)
    assert r.method == "processes" and r.value == pytest.approx(0.5, rel=0.02) and r.apart
    assert r.speedup[0] == pytest.approx(2.0, rel=0.02) and r.speedup[1] <= r.speedup[0] <= r.speedup[2]
    same = ratio(base, [cell(rng.normal(0.1, 0.001, 40), i, runner="x") for i in range(3)])
    assert not same.apart


def test_group_keeps_first_seen_order_and_repeat_order():
    cells = [cell([0.1], 1), cell([0.1], 0, runner="keras"), cell([0.1], 0)]
    g = group(cells)
    assert list(g) == [("cnn", "torch", "cpu"), ("cnn", "keras", "cpu")]
    assert [c.repeat for c in g[("cnn", "torch", "cpu")]] == [0, 1]


@pytest.mark.parametrize("value,low,high,want", [
    (17.05, 12.1, 24.3, "17"), (1.234, 1.22, 1.25, "1.23"), (1.234, 1.0, 1.5, "1.2"),
    (1.2345, 1.2344, 1.2346, "1.23"), (0.5, 0.5, 0.5, "0.500"), (250.0, 200.0, 300.0, "250"),
])
def test_round_to_ci(value, low, high, want):
    assert round_to_ci(value, low, high) == want


def test_decimals_never_exceed_three_significant_digits():
    assert decimals_for(0.001, 0.0011) == 5
